// <cctv-player camera="cam-id" token-provider="getToken">: one live CCTV camera.
//
// One ES module, no build step. It plays the camera over WHEP, shows its state
// in words, its latency and bitrate, and the grant's last ten minutes; it
// reconnects after network drops, never after a revocation or the grant's end,
// and ends its session on the gateway when it leaves the page.
//
//   attributes  camera, token-provider (name of a global function returning a
//               token or a Promise of one), base-url (the gateway; defaults to
//               where this file came from), label, ends-at (ISO 8601), lang,
//               save-data (the data saver: always the lighter picture),
//               lite-rendition (its name on the gateway; default "low"),
//               adaptive="off" (never switch by itself),
//               ice-transport-policy="relay" (only through TURN, e.g. for tests)
//   properties  token, tokenProvider, events (a GatewayEvents), state, reason,
//               code, stats, pc, video, rendition, saveData, switching, adaptation;
//               stop()
//   events      statechange {state, reason, code}, revoked {reason, code},
//               ended {reason, code}, expired {reason, code}: `reason` is the
//               gateway's words (English), `code` the stable code to act on;
//               renditionchange {rendition, why}
//   states      idle, connecting, waiting, live, reconnecting, revoked, ended,
//               expired, denied, error, stopped
//
// Sign-in: a session lasts no longer than the token that opened it. Before the
// token's `exp` the player asks its token provider for a fresh one and presents it
// to the gateway (POST <session URL>/renew); without one by `exp` the tile ends
// "sign-in expired".

const HERE = new URL("../", import.meta.url).href; // the gateway that served this file
const TRICKLE_BATCH_MS = 50; // candidates found this close together go in one PATCH
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000]; // before jitter: see backoff()
const RETRY_AFTER_JITTER = 0.2; // up to this much of Retry-After is added at random
const DISCONNECTED_GRACE_MS = 2500; // "disconnected" often heals by itself
const STALL_MS = 3000; // no new frame for this long: back to "waiting for picture"
const COUNTDOWN_FROM_S = 600; // show the grant's remaining time in its last 10 minutes
const RENEW_BEFORE_MS = 60000; // renew the session this long before its token's exp …
const RENEW_SHARE = 0.2; // … or with this share of a short token's lifetime left
// No fresh token yet (the provider gave none, or the same one): ask again after half
// of the time left, within these bounds, and give up at exp.
const RENEW_RETRY_MIN_MS = 2000;
const RENEW_RETRY_MAX_MS = 15000;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (about 24.8 days)
// An event stream that closes later than this before its token's exp was closed by
// the gateway for the token (which it does at exp plus its leeway, 30 s by default).
const LAPSE_SLACK_MS = 1000;

// The lighter picture (a [[relay.renditions]] of the gateway) instead of the camera's
// own: always with the data saver, and by itself on a weak link. Each second of
// getStats is good or bad: bad when more than `loss` of its packets were lost, when
// no new frame was decoded or a freeze began, or when the browser's bandwidth
// estimate fell below what the camera's picture needs. `badToSwitch` bad seconds
// among the last `window` switch to the lighter picture; `upAfterMs` of good ones
// on it try the camera's own again, and a try that has to come back down within
// `bounceMs` doubles the wait (up to `upAfterMaxMs`). Each player has its own copy
// (player.adaptation), which a page or a test may change.
const ADAPTATION = {
  window: 4,
  badToSwitch: 3,
  loss: 0.05,
  upAfterMs: 30000,
  upAfterMaxMs: 600000,
  bounceMs: 60000,
  switchTimeoutMs: 10000, // a new session must show its picture within this
};

// The player's states, and the only transitions between them (#transition refuses
// any other). "connecting" from anywhere is a restart (a new camera or gateway, a
// token after an error, back on the page); "stopped" from any other state is stop().
//   idle          not started, or no camera to play
//   connecting    the first offer is on its way
//   waiting       connected, waiting for the picture (or the picture stalled)
//   live          playing
//   reconnecting  lost or refused for now (network, 503, 429, 5xx); retrying
//   revoked, ended, expired, denied, error
//                 stopped for good, with the reason; only a restart leaves them
//                 (expired: the sign-in lapsed and could not be renewed)
//   stopped       stop(), or off the page
const TRANSITIONS = Object.fromEntries(
  Object.entries({
    idle: "connecting stopped",
    connecting: "connecting waiting reconnecting idle ended denied error stopped",
    waiting: "live reconnecting revoked ended expired error connecting stopped",
    live: "waiting reconnecting revoked ended expired connecting stopped",
    // "reconnecting" again: another failure, or the next try going out
    reconnecting: "reconnecting waiting revoked ended expired denied error idle connecting stopped",
    revoked: "connecting stopped",
    ended: "connecting stopped",
    expired: "connecting stopped",
    denied: "connecting stopped",
    error: "connecting stopped",
    stopped: "connecting",
  }).map(([from, to]) => [from, new Set(to.split(" "))]),
);
// States the tile shows as an overlay message: nothing more will happen by itself.
const TERMINAL = new Set(["revoked", "ended", "expired", "denied", "error", "stopped"]);
// Why the gateway ended a session (session_ended.code), when that is no reason to
// stop watching (a node lost, or cut off from its cluster: another node decides the
// next try).
const TRANSIENT = new Set([
  "connection_lost",
  "never_connected",
  "shutdown",
  "media_failed",
  "node_lost",
  "node_isolated",
]);

