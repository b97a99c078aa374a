// The page's event stream (SSE): one per gateway for the whole page, shared by
// every player and by the page itself.

import { backoff } from "./retry.js";
import { expiryOf } from "./renewal.js";
import { later } from "./timers.js";
import { errorOf } from "./whep.js";

// An event stream that closes later than this before its token's exp was closed by
// the gateway for the token (which it does at exp plus its leeway, 30 s by default).
const LAPSE_SLACK_MS = 1000;

const SSE_TYPES = [
  "hello",
  "session_started",
  "session_ended",
  "session_moving", // another gateway node pulls the camera now: move there
  "grant_created",
  "grant_updated",
  "grant_revoked",
  "cameras_changed", // the inventory was reloaded (for pages with a map)
  // A grant's members may see a camera's picture without its privacy masks until
  // `until` (masks_lifted {camera_id, grant_id, until}), or no longer (masks_restored).
  "masks_lifted",
  "masks_restored",
  // The chain of consent, for the console (administrators, liaisons, auditors).
  "approval_requested",
  "authorization_recorded",
  "authorization_confirmed",
  "authorization_withdrawn",
  "emergency_started",
  "emergency_ended",
  "emergency_reviewed",
  // Privacy masks, for the console: changed, a lift asked or declined.
  "masks_changed",
  "mask_lift_requested",
  "mask_lift_declined",
];

const PAGE = Symbol("the page itself"); // a page that uses the stream directly

// One event stream per gateway for the whole page, shared by every player
// and by the page itself. It re-dispatches each event as a CustomEvent of the
// same name (detail: the event's data) and keeps the account's grants, so a
// player knows when its grant ends. After an error it reopens with a new ticket.
// The gateway closes the stream when the token that opened it lapses (at its exp,
// plus the gateway's leeway): then it reopens at once with a fresh token, and that
// is no failure that would lengthen the wait after a real one.
//
// It is open while someone uses it. Players join (join(player, tokenProvider))
// while they play and leave when they stop or leave the page; a page that uses
// the stream itself gives its token provider (gatewayEvents(url, provider), or
// the constructor's second argument, or .tokenProvider) and stays. Each time the
// stream opens it asks its current users for a token: the first player that has
// one, else the page. When the last user leaves, it closes; the next to join
// opens it again. Listeners added to it stay across reopenings.
export class GatewayEvents extends EventTarget {
  #users = new Map(); // player (or PAGE) -> its token provider, in the order they joined
  // The current opening: the ticket request, the stream, and the wait before the
  // next try are all tied to it; null while closed.
  #attempt = null;

  constructor(baseUrl, tokenProvider) {
    super();
    this.baseUrl = new URL(baseUrl, document.baseURI).href;
    this.account = null;
    this.grants = new Map();
    this.failures = 0;
    this.source = null;
    if (tokenProvider) this.tokenProvider = tokenProvider;
  }

  // The page's own token provider, for a page that uses the stream itself.
  get tokenProvider() {
    return this.#users.get(PAGE) || null;
  }
  set tokenProvider(provider) {
    if (provider) this.join(PAGE, provider);
    else this.leave(PAGE);
  }

  get closed() {
    return this.#attempt === null;
  }

  // `user` uses the stream from now on; tokenProvider() returns its token (or a
  // Promise of one). Opens the stream if it was closed.
  join(user, tokenProvider) {
    this.#users.set(user, tokenProvider);
    if (this.closed) this.open();
  }

  // `user` no longer needs the stream: the last one to leave closes it.
  leave(user) {
    if (this.#users.delete(user) && this.#users.size === 0) this.close();
  }

  // (Re)open now, with a token from a current user; without users, stay closed.
  async open() {
    this.#abort();
    if (this.#users.size === 0) return;
    const attempt = (this.#attempt = new AbortController());
    const { signal } = attempt;
    try {
      const token = await this.#token();
      if (signal.aborted) return;
      const expires = expiryOf(token);
      const response = await fetch(new URL("api/events/ticket", this.baseUrl), {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
        signal,
      });
      if (!response.ok) throw new Error((await errorOf(response)).message);
      const { url } = await response.json();
      if (signal.aborted) return;
      const source = new EventSource(new URL(url, this.baseUrl)); // a one-time ticket, never the token
      this.source = source;
      signal.addEventListener("abort", () => source.close(), { once: true });
      for (const type of SSE_TYPES) {
        source.addEventListener(type, (event) => this.receive(type, JSON.parse(event.data)));
      }
      let opened = false;
      source.onopen = () => {
        opened = true;
        this.failures = 0;
      };
      source.onerror = () => {
        source.close(); // the ticket is spent: EventSource's own retry would get 401
        if (signal.aborted) return;
        // Open until its token lapsed: the gateway closed it as it should. (Only
        // after an opening: a token refused at once still waits, below.)
        if (opened && expires !== null && Date.now() > expires - LAPSE_SLACK_MS) this.open();
        else this.#retry(attempt);
      };
    } catch {
      this.#retry(attempt);
    }
  }

  // A token from the players using the stream now, in the order they joined, else
  // from the page's own provider.
  async #token() {
    const page = this.#users.get(PAGE);
    const providers = [...this.#users].filter(([user]) => user !== PAGE).map(([, give]) => give);
    for (const provider of page ? [...providers, page] : providers) {
      try {
        const token = await provider();
        if (token) return token;
      } catch {
        /* this one has none now; ask the next */
      }
    }
    throw new Error("no token");
  }

  #retry(attempt) {
    if (attempt.signal.aborted) return;
    later(attempt.signal, () => this.open(), backoff(this.failures++));
  }

  #abort() {
    this.#attempt?.abort();
    this.#attempt = null;
    this.source = null;
  }

  receive(type, data) {
    if (type === "hello") {
      this.account = data.account;
      this.grants = new Map(data.grants.map((grant) => [grant.id, grant]));
    } else if (data.grant && (!data.grant.members || data.grant.members.includes(this.account))) {
      // A viewer's copy has no members: the gateway sends it only grants that name it.
      this.grants.set(data.grant.id, data.grant);
    } else if (data.grant) {
      this.grants.delete(data.grant.id); // no longer names this account (an administrator's copy)
    }
    this.dispatchEvent(new CustomEvent(type, { detail: data }));
  }

  // When the last of the account's live grants for this camera ends (a Date), or null.
  endsAt(camera) {
    const now = Date.now();
    let latest = null;
    for (const grant of this.grants.values()) {
      const ends = new Date(grant.ends_at);
      const revoked = grant.status === "revoked" || grant.revoked_at;
      const active = !revoked && new Date(grant.starts_at) <= now && ends > now;
      if (active && grant.cameras.includes(camera) && (!latest || ends > latest)) latest = ends;
    }
    return latest;
  }

  // Close now, and forget what the stream said (the next opening says it again with
  // hello). Its users stay; the next to join opens it again.
  close() {
    this.#abort();
    this.account = null;
    this.grants = new Map();
    this.failures = 0;
  }
}

const shared = new Map();
// The page's one GatewayEvents for this gateway, made on first use. With a token
// provider, the page itself uses the stream (and keeps it open); without one, the
// caller is expected to join() it.
export function gatewayEvents(baseUrl, tokenProvider) {
  const key = new URL(baseUrl, document.baseURI).href;
  if (!shared.has(key)) shared.set(key, new GatewayEvents(key));
  const events = shared.get(key);
  if (tokenProvider) events.tokenProvider = tokenProvider;
  return events;
}
