// The <cctv-player> element: one live camera in a tile. It ties the parts together
// (whep.js, states.js, words.js, renewal.js, link.js, turn.js, events.js) and owns
// the tile's state, its session and what the tile shows. See ../cctv-player.js for
// its attributes, properties and events.

import { gatewayEvents } from "./events.js";
import { ADAPTATION, LinkJudge } from "./link.js";
import { makeVideo, picture } from "./picture.js";
import { SIGN_IN_EXPIRED, keepSignedIn } from "./renewal.js";
import { backoff, retryAfter } from "./retry.js";
import { TERMINAL, TRANSITIONS, outcome, refusal } from "./states.js";
import { adoptStyle } from "./style.js";
import { every, later } from "./timers.js";
import { refreshDelay, relayed } from "./turn.js";
import { applyAnswer, deleteSession, errorOf, newPeerConnection, postOffer, whepUrl } from "./whep.js";
import { TEXT, noteOf, translateReason } from "./words.js";

const HERE = new URL("../../", import.meta.url).href; // the gateway that served this file
const DISCONNECTED_GRACE_MS = 2500; // "disconnected" often heals by itself
const STALL_MS = 3000; // no new frame for this long: back to "waiting for picture"
const COUNTDOWN_FROM_S = 600; // show the grant's remaining time in its last 10 minutes

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
  #lastFrameTime = 0; // the wall-clock time of the last new frame (ms since 1970), for the tile
  #fitted = ""; // what the bars were last fitted for (#fit)
  // This camera's masks lifted for the viewer: grant id -> until (ms since 1970).
  #masksLifted = new Map();
  #masksTimer = 0;
  #note = ""; // the administrator's words, with code "revoked"
  #ui;
  // Which picture: the current session's rendition (null: the camera's own), the one
  // chosen by itself on a weak link, and a switch under way (a second session that
  // replaces the first once it shows its picture).
  #rendition = null;
  #auto = null;
  #switching = null;
  #noLite = false; // the gateway has no such rendition (400 unknown_rendition)
  #link = new LinkJudge(() => this.adaptation); // the link's seconds: when to switch
  #decodeStalls = 0; // seconds the browser decoded nothing new while packets came (its CPU)
  #turnError = null; // the last TURN failure of this session's ICE gathering

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    // The bars: the name, the time of the last frame and the state always show; the
    // badges, the stats and the buttons give way first when a tile is narrow (#fit).
    root.innerHTML = `<video muted autoplay playsinline></video>
      <div class="bar top"><span class="label"></span><span class="masks" hidden></span><span class="lite" hidden></span><span class="countdown" hidden></span><slot name="actions"></slot></div>
      <div class="message" role="status"></div>
      <div class="bar bottom"><span class="state" aria-live="polite"><span class="word"></span><span class="why"></span></span><span class="clock"></span><span class="stats"></span>
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
      top: $(".top"),
      bottom: $(".bottom"),
      label: $(".label"),
      masks: $(".masks"),
      countdown: $(".countdown"),
      word: $(".word"),
      why: $(".why"),
      clock: $(".clock"),
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
    sizes.observe(this);
    this.#render();
    if (this.state === "idle" || this.state === "stopped") this.#restart();
  }

  disconnectedCallback() {
    // A move within the page reconnects at once; only a real removal ends the session.
    queueMicrotask(() => {
      if (!this.isConnected) {
        live.delete(this);
        sizes.unobserve(this);
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
    this.#masksLifted.clear(); // another camera, perhaps: its lifts are its own
    this.#failures = 0;
    this.#wasLive = false;
    this.#auto = null;
    this.#noLite = false;
    this.#link.reset();
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
    const url = whepUrl(this.baseUrl, camera, rendition);
    const pc = newPeerConnection(this.#policy());
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
      // told which TURN servers this session may use (applyAnswer).
      offer = await pc.createOffer();
      if (signal.aborted) return;
      // Deliberately not aborted with the attempt: the gateway may have made the
      // session already, and only the answer's Location lets us end it (below).
      response = await postOffer(url, offer.sdp, token);
    } catch {
      if (!signal.aborted) this.#dropped({ reason: "network error", code: "network_error" });
      return;
    }
    if (signal.aborted) {
      // Stopped while the offer was out: end the session that was made for nobody.
      if (response.status === 201) deleteSession(new URL(response.headers.get("Location"), url), token);
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
      turnExpires = await applyAnswer(pc, offer, response, this.#sessionUrl, token, signal, {
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
    this.#keepSignedIn(signal, token);
  }

  // The session lasts no longer than `token` unless renewed (renewal.js).
  #keepSignedIn(signal, token) {
    keepSignedIn(signal, token, {
      url: () => this.#sessionUrl,
      getToken: () => this.#getToken(),
      renewed: (fresh) => (this.#sessionToken = fresh),
      lapsed: (why, remove) => this.#finish("expired", why, remove),
    });
  }

  async #refused(signal, response) {
    const { message: reason, code } = await errorOf(response);
    if (signal.aborted) return;
    this.#closePc();
    const what = refusal(response.status, code, this.#wasLive);
    if (what === "lighter_missing" && !this.#noLite) {
      // This gateway has no lighter picture: the camera's own, from now on.
      this.#noLite = true;
      this.#auto = null;
      return this.#connect(signal);
    }
    if (what === "reconnect") {
      return this.#dropped({ reason, code: code || "unavailable" }, retryAfter(response));
    }
    this.#finish(what === "lighter_missing" ? "error" : what, { reason, code });
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
    if (this.#rendition === null && this.#link.struggling()) this.#weakLink();
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

  // masks_lifted {camera_id, grant_id, until} / masks_restored {camera_id, grant_id}:
  // the badge shows while any of this camera's lifts lasts.
  #masksChanged = (event) => {
    const { camera_id: camera, grant_id: grant, until } = event.detail || {};
    if (!camera || camera !== this.getAttribute("camera")) return;
    if (event.type === "masks_restored") this.#masksLifted.delete(String(grant));
    else {
      const ends = Date.parse(until);
      if (Number.isFinite(ends)) this.#masksLifted.set(String(grant), ends);
    }
    this.#render();
  };

  // Whether this camera's masks are lifted now; the next render is due when it ends.
  #masksLiftedNow() {
    const now = Date.now();
    for (const [grant, until] of this.#masksLifted) if (until <= now) this.#masksLifted.delete(grant);
    clearTimeout(this.#masksTimer);
    if (!this.#masksLifted.size) return null;
    const ends = Math.max(...this.#masksLifted.values());
    this.#masksTimer = setTimeout(() => this.#render(), Math.min(ends - now + 50, 2 ** 31 - 1));
    return ends;
  }

  // Use `source` (a GatewayEvents) from now on, or none: leave the one before, so
  // the page's stream closes when no player needs it, and join this one, offering
  // this player's token for the stream's next opening.
  #listen(source) {
    if (source === this.#listening) return;
    const grantTypes = ["hello", "grant_created", "grant_updated", "grant_revoked"];
    const maskTypes = ["masks_lifted", "masks_restored"];
    const before = this.#listening;
    if (before) {
      before.removeEventListener("session_ended", this.#sessionEnded);
      before.removeEventListener("session_moving", this.#sessionMoving);
      for (const type of grantTypes) before.removeEventListener(type, this.#grantsChanged);
      for (const type of maskTypes) before.removeEventListener(type, this.#masksChanged);
      before.leave?.(this);
    }
    this.#listening = source;
    if (source) {
      source.addEventListener("session_ended", this.#sessionEnded);
      source.addEventListener("session_moving", this.#sessionMoving);
      for (const type of grantTypes) source.addEventListener(type, this.#grantsChanged);
      for (const type of maskTypes) source.addEventListener(type, this.#masksChanged);
      source.join?.(this, () => this.#getToken());
    }
  }

  // Stop for good: revoked, grant ended, no access, or an error that retrying won't fix.
  #finish(state, why, endSession = true) {
    if (!this.#allows(state)) return;
    this.#teardown(endSession);
    this.#listen(null); // nothing more to hear until a restart
    this.#transition(state, why);
  }

  // End the attempt: abort it (its timers, listeners and pending steps), end its
  // session on the gateway (WHEP DELETE) if asked, and close its connection.
  #teardown(endSession) {
    if (this.#switching) this.#dropSwitch(this.#switching, false);
    this.#attempt?.abort();
    this.#attempt = null;
    this.#last = null;
    this.stats = {};
    const pc = this.#pc;
    const url = endSession && this.#sessionUrl;
    this.#closePc(false);
    this.#sessionUrl = null;
    this.#sessionId = null;
    // DELETE first, then close: closed first, the gateway would see "connection lost".
    if (url) deleteSession(url, this.#sessionToken).finally(() => pc?.close());
    else pc?.close();
  }

  #closePc(close = true) {
    if (close) this.#pc?.close();
    this.#pc = null;
    this.#ui.video.srcObject = null;
  }

  // --- WHEP (whep.js) and TURN (turn.js) -----------------------------------------

  #policy() {
    return this.getAttribute("ice-transport-policy") === "relay" ? "relay" : "all";
  }

  #show(video, event) {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
  }

  // A relayed session's TURN credential expires: coturn then refuses to refresh the
  // allocation, and the relay ends within its lifetime (10 minutes by default). A
  // little before that, a switch to a new session with fresh credentials, made
  // before the old one is broken. Not when the grant ends by then (as it was when
  // the credential was made, unless it was extended since): the session ends anyway.
  #refreshRelay(expiresAt, signal) {
    const delay = refreshDelay(expiresAt);
    if (delay === null) return;
    const refresh = async () => {
      const grantEnds = this.#endsAt()?.getTime();
      if (grantEnds && expiresAt >= grantEnds - 5000) return;
      if (this.#switching || !(await relayed(this.#pc))) return;
      this.#switchTo(this.#rendition, "turn_refresh");
    };
    later(signal, refresh, delay);
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
    this.#link.newPicture();
    if (why) this.dispatchEvent(new CustomEvent("renditionchange", { detail: { rendition, why } }));
  }

  // Playing something else than wanted (the data saver was switched): switch now.
  #follow() {
    if (this.#switching || !this.#pc || !["live", "waiting"].includes(this.state)) return;
    const wanted = this.#wantedPicture();
    if (wanted !== this.#rendition) this.#switchTo(wanted, this.saveData ? "data_saver" : "user");
  }

  #makeVideo() {
    const video = makeVideo();
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
      const pc = (pending.pc = newPeerConnection(this.#policy()));
      const video = (pending.video = this.#makeVideo());
      this.#ui.video.before(video); // beneath the picture shown now
      pc.addEventListener("track", (event) => this.#show(video, event), { signal });
      const offer = await pc.createOffer();
      if (signal.aborted) return;
      const url = whepUrl(this.baseUrl, camera, rendition);
      const response = await postOffer(url, offer.sdp, token);
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
      pending.turnExpires = await applyAnswer(pc, offer, response, pending.url, token, signal, {
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
    if (pending.url) deleteSession(pending.url, pending.token).finally(() => pending.pc?.close());
    else pending.pc?.close();
    if (pending.video) {
      pending.video.srcObject = null;
      pending.video.remove();
    }
    if (pending.why === "link_recovered") {
      // Still on the lighter picture: wait longer before the next try.
      this.#auto = this.#rendition;
      this.#link.backOffUp();
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
    this.#keepSignedIn(signal, pending.token); // the new session ends with its own sign-in
    this.#sawPicture();
    if (old.url) deleteSession(old.url, old.token).finally(() => old.pc?.close());
    else old.pc?.close();
    old.video.srcObject = null;
    old.video.remove();
    this.#render();
    this.#follow(); // the data saver may have been switched meanwhile
  }

  // The link is too weak for the camera's own picture: the lighter one from now on.
  #weakLink() {
    this.#link.wentDown();
    this.#auto = this.#liteName();
  }

  // One second of getStats: good or bad for the picture, and what follows. Only
  // while connected, not during a switch, and not with adaptive="off".
  #judge(inbound, last, pair, kbps) {
    if (this.#switching || this.#noLite || this.getAttribute("adaptive") === "off") return;
    if (this.#pc?.connectionState !== "connected") return;
    const own = this.#rendition === null;
    const { link, stalled, act } = this.#link.second({
      inbound, last, pair, kbps, own, auto: this.#auto, saveData: this.saveData,
    });
    // What this second was like, for a page (or a test) to show.
    this.stats.link = link;
    this.stats.decodeStalls = (this.#decodeStalls += stalled ? 1 : 0);
    if (act === "down") {
      this.#weakLink();
      this.#switchTo(this.#auto, "weak_link");
    } else if (act === "up") {
      this.#auto = null;
      this.#switchTo(null, "link_recovered");
    }
  }

  // --- what the tile shows ------------------------------------------------------

  #sawPicture() {
    this.#lastFrameAt = performance.now();
    this.#lastFrameTime = Date.now();
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
    ui.label.textContent = ui.label.title = this.getAttribute("label") || this.getAttribute("camera") || "";
    ui.word.textContent = text[this.state];
    ui.why.textContent = reason && !terminal ? ` · ${reason}` : "";
    ui.state.title = ui.state.textContent;
    // The time of the last frame shown: a frozen picture is obvious at a glance.
    const seen = this.#lastFrameTime;
    const clock = seen ? new Date(seen).toLocaleTimeString("en-GB", { hour12: false }) : "--:--:--";
    ui.clock.textContent = clock;
    ui.clock.title = `${text.lastFrame} ${clock}`;
    const stale = seen && !TERMINAL.has(this.state) && performance.now() - this.#lastFrameAt > STALL_MS;
    ui.clock.classList.toggle("stale", Boolean(stale));
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
    // Masks lifted: while a grant's lift lasts and the tile shows (or waits for) a picture.
    const lifted = TERMINAL.has(this.state) ? null : this.#masksLiftedNow();
    ui.masks.hidden = !lifted;
    if (lifted) {
      ui.masks.textContent = text.masksLifted;
      const until = new Date(lifted).toLocaleTimeString("en-GB", { hour12: false });
      ui.masks.title = `${text.masksLiftedTitle} (${until})`;
    }
    const ends = TERMINAL.has(this.state) ? null : this.#endsAt();
    const left = ends ? Math.max(0, Math.floor((ends - Date.now()) / 1000)) : Infinity;
    ui.countdown.hidden = left > COUNTDOWN_FROM_S;
    if (!ui.countdown.hidden) {
      const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      ui.countdown.textContent = `${text.left} ${clock}`;
      ui.countdown.classList.toggle("urgent", left < 60);
    }
    this.#fit();
  }

  // Each bar on one line: when it does not fit, the badges give way (the lighter
  // picture's, then the countdown, then masks lifted), and below the stats, the data
  // saver, the state's reason and the fullscreen button; never the name, the state
  // or the time of the last frame, which take a second line when all else has gone.
  // Measured with nothing shrinking, once per change of size or words.
  #fit() {
    const ui = this.#ui;
    const width = this.clientWidth;
    if (!width) return;
    const parts = [ui.top, ui.bottom].flatMap((bar) => [...bar.children]);
    const key = [width, this.lang, ...parts.map((el) => `${el.hidden}${el.textContent}`)].join("|");
    if (key === this.#fitted) return;
    this.#fitted = key;
    const yielding = [
      [ui.top, [ui.lite, ui.countdown, ui.masks]],
      [ui.bottom, [ui.stats, ui.saver, ui.why, ui.fullscreen]],
    ];
    for (const [bar, parts] of yielding) {
      bar.classList.remove("wrap");
      bar.classList.add("fitting");
      for (const part of parts) part.classList.remove("yield");
      for (const part of parts) {
        if (bar.scrollWidth <= bar.clientWidth) break;
        part.classList.add("yield");
      }
      // Still too wide (a long name on a phone's 2×2): a second line rather than a
      // name cut short.
      bar.classList.toggle("wrap", bar.scrollWidth > bar.clientWidth);
      bar.classList.remove("fitting");
    }
  }

  // The tile's size changed (a layout, the wall, a rotated tablet): fit the bars again.
  resized() {
    this.#fit();
  }
}

// Players follow the page's language when it changes (<html lang="...">), and end
// their sessions when the page goes away (or into the back-forward cache).
const live = new Set();
const sizes = new ResizeObserver((entries) => entries.forEach((entry) => entry.target.resized()));
addEventListener("pagehide", () => live.forEach((player) => player.stop()));
addEventListener("pageshow", (event) => {
  if (event.persisted) live.forEach((player) => player.connectedCallback());
});
new MutationObserver(() => live.forEach((player) => player.render())).observe(
  document.documentElement,
  { attributes: true, attributeFilter: ["lang"] },
);