const TEXT = {
  "zh-Hant": {
    idle: "待命",
    connecting: "連線中…",
    waiting: "等待畫面…",
    live: "直播中",
    reconnecting: "重新連線中…",
    revoked: "觀看權限已撤銷",
    ended: "授權期間已結束",
    expired: "登入已逾時",
    denied: "沒有觀看權限",
    error: "無法播放",
    stopped: "已停止",
    left: "授權剩餘",
    fullscreen: "全螢幕",
    latency: "延遲",
    in: (s) => `${s} 秒後重試`,
    saver: "省流量",
    saverTitle: "省流量：較小、較省頻寬的畫面",
    lite: "省流量",
    liteAuto: "連線不佳・省流量",
    toLite: "切換至省流量…",
    toFull: "恢復原畫質…",
    noLite: "此閘道器未提供省流量畫面",
  },
  en: {
    idle: "Idle",
    connecting: "Connecting…",
    waiting: "Waiting for picture…",
    live: "Live",
    reconnecting: "Reconnecting…",
    revoked: "Access revoked",
    ended: "Grant ended",
    expired: "Sign-in expired",
    denied: "No access",
    error: "Cannot play",
    stopped: "Stopped",
    left: "Grant ends in",
    fullscreen: "Fullscreen",
    latency: "latency",
    in: (s) => `retry in ${s} s`,
    saver: "Data saver",
    saverTitle: "Data saver: a smaller picture that needs less bandwidth",
    lite: "Data saver",
    liteAuto: "Weak link · data saver",
    toLite: "Switching to data saver…",
    toFull: "Back to full quality…",
    noLite: "This gateway offers no data-saver picture",
  },
};
// The reasons, in Traditional Chinese, by code: the gateway's (the `code` of a JSON
// error or of session_ended) and the player's own (no_token, network_error,
// connection_lost). English shows the gateway's words as sent; so does Chinese for
// a code not listed here.
const REASONS_ZH = {
  grant_ended: "授權期間已結束",
  grant_revoked: "專案授權已撤銷",
  removed_from_grant: "已自授權名單移除",
  camera_removed_from_grant: "此攝影機已自授權移除",
  camera_removed: "此攝影機已自清單移除",
  grant_removed: "授權已刪除",
  no_grant: "沒有有效的授權",
  not_yet_started: "授權尚未開始",
  no_token: "未取得登入憑證",
  invalid_token: "登入憑證無效或已過期",
  token_expired: "登入已逾時",
  not_owner: "此連線屬於其他帳號",
  unknown_session: "此連線已不存在",
  revoked: "管理員撤銷", // followed by the administrator's own words
  network_error: "網路中斷",
  connection_lost: "連線中斷",
  never_connected: "未能建立連線",
  media_failed: "影像傳送中斷",
  shutdown: "閘道器重新啟動",
  node_lost: "閘道器節點失聯",
  node_isolated: "閘道器節點與叢集斷線",
  turn_refused: "中繼伺服器 (TURN) 拒絕了連線憑證",
  turn_unreachable: "無法連上中繼伺服器 (TURN)",
  relay_unavailable: "閘道器未提供中繼伺服器 (TURN)",
};
// Every refusal worth retrying (503, 5xx, 429) has read "camera unavailable" on the
// tile so far; it still does, whichever code the gateway gives.
// ("unavailable": such a refusal without a JSON body, say from a proxy.)
for (const code of ["camera_unavailable", "capacity", "audit_unavailable", "too_many", "internal"]) {
  REASONS_ZH[code] = "攝影機暫時無法連線";
}
REASONS_ZH.unavailable = "攝影機暫時無法連線";

function translateReason({ code, reason, note }, lang) {
  const zh = REASONS_ZH[code];
  if (lang === "en" || !zh) return reason || "";
  return note ? `${zh}：${note}` : zh;
}

// The administrator's own words, when one ended the session (code "revoked"): the
// event's `note`; from a gateway that sends none, what follows the first ": " of
// its reason ("revoked by an administrator: <words>"). Words only, never a decision.
function noteOf({ code, reason, note }) {
  if (typeof note === "string") return note;
  const at = code === "revoked" && reason ? reason.indexOf(": ") : -1;
  return at < 0 ? "" : reason.slice(at + 2);
}

// What a session_ended code means for the tile: try again, or stop for good.
function outcome(code) {
  if (TRANSIENT.has(code)) return "reconnect";
  if (code === "token_expired") return "expired";
  return code === "grant_ended" ? "ended" : "revoked";
}

// The sign-in lapsed and no fresh token came: the gateway's own words and code
// for it (session_ended), so the tile says the same whichever noticed first.
const SIGN_IN_EXPIRED = { reason: "sign-in expired", code: "token_expired" };

// A JWT's claims, read without checking the signature (the gateway checks it): the
// player only needs to know when its token lapses. Null for anything else.
function claimsOf(token) {
  try {
    const base64 = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)); // UTF-8: an account may be 中文
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

// When the token lapses (ms since the epoch), or null when it does not say.
function expiryOf(token) {
  const exp = claimsOf(token)?.exp;
  return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : null;
}

// How long to wait before try number `failures` + 1. With "equal jitter" each step
// is between half and all of BACKOFF_MS: tiles that lost the gateway together (a
// restart) come back spread over a second, two, four …, not in the same
// millisecond. The gateway's Retry-After (ms) is a minimum: jitter only adds to it.
function backoff(failures, retryAfterMs) {
  if (retryAfterMs > 0) return retryAfterMs * (1 + RETRY_AFTER_JITTER * Math.random());
  const step = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
  return step / 2 + (step / 2) * Math.random();
}

// Retry-After in ms (delay-seconds or an HTTP date), or undefined.
function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return undefined;
  const seconds = Number(value);
  const ms = Number.isNaN(seconds) ? Date.parse(value) - Date.now() : seconds * 1000;
  return ms > 0 ? ms : undefined;
}

// Timers that belong to an attempt (an AbortSignal): aborting it clears them.
function later(signal, callback, ms) {
  if (signal.aborted) return;
  const timer = setTimeout(callback, ms);
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
}

// At the wall-clock time `when` (ms since the epoch), tied to `signal` like later().
function at(signal, when, callback) {
  const wait = when - Date.now();
  if (wait > MAX_TIMER_MS) later(signal, () => at(signal, when, callback), MAX_TIMER_MS);
  else later(signal, callback, Math.max(0, wait));
}

function every(signal, callback, ms) {
  if (signal.aborted) return;
  const timer = setInterval(callback, ms);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}

// The session's ICE servers from the answer's Link headers (WHEP):
//   <turn:host:3478?transport=udp>; rel="ice-server"; username="…"; credential="…";
//   credential-type="password"
// Several may come in one header, comma-separated (fetch joins repeated headers).
function iceServersOf(response) {
  const servers = [];
  for (const entry of (response.headers.get("Link") || "").split(/,\s*(?=<)/)) {
    const url = /^\s*<([^>]+)>/.exec(entry);
    const params = {};
    for (const [, name, quoted, bare] of entry.matchAll(/;\s*([\w-]+)\s*=\s*(?:"([^"]*)"|([^;,\s]+))/g)) {
      params[name.toLowerCase()] = quoted ?? bare;
    }
    if (!url || params.rel !== "ice-server") continue;
    const server = { urls: url[1] };
    if (params.username !== undefined) {
      server.username = params.username;
      server.credential = params.credential;
    }
    servers.push(server);
  }
  return servers;
}

// Resolves once `video` shows a picture, or rejects after `ms` or when aborted.
function picture(video, signal, ms) {
  const waiting = new AbortController();
  const stop = () => waiting.abort();
  signal.addEventListener("abort", stop, { once: true });
  return new Promise((resolve, reject) => {
    const shows = () => video.readyState >= 2 && video.videoWidth > 0 && !video.paused;
    every(waiting.signal, () => shows() && resolve(), 100);
    later(waiting.signal, () => reject(new Error("no picture")), ms);
    waiting.signal.addEventListener("abort", () => reject(new Error("stopped")), { once: true });
  }).finally(() => {
    signal.removeEventListener("abort", stop);
    stop();
  });
}

// A JSON error body {error, code}: the words for people, the code to act on.
async function errorOf(response) {
  try {
    const body = await response.json();
    return { message: body.error || response.statusText, code: body.code || "" };
  } catch {
    return { message: response.statusText, code: "" };
  }
}

const SSE_TYPES = [
  "hello",
  "session_started",
  "session_ended",
  "session_moving", // another gateway node pulls the camera now: move there
  "grant_created",
  "grant_updated",
  "grant_revoked",
  "cameras_changed", // the inventory was reloaded (for pages with a map)
  // The chain of consent, for the console (administrators, liaisons, auditors).
  "approval_requested",
  "authorization_recorded",
  "authorization_confirmed",
  "authorization_withdrawn",
  "emergency_started",
  "emergency_ended",
  "emergency_reviewed",
  // Privacy masks: changed, a lift asked or declined (the console), and a lift of a
  // camera's masks for the viewer's grant in force until `until`, then over.
  "masks_changed",
  "mask_lift_requested",
  "mask_lift_declined",
  "masks_lifted",
  "masks_restored",
];

const PAGE = Symbol("the page itself"); // a page that uses the stream directly

// One event stream (SSE) per gateway for the whole page, shared by every player
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

const STYLE = `
:host { display: block; position: relative; aspect-ratio: 16 / 9; overflow: hidden;
  background: #0b0f14; color: #f5f7fa; border-radius: 6px;
  font: 14px/1.35 system-ui, "Noto Sans TC", "PingFang TC", sans-serif; }
:host(:fullscreen) { aspect-ratio: auto; border-radius: 0; }
video { display: block; position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain;
  background: #0b0f14; }
.bar { position: absolute; left: 0; right: 0; display: flex; align-items: center; gap: .5rem;
  padding: 0 0 0 .6rem; min-height: 44px; }
.top { top: 0; background: linear-gradient(#000a, #0000); }
.bottom { bottom: 0; background: linear-gradient(#0000, #000b); }
.label { font-weight: 600; flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.state { display: inline-flex; align-items: center; gap: .4rem; flex: 1; min-width: 0; }
.state::before { content: ""; width: .6rem; height: .6rem; border-radius: 50%; background: #f5b301; flex: none; }
:host([state=live]) .state::before { background: #2ecc71; }
:host([state=revoked]) .state::before, :host([state=denied]) .state::before,
:host([state=error]) .state::before { background: #e74c3c; }
:host([state=ended]) .state::before, :host([state=expired]) .state::before,
:host([state=stopped]) .state::before { background: #95a5a6; }
.stats, .countdown { font-variant-numeric: tabular-nums; white-space: nowrap; opacity: .9; }
.countdown { background: #b9770e; padding: .1rem .45rem; border-radius: 4px; }
.countdown.urgent { background: #c0392b; }
.lite { background: #1f618d; padding: .1rem .45rem; border-radius: 4px; white-space: nowrap; }
.saver { font-size: .8rem; padding: 0 .5rem; white-space: nowrap; opacity: .75; }
.saver[aria-pressed=true] { opacity: 1; color: #7fd3ff; }
.saver:disabled { opacity: .35; cursor: not-allowed; }
.message { position: absolute; inset: 25% 8%; display: grid; place-items: center; text-align: center;
  font-size: 1.05rem; white-space: pre-line; pointer-events: none; text-shadow: 0 1px 2px #000; }
.message:empty { display: none; }
button { min-width: 44px; min-height: 44px; border: 0; background: transparent; color: inherit;
  font: inherit; cursor: pointer; display: grid; place-items: center; }
button:focus-visible { outline: 2px solid #5dade2; outline-offset: -4px; }
[hidden] { display: none !important; }
`;

// One constructed stylesheet for every tile. A <style> element is only the fallback
// for browsers without constructable stylesheets (before Safari 16.4).
let sheet = null;
function adoptStyle(root) {
  if (!("adoptedStyleSheets" in ShadowRoot.prototype)) {
    const style = document.createElement("style");
    style.textContent = STYLE;
    root.prepend(style);
    return;
  }
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
  }
  root.adoptedStyleSheets = [sheet];
}

export class CctvPlayer extends HTMLElement {
  static observedAttributes = ["camera", "base-url", "label", "lang", "ends-at", "save-data"];

  #token = null;
  #events = null;
  #listening = null;
  #pc = null;
  #sessionUrl = null;
  #sessionId = null;
  #sessionToken = null;
  // The current connection attempt: the offer, then the session it made, or the wait
  // before the next offer. Every timer and listener of the attempt is tied to its
  // signal, and each async step checks it when it resumes; stopping, finishing,
  // restarting or dropping the connection aborts it, so nothing of it acts again.
  #attempt = null;
  #failures = 0;
  #wasLive = false;
  #last = null; // the previous stats sample
  #lastFrameAt = 0;
  #note = ""; // the administrator's words, with code "revoked"
  #ui;
  // Which picture: the current session's rendition (null: the camera's own), the one
  // chosen by itself on a weak link, and a switch under way (a second session that
  // replaces the first once it shows its picture).
  #rendition = null;
  #auto = null;
  #switching = null;
  #noLite = false; // the gateway has no such rendition (400 unknown_rendition)
  #quality = []; // the last seconds: true for a bad one
  #goodMs = 0; // good time in a row on the lighter picture
  #upAfterMs = 0; // the wait before trying the camera's own picture again
  #upAt = 0; // when the last try to go back up was made
  #needKbps = 0; // what the camera's own picture needs: its bitrate when it went well
  #turnError = null; // the last TURN failure of this session's ICE gathering

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<video muted autoplay playsinline></video>
      <div class="bar top"><span class="label"></span><span class="lite" hidden></span><span class="countdown" hidden></span><slot name="actions"></slot></div>
      <div class="message" role="status"></div>
      <div class="bar bottom"><span class="state" aria-live="polite"></span><span class="stats"></span>
        <button class="saver" type="button" aria-pressed="false"></button>
        <button class="fullscreen" type="button"><svg viewBox="0 0 24 24" width="22" height="22"
          fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" aria-hidden="true">
          <path d="M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5"/></svg></button></div>`;
    // Not a <style> element: pages whose Content-Security-Policy forbids inline
    // styles (the gateway's own, and perhaps a dashboard's) apply it too.
    adoptStyle(root);
    const $ = (selector) => root.querySelector(selector);
    this.#ui = {
      video: $("video"),
      label: $(".label"),
      countdown: $(".countdown"),
      message: $(".message"),
      state: $(".state"),
      stats: $(".stats"),
      fullscreen: $(".fullscreen"),
      lite: $(".lite"),
      saver: $(".saver"),
    };
    this.#ui.fullscreen.addEventListener("click", () => this.toggleFullscreen());
    this.#ui.saver.addEventListener("click", () => (this.saveData = !this.saveData));
    this.#watchVideo(this.#ui.video);
    this.adaptation = { ...ADAPTATION };
    this.state = "idle";
    this.reason = "";
    this.code = "";
    this.stats = {};
  }

  // --- the host page's handles ------------------------------------------------

  get video() {
    return this.#ui.video;
  }
  get pc() {
    return this.#pc;
  }
  get sessionUrl() {
    return this.#sessionUrl;
  }
  // The current session's picture: null for the camera's own, else the rendition.
  get rendition() {
    return this.#rendition;
  }
  // A switch under way: {rendition, why} of the session being made, or null.
  get switching() {
    const pending = this.#switching;
    return pending && { rendition: pending.rendition, why: pending.why };
  }
  // The data saver: the lighter picture whatever the link (the tile's toggle).
  get saveData() {
    return this.hasAttribute("save-data");
  }
  set saveData(on) {
    this.toggleAttribute("save-data", Boolean(on));
  }
  get baseUrl() {
    return new URL(this.getAttribute("base-url") || HERE, document.baseURI).href;
  }
  get token() {
    return this.#token;
  }
  set token(value) {
    this.#token = value;
    // A token after an error or an expired sign-in starts again; while playing, the
    // next renewal presents it.
    const restart = ["idle", "error", "expired"].includes(this.state);
    if (this.isConnected && restart) this.#restart();
  }
  get events() {
    return this.#events || gatewayEvents(this.baseUrl); // joined while playing (#listen)
  }
  set events(source) {
    this.#events = source;
    if (this.#listening) this.#listen(source);
  }
  // Traditional Chinese unless the element or the page says English.
  get lang() {
    const lang = this.closest("[lang]")?.getAttribute("lang") || document.documentElement.lang;
    return (lang || "").toLowerCase().startsWith("en") ? "en" : "zh-Hant";
  }
  set lang(value) {
    this.setAttribute("lang", value);
  }

  async #getToken() {
    if (this.#token) return this.#token;
    const provider = this.tokenProvider || globalThis[this.getAttribute("token-provider")];
    const token = typeof provider === "function" ? await provider() : null;
    if (!token) throw Object.assign(new Error("no token"), { noToken: true });
    return token;
  }

  // --- lifecycle --------------------------------------------------------------

  connectedCallback() {
    live.add(this);
    this.#render();
    if (this.state === "idle" || this.state === "stopped") this.#restart();
  }

  disconnectedCallback() {
    // A move within the page reconnects at once; only a real removal ends the session.
    queueMicrotask(() => {
      if (!this.isConnected) {
        live.delete(this);
        this.#listen(null);
        this.stop();
      }
    });
  }

  attributeChangedCallback(name, before, after) {
    if (before === after) return;
    if ((name === "camera" || name === "base-url") && this.isConnected && before !== null) {
      this.#restart();
    }
    if (name === "save-data") this.#follow();
    this.#render();
  }

  // Ends the session on the gateway (WHEP DELETE) and stays stopped.
  stop() {
    if (!this.#allows("stopped")) return; // already stopped
    this.#teardown(true);
    this.#listen(null);
    this.#transition("stopped");
  }

  render() {
    this.#render();
  }

  toggleFullscreen() {
    if (document.fullscreenElement === this) return document.exitFullscreen();
    if (this.requestFullscreen) return this.requestFullscreen().catch(() => {});
    if (this.webkitRequestFullscreen) return this.webkitRequestFullscreen();
    return this.#ui.video.webkitEnterFullscreen?.(); // iPhone: the video element only
  }

  // --- the session --------------------------------------------------------------

  // A new attempt; the one before it is aborted.
  #begin() {
    this.#attempt?.abort();
    this.#attempt = new AbortController();
    return this.#attempt.signal;
  }

  #restart() {
    this.#teardown(true);
    this.#failures = 0;
    this.#wasLive = false;
    this.#auto = null;
    this.#noLite = false;
    this.#quality = [];
    this.#upAfterMs = 0;
    this.#needKbps = 0;
    this.#connect(this.#begin());
  }

  async #connect(signal) {
    if (!this.#transition(this.#wasLive || this.#failures ? "reconnecting" : "connecting")) return;
    const camera = this.getAttribute("camera");
    let token;
    try {
      token = await this.#getToken();
    } catch (error) {
      if (signal.aborted) return;
      // No token where there was one (this tile played): the sign-in is over.
      if (this.#wasLive) return this.#finish("expired", SIGN_IN_EXPIRED);
      if (error.noToken) return this.#finish("error", { reason: "no token", code: "no_token" });
      return this.#finish("error", { reason: String(error.message || error), code: "token_error" });
    }
    if (signal.aborted) return;
    if (!camera) return this.#transition("idle");
    this.#listen(this.events); // the page's event stream: how a revocation reaches us
    const rendition = this.#wantedPicture();
    const url = this.#whepUrl(camera, rendition);
    const pc = this.#newPc();
    this.#pc = pc; // the attempt's end (#teardown) closes it
    this.#turnError = null;
    const video = this.#ui.video;
    pc.addEventListener("track", (event) => this.#show(video, event), { signal });
    const changed = () => this.#connectionChanged(pc, signal);
    pc.addEventListener("connectionstatechange", changed, { signal });
    let response;
    let offer;
    try {
      // The offer goes out before it is applied: ICE gathers once the answer has
      // told which TURN servers this session may use (#answer).
      offer = await pc.createOffer();
      if (signal.aborted) return;
      // Deliberately not aborted with the attempt: the gateway may have made the
      // session already, and only the answer's Location lets us end it (below).
      response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
        body: offer.sdp,
      });
    } catch {
      if (!signal.aborted) this.#dropped({ reason: "network error", code: "network_error" });
      return;
    }
    if (signal.aborted) {
      // Stopped while the offer was out: end the session that was made for nobody.
      if (response.status === 201) this.#delete(new URL(response.headers.get("Location"), url), token);
      return;
    }
    if (response.status !== 201) return this.#refused(signal, response);
    this.#sessionUrl = new URL(response.headers.get("Location"), url).href;
    this.#sessionId = this.#sessionUrl.split("/").pop();
    this.#sessionToken = token;
    if (rendition !== this.#rendition) {
      const why = rendition ? (this.saveData ? "data_saver" : "weak_link") : "user";
      this.#setRendition(rendition, why);
    } else this.#setRendition(rendition);
    let turnExpires;
    try {
      turnExpires = await this.#answer(pc, offer, response, this.#sessionUrl, token, signal, {
        turnFailed: (why) => (this.#turnError = why),
        // Only relays may be used and none came: the TURN server's reason, for good
        // when it refused the credentials; an unreachable one may come back.
        noRelay: (why) =>
          why.code === "turn_unreachable" ? this.#dropped(why) : this.#finish("error", why),
      });
    } catch (error) {
      if (!signal.aborted) {
        this.#finish("error", { reason: String(error.message || error), code: "bad_answer" });
      }
      return;
    }
    if (signal.aborted) return;
    this.#transition("waiting");
    this.#lastFrameAt = performance.now();
    every(signal, () => this.#tick(signal), 1000);
    this.#refreshRelay(turnExpires, signal);
    this.#renewBefore(signal, token);
  }

  // The session lasts no longer than `token`: renew it before the token's exp,
  // 60 s before or, for a short token, with a fifth of its lifetime left. Tied to
  // the attempt, like everything else of the session.
  #renewBefore(signal, token) {
    const exp = expiryOf(token);
    if (exp === null) return; // not a JWT with exp: the gateway ends the session and says why
    const iat = claimsOf(token).iat;
    const issued = typeof iat === "number" && iat * 1000 < exp ? iat * 1000 : Date.now();
    const lead = Math.min(RENEW_BEFORE_MS, Math.max(0, exp - issued) * RENEW_SHARE);
    at(signal, exp - lead, () => this.#renew(signal, token, exp));
  }

  // Ask the token provider for a fresh token (one that lapses later) and present it
  // for the session. With none yet (the provider failed, or gave nothing, the same
  // token or one that lapses no later: no loop of renewals either) or the gateway
  // unable to take it now (network, 5xx), ask again a little later, until the token
  // `current` lapses at `exp`; then the tile ends "sign-in expired". A refusal
  // (401, 403 not_owner, 404 unknown_session) ends it at once: the session cannot
  // be kept.
  async #renew(signal, current, exp) {
    let token = null;
    try {
      token = await this.#getToken();
    } catch {
      /* none now */
    }
    if (signal.aborted) return;
    if (token && token !== current && (expiryOf(token) ?? Infinity) > exp) {
      let response = null;
      try {
        response = await fetch(`${this.#sessionUrl}/renew`, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}` },
          signal,
        });
      } catch {
        /* the network: try again below */
      }
      if (signal.aborted) return;
      if (response?.ok) {
        this.#sessionToken = token; // the session's DELETE needs a live token too
        return this.#renewBefore(signal, token);
      }
      if (response && [401, 403, 404].includes(response.status)) {
        const { message: reason, code } = await errorOf(response);
        // 404: the gateway has no such session any more, so nothing to DELETE.
        if (!signal.aborted) this.#finish("expired", { reason, code }, response.status !== 404);
        return;
      }
    }
    const left = exp - Date.now();
    if (left <= 0) return this.#finish("expired", SIGN_IN_EXPIRED);
    const wait = Math.min(Math.max(left / 2, RENEW_RETRY_MIN_MS), RENEW_RETRY_MAX_MS);
    at(signal, Math.min(Date.now() + wait, exp), () => this.#renew(signal, current, exp));
  }

  async #refused(signal, response) {
    const { message: reason, code } = await errorOf(response);
    if (signal.aborted) return;
    this.#closePc();
    const status = response.status;
    if (code === "unknown_rendition" && !this.#noLite) {
      // This gateway has no lighter picture: the camera's own, from now on.
      this.#noLite = true;
      this.#auto = null;
      return this.#connect(signal);
    }
    if (status === 403) {
      // no_grant, not_yet_started, grant_ended, grant_revoked: the rule that failed
      if (code === "grant_ended") return this.#finish("ended", { reason, code });
      return this.#finish(this.#wasLive ? "revoked" : "denied", { reason, code });
    }
    if (status === 503 || status >= 500 || status === 429) {
      return this.#dropped({ reason, code: code || "unavailable" }, retryAfter(response));
    }
    // A token refused where one was taken before (this tile played): the sign-in is over.
    if (status === 401 && this.#wasLive) return this.#finish("expired", { reason, code });
    this.#finish("error", { reason, code }); // 400, 401, 404, 413, 415: trying again will not help
  }

  #connectionChanged(pc, signal) {
    if (signal.aborted || pc !== this.#pc) return;
    const state = pc.connectionState;
    const lost = { reason: "connection lost", code: "connection_lost" };
    if (state === "failed" || state === "closed") this.#dropped(this.#turnError || lost);
    if (state === "disconnected") {
      later(
        signal,
        () => pc.connectionState === "disconnected" && this.#dropped(lost),
        DISCONNECTED_GRACE_MS,
      );
    }
  }

  // The connection went away without a word from the gateway, or the gateway said
  // "later": end this attempt and start the next one after a while. A revocation
  // or the grant's end, announced on the event stream meanwhile, aborts the wait
  // (#sessionEnded); so does a 403 on the new offer.
  #dropped(why, retryAfterMs) {
    if (!this.#allows("reconnecting")) return;
    if (this.#switching) {
      // A new session is on its way (a weak link often takes the old one down): it
      // takes over once it shows its picture, the old one's last frame staying
      // until then; only if it fails does the tile reconnect (#dropSwitch).
      this.#switching.rescue ??= { why, retryAfterMs };
      return;
    }
    // Lost while the camera's own picture struggled (a weak link takes its session
    // down within seconds): come back with the lighter one.
    if (this.#rendition === null && this.#quality.filter(Boolean).length >= 2) this.#weakLink();
    const sessionId = this.#sessionId;
    this.#teardown(true); // DELETE, in case the gateway still holds the session
    this.#sessionId = sessionId; // its session_ended may still come, and stop the retry
    const delay = backoff(this.#failures, retryAfterMs);
    this.#failures += 1;
    const next = this.#begin();
    this.#transition("reconnecting", why);
    this.#ui.stats.textContent = TEXT[this.lang].in(Math.ceil(delay / 1000));
    later(next, () => this.#connect(next), delay);
  }

  // session_ended {session_id, camera_id, reason, code[, note]}: acted on by code.
  #sessionEnded = (event) => {
    const { session_id: id, reason, code } = event.detail;
    if (!id || id !== this.#sessionId) return; // #dropped and #finish ignore it once stopped
    // The tile's own DELETE (it gave the session up to reconnect): nothing to do.
    if (code === "viewer_left") return;
    const why = { reason, code, note: noteOf(event.detail) };
    const what = outcome(code);
    if (what !== "reconnect") return this.#finish(what, why, false);
    // A session already given up (#sessionUrl is gone) has its retry on the way.
    if (this.#sessionUrl) this.#dropped(why);
  };

  // session_moving {session_id, camera_id, node}: the camera is pulled by another
  // gateway node now (the balancer sends its new viewers there; this session's node
  // held it while that one was away). A switch moves the tile there before this
  // session ends, so the police line carries the camera once again.
  #sessionMoving = (event) => {
    const { session_id: id } = event.detail;
    if (!id || id !== this.#sessionId || this.state !== "live") return;
    this.#switchTo(this.#rendition, "camera_moved");
  };

  #grantsChanged = () => this.#render();

  // Use `source` (a GatewayEvents) from now on, or none: leave the one before, so
  // the page's stream closes when no player needs it, and join this one, offering
  // this player's token for the stream's next opening.
  #listen(source) {
    if (source === this.#listening) return;
    const grantTypes = ["hello", "grant_created", "grant_updated", "grant_revoked"];
    const before = this.#listening;
    if (before) {
      before.removeEventListener("session_ended", this.#sessionEnded);
      before.removeEventListener("session_moving", this.#sessionMoving);
      for (const type of grantTypes) before.removeEventListener(type, this.#grantsChanged);
      before.leave?.(this);
    }
    this.#listening = source;
    if (source) {
      source.addEventListener("session_ended", this.#sessionEnded);
      source.addEventListener("session_moving", this.#sessionMoving);
      for (const type of grantTypes) source.addEventListener(type, this.#grantsChanged);
      source.join?.(this, () => this.#getToken());
    }
  }

  // Stop for good: revoked, grant ended, no access, or an error that retrying won't fix.
  #finish(state, why, deleteSession = true) {
    if (!this.#allows(state)) return;
    this.#teardown(deleteSession);
    this.#listen(null); // nothing more to hear until a restart
    this.#transition(state, why);
  }

  // End the attempt: abort it (its timers, listeners and pending steps), end its
  // session on the gateway (WHEP DELETE) if asked, and close its connection.
  #teardown(deleteSession) {
    if (this.#switching) this.#dropSwitch(this.#switching, false);
    this.#attempt?.abort();
    this.#attempt = null;
    this.#last = null;
    this.stats = {};
    const pc = this.#pc;
    const url = deleteSession && this.#sessionUrl;
    this.#closePc(false);
    this.#sessionUrl = null;
    this.#sessionId = null;
    // DELETE first, then close: closed first, the gateway would see "connection lost".
    if (url) this.#delete(url, this.#sessionToken).finally(() => pc?.close());
    else pc?.close();
  }

  #closePc(close = true) {
    if (close) this.#pc?.close();
    this.#pc = null;
    this.#ui.video.srcObject = null;
  }

  // Not tied to an attempt: it is what ends one, and must go out even as the page closes.
  async #delete(url, token) {
    try {
      await fetch(url, {
        method: "DELETE",
        headers: { Authorization: `Bearer ${token}` },
        keepalive: true, // still sent when the page is closing
      });
    } catch {
      /* the gateway also notices a silent viewer within seconds */
    }
  }

  // --- WHEP: the peer connection, the answer, trickle ICE and TURN --------------

  #policy() {
    return this.getAttribute("ice-transport-policy") === "relay" ? "relay" : "all";
  }

  #newPc() {
    const pc = new RTCPeerConnection({ iceServers: [], iceTransportPolicy: this.#policy() });
    pc.addTransceiver("video", { direction: "recvonly" });
    return pc;
  }

  #whepUrl(camera, rendition) {
    const url = new URL(`whep/${encodeURIComponent(camera)}`, this.baseUrl);
    if (rendition) url.searchParams.set("rendition", rendition);
    return url;
  }

  #show(video, event) {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
  }

  // Apply a 201 answer. The session's ICE servers (its Link headers: TURN with a
  // username and credential of its own) are set before the offer is applied, so
  // the browser gathers relay candidates from them at once; every candidate it
  // finds is trickled to the session (WHEP PATCH, RFC 8840), a few at a time.
  // `on.turnFailed(why)` hears of a TURN server that refused or could not be
  // reached; `on.noRelay(why)` is told when only relays may be used and none came.
  // Returns when the session's TURN credential expires (ms since 1970), if it has one.
  async #answer(pc, offer, response, sessionUrl, token, signal, on) {
    const sdp = await response.text();
    const servers = iceServersOf(response);
    // The policy the connection has (the attribute's, or one a page forced on it).
    const { iceTransportPolicy } = pc.getConfiguration();
    pc.setConfiguration({ iceServers: servers, iceTransportPolicy });
    const field = (name) => new RegExp(`^a=${name}:(.+)$`, "m").exec(offer.sdp)?.[1].trim();
    const head = [
      `a=ice-ufrag:${field("ice-ufrag")}`,
      `a=ice-pwd:${field("ice-pwd")}`,
      "m=video 9 UDP/TLS/RTP/SAVPF 0",
      `a=mid:${field("mid") ?? "0"}`,
    ];
    const etag = response.headers.get("ETag") || "*";
    let queued = [];
    let batch = null;
    let relays = 0;
    let turnError = null;
    const send = (end) => {
      clearTimeout(batch);
      batch = null;
      if (signal.aborted || (!queued.length && !end)) return;
      const lines = [...head, ...queued.map((c) => `a=${c}`), ...(end ? ["a=end-of-candidates"] : [])];
      queued = [];
      fetch(sessionUrl, {
        method: "PATCH",
        headers: {
          "Content-Type": "application/trickle-ice-sdpfrag",
          "If-Match": etag,
          Authorization: `Bearer ${token}`,
        },
        body: `${lines.join("\r\n")}\r\n`,
      }).catch(() => {}); // the gateway also learns our address from our checks
    };
    pc.addEventListener(
      "icecandidate",
      ({ candidate }) => {
        if (candidate?.candidate) {
          if (candidate.type === "relay") relays += 1;
          queued.push(candidate.candidate);
          batch ??= setTimeout(() => send(false), TRICKLE_BATCH_MS);
          return;
        }
        if (candidate) return; // an empty one ends a section; null ends gathering
        send(true);
        if (iceTransportPolicy !== "relay" || relays || signal.aborted) return;
        on.noRelay(
          turnError ||
            (servers.length
              ? { reason: "no relay candidate from the TURN server", code: "turn_unreachable" }
              : { reason: "the gateway offers no TURN server", code: "relay_unavailable" }),
        );
      },
      { signal },
    );
    pc.addEventListener(
      "icecandidateerror",
      (event) => {
        if (!/^turns?:/.test(event.url || "")) return;
        const refused = [401, 403, 437, 438, 441].includes(event.errorCode);
        turnError = refused
          ? {
              reason: `TURN server refused the credentials (${event.errorCode} ${event.errorText})`,
              code: "turn_refused",
            }
          : { reason: `TURN server unreachable (${event.errorCode})`, code: "turn_unreachable" };
        on.turnFailed?.(turnError);
      },
      { signal },
    );
    await pc.setLocalDescription(offer);
    await pc.setRemoteDescription({ type: "answer", sdp });
    // coturn's REST usernames begin with their expiry: "<unix time>:<name>".
    const expiries = servers
      .map((server) => 1000 * Number(/^(\d+):/.exec(server.username)?.[1]))
      .filter(Number.isFinite);
    return expiries.length ? Math.min(...expiries) : undefined;
  }

  // A relayed session's TURN credential expires: coturn then refuses to refresh the
  // allocation, and the relay ends within its lifetime (10 minutes by default). A
  // little before that, a switch to a new session with fresh credentials, made
  // before the old one is broken. Not when the grant ends by then (as it was when
  // the credential was made, unless it was extended since): the session ends anyway.
  #refreshRelay(expiresAt, signal) {
    const remaining = expiresAt - Date.now();
    if (!(remaining > 10000)) return;
    const refresh = async () => {
      const grantEnds = this.#endsAt()?.getTime();
      if (grantEnds && expiresAt >= grantEnds - 5000) return;
      if (this.#switching || !(await this.#relayed())) return;
      this.#switchTo(this.#rendition, "turn_refresh");
    };
    later(signal, refresh, remaining - Math.min(60000, remaining / 4));
  }

  async #relayed() {
    const stats = await this.#pc?.getStats().catch(() => null);
    let relayed = false;
    stats?.forEach((s) => {
      const pair = s.type === "transport" && stats.get(s.selectedCandidatePairId);
      if (pair) relayed = stats.get(pair.localCandidateId)?.candidateType === "relay";
    });
    return relayed;
  }

  // --- the picture: the camera's own, or the lighter one --------------------------

  #liteName() {
    return this.getAttribute("lite-rendition") || "low";
  }

  // The picture a new session asks for: the lighter one with the data saver, or
  // when the player chose it by itself on a weak link; null: the camera's own.
  #wantedPicture() {
    if (this.#noLite) return null;
    return this.saveData ? this.#liteName() : this.#auto;
  }

  // The session's picture; `why` (the picture changed): tell the page.
  #setRendition(rendition, why) {
    this.#rendition = rendition;
    this.#quality = [];
    this.#goodMs = 0;
    if (why) this.dispatchEvent(new CustomEvent("renditionchange", { detail: { rendition, why } }));
  }

  // Playing something else than wanted (the data saver was switched): switch now.
  #follow() {
    if (this.#switching || !this.#pc || !["live", "waiting"].includes(this.state)) return;
    const wanted = this.#wantedPicture();
    if (wanted !== this.#rendition) this.#switchTo(wanted, this.saveData ? "data_saver" : "user");
  }

  #makeVideo() {
    const video = document.createElement("video");
    for (const name of ["muted", "autoplay", "playsinline"]) video.setAttribute(name, "");
    video.muted = true;
    this.#watchVideo(video);
    return video;
  }

  #watchVideo(video) {
    video.addEventListener("playing", () => video === this.#ui.video && this.#sawPicture());
  }

  // A switch makes a new session with the other picture before the old one is
  // broken: the old one ends only once the new one shows its picture (drawn beneath
  // the old one until then), so the tile never goes black. Each is a session of its
  // own on the gateway, audited as any other. A switch that fails (refused, or no
  // picture within switchTimeoutMs) leaves the old session playing.
  async #switchTo(rendition, why) {
    if (this.#switching || !this.#pc) return;
    const camera = this.getAttribute("camera");
    const controller = new AbortController();
    const { signal } = controller;
    const pending = { controller, rendition, why, pc: null, video: null, url: null, id: null };
    this.#switching = pending;
    this.#render();
    try {
      const token = (pending.token = await this.#getToken());
      if (signal.aborted) return;
      const pc = (pending.pc = this.#newPc());
      const video = (pending.video = this.#makeVideo());
      this.#ui.video.before(video); // beneath the picture shown now
      pc.addEventListener("track", (event) => this.#show(video, event), { signal });
      const offer = await pc.createOffer();
      if (signal.aborted) return;
      const url = this.#whepUrl(camera, rendition);
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
        body: offer.sdp,
      });
      if (response.status === 201) {
        pending.url = new URL(response.headers.get("Location"), url).href;
        pending.id = pending.url.split("/").pop();
      }
      if (signal.aborted) return void this.#dropSwitch(pending);
      if (response.status !== 201) {
        const { code } = await errorOf(response);
        if (code === "unknown_rendition") this.#noLite = true;
        throw new Error(code || String(response.status));
      }
      pending.turnExpires = await this.#answer(pc, offer, response, pending.url, token, signal, {
        noRelay: () => controller.abort(),
      });
      await picture(video, signal, this.adaptation.switchTimeoutMs);
      if (this.#switching === pending) this.#adopt(pending);
    } catch {
      if (this.#switching === pending) this.#dropSwitch(pending);
    }
  }

  // The switch is given up: its session ends, the old one plays on (or, if it was
  // lost meanwhile, the tile reconnects now, unless `resume` is false).
  #dropSwitch(pending, resume = true) {
    pending.controller.abort();
    this.#switching = null;
    if (pending.url) this.#delete(pending.url, pending.token).finally(() => pending.pc?.close());
    else pending.pc?.close();
    if (pending.video) {
      pending.video.srcObject = null;
      pending.video.remove();
    }
    if (pending.why === "link_recovered") {
      // Still on the lighter picture: wait longer before the next try.
      this.#auto = this.#rendition;
      this.#backOffUp();
    }
    if (this.#noLite) this.#auto = null;
    this.#render();
    if (pending.rescue && resume) return this.#dropped(pending.rescue.why, pending.rescue.retryAfterMs);
    // Asked for by the user: try again in a while (a tick of an attempt that lives).
    if (pending.why === "data_saver" || pending.why === "user") {
      const attempt = this.#attempt?.signal;
      if (attempt) later(attempt, () => this.#follow(), 5000);
    }
  }

  // The new session shows its picture: it becomes the tile's session, and the old
  // one ends (WHEP DELETE, then its connection closes).
  #adopt(pending) {
    const old = { pc: this.#pc, url: this.#sessionUrl, token: this.#sessionToken, video: this.#ui.video };
    this.#switching = null;
    this.#attempt?.abort(); // the old session's listeners and timers
    this.#attempt = pending.controller;
    const { signal } = pending.controller;
    const pc = pending.pc;
    this.#pc = pc;
    this.#sessionUrl = pending.url;
    this.#sessionId = pending.id;
    this.#sessionToken = pending.token;
    this.#ui.video = pending.video;
    const changed = pending.rendition !== this.#rendition;
    this.#setRendition(pending.rendition, changed ? pending.why : undefined);
    this.#last = null;
    pc.addEventListener("connectionstatechange", () => this.#connectionChanged(pc, signal), {
      signal,
    });
    every(signal, () => this.#tick(signal), 1000);
    this.#refreshRelay(pending.turnExpires, signal);
    this.#renewBefore(signal, pending.token); // the new session ends with its own sign-in
    this.#sawPicture();
    if (old.url) this.#delete(old.url, old.token).finally(() => old.pc?.close());
    else old.pc?.close();
    old.video.srcObject = null;
    old.video.remove();
    this.#render();
    this.#follow(); // the data saver may have been switched meanwhile
  }

  // The link is too weak for the camera's own picture: the lighter one from now on.
  #weakLink() {
    // Down again soon after going up: that try failed, so the next waits longer.
    if (this.#upAt && performance.now() - this.#upAt < this.adaptation.bounceMs) this.#backOffUp();
    this.#auto = this.#liteName();
  }

  #backOffUp() {
    const a = this.adaptation;
    this.#upAfterMs = Math.min((this.#upAfterMs || a.upAfterMs) * 2, a.upAfterMaxMs);
  }

  // One second of getStats: good or bad for the picture, and what follows. Only
  // while connected, not during a switch, and not with adaptive="off".
  #judge(inbound, last, pair, kbps) {
    const a = this.adaptation;
    if (this.#switching || this.#noLite || this.getAttribute("adaptive") === "off") return;
    if (this.#pc?.connectionState !== "connected") return;
    const lost = Math.max(0, inbound.packetsLost - last.packetsLost);
    const got = inbound.packetsReceived - last.packetsReceived;
    const froze =
      inbound.framesDecoded === last.framesDecoded ||
      (inbound.freezeCount ?? 0) > (last.freezeCount ?? 0);
    const estimate = (pair?.availableIncomingBitrate ?? 0) / 1000;
    const short = estimate > 0 && this.#needKbps > 0 && estimate < this.#needKbps;
    const lossy = lost / Math.max(1, lost + got) > a.loss;
    const bad = lossy || froze || short;
    // What this second was like, for a page (or a test) to show.
    this.stats.link = bad ? [lossy && "loss", froze && "frozen", short && "bandwidth"].filter(Boolean).join(",") : "good";
    this.#quality = [...this.#quality, bad].slice(-a.window);
    if (this.#rendition === null) {
      // What the camera's own picture needs, from its good seconds (the first ones
      // carry the catch-up burst).
      if (!bad && this.#quality.length > 2) {
        this.#needKbps = this.#needKbps ? 0.8 * this.#needKbps + 0.2 * kbps : kbps;
      }
      const bads = this.#quality.filter(Boolean).length;
      if (this.#quality.length < a.window || bads < a.badToSwitch || this.saveData) return;
      this.#weakLink();
      this.#switchTo(this.#auto, "weak_link");
    } else if (this.#auto && !this.saveData) {
      this.#goodMs = bad ? 0 : this.#goodMs + 1000;
      if (this.#goodMs < (this.#upAfterMs || a.upAfterMs)) return;
      this.#auto = null;
      this.#upAt = performance.now();
      this.#goodMs = 0; // a try that fails counts its wait from the start again
      this.#switchTo(null, "link_recovered");
    }
  }

  // --- what the tile shows ------------------------------------------------------

  #sawPicture() {
    this.#lastFrameAt = performance.now();
    if (this.state === "waiting") {
      this.#wasLive = true;
      this.#failures = 0;
      this.#transition("live");
    }
  }

  async #tick(signal) {
    this.#render();
    const pc = this.#pc;
    if (!pc || signal.aborted) return;
    let inbound;
    let pair;
    (await pc.getStats().catch(() => new Map())).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
    if (!inbound || signal.aborted) return;
    const last = this.#last;
    this.#last = inbound;
    if (last && inbound.framesDecoded > last.framesDecoded) this.#sawPicture();
    else if (this.state === "live" && performance.now() - this.#lastFrameAt > STALL_MS) {
      this.#transition("waiting");
    }
    if (!last) return;
    const seconds = (inbound.timestamp - last.timestamp) / 1000;
    const emitted = inbound.jitterBufferEmittedCount - last.jitterBufferEmittedCount;
    const buffer = emitted > 0 ? (inbound.jitterBufferDelay - last.jitterBufferDelay) / emitted : 0;
    const rtt = pair?.currentRoundTripTime ?? 0;
    this.stats = {
      framesDecoded: inbound.framesDecoded,
      width: inbound.frameWidth,
      height: inbound.frameHeight,
      bitrateKbps: Math.round(((inbound.bytesReceived - last.bytesReceived) * 8) / seconds / 1000),
      latencyMs: Math.round((buffer + rtt / 2) * 1000),
      rendition: this.#rendition,
    };
    this.#judge(inbound, last, pair, this.stats.bitrateKbps);
    this.#render();
  }

  #allows(state) {
    return TRANSITIONS[this.state].has(state);
  }

  // The one place the state changes. `why`: {reason (people's words), code (what to
  // act on), note (an administrator's words)}. A transition not in TRANSITIONS is
  // refused: nothing changes and it returns false.
  #transition(state, { reason = "", code = "", note = "" } = {}) {
    if (!this.#allows(state)) return false;
    const changed = state !== this.state || reason !== this.reason || code !== this.code;
    this.state = state;
    this.reason = reason;
    this.code = code;
    this.#note = note;
    this.setAttribute("state", state);
    this.#render();
    if (!changed) return true;
    this.dispatchEvent(new CustomEvent("statechange", { detail: { state, reason, code } }));
    if (state === "revoked" || state === "ended" || state === "expired") {
      this.dispatchEvent(new CustomEvent(state, { detail: { reason, code } }));
    }
    return true;
  }

  #endsAt() {
    const given = this.getAttribute("ends-at");
    if (given) return new Date(given);
    return this.events.endsAt(this.getAttribute("camera"));
  }

  #render() {
    const lang = this.lang;
    const text = TEXT[lang];
    const ui = this.#ui;
    const said = translateReason({ code: this.code, reason: this.reason, note: this.#note }, lang);
    // Not twice: a tile that says 登入已逾時 needs no second line saying so.
    const reason = said.toLowerCase() === text[this.state].toLowerCase() ? "" : said;
    const terminal = TERMINAL.has(this.state) && this.state !== "stopped";
    ui.label.textContent = this.getAttribute("label") || this.getAttribute("camera") || "";
    ui.state.textContent = text[this.state] + (reason && !terminal ? ` · ${reason}` : "");
    ui.message.textContent = terminal ? text[this.state] + (reason ? `\n${reason}` : "") : "";
    const s = this.stats;
    if (this.state === "live" && s.bitrateKbps !== undefined) {
      ui.stats.textContent = `${text.latency} ${s.latencyMs} ms · ${s.bitrateKbps} kbps`;
    } else if (this.state !== "reconnecting") {
      ui.stats.textContent = "";
    }
    ui.fullscreen.title = ui.fullscreen.ariaLabel = text.fullscreen;
    ui.saver.textContent = text.saver;
    ui.saver.title = this.#noLite ? text.noLite : text.saverTitle;
    ui.saver.setAttribute("aria-pressed", String(this.saveData && !this.#noLite));
    ui.saver.disabled = this.#noLite;
    // A switch to the same picture (a moved camera, fresh TURN credentials) shows nothing.
    const switching = this.#switching?.rendition !== this.#rendition && this.#switching;
    ui.lite.hidden = TERMINAL.has(this.state) || (!switching && this.#rendition === null);
    if (switching) ui.lite.textContent = switching.rendition ? text.toLite : text.toFull;
    else ui.lite.textContent = this.#auto && !this.saveData ? text.liteAuto : text.lite;
    const ends = TERMINAL.has(this.state) ? null : this.#endsAt();
    const left = ends ? Math.max(0, Math.floor((ends - Date.now()) / 1000)) : Infinity;
    ui.countdown.hidden = left > COUNTDOWN_FROM_S;
    if (!ui.countdown.hidden) {
      const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      ui.countdown.textContent = `${text.left} ${clock}`;
      ui.countdown.classList.toggle("urgent", left < 60);
    }
  }
}


// Players follow the page's language when it changes (<html lang="...">), and end
// their sessions when the page goes away (or into the back-forward cache).
const live = new Set();
addEventListener("pagehide", () => live.forEach((player) => player.stop()));
addEventListener("pageshow", (event) => {
  if (event.persisted) live.forEach((player) => player.connectedCallback());
});
new MutationObserver(() => live.forEach((player) => player.render())).observe(
  document.documentElement,
  { attributes: true, attributeFilter: ["lang"] },
);

if (!customElements.get("cctv-player")) customElements.define("cctv-player", CctvPlayer);
