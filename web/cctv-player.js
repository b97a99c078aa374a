// <cctv-player camera="cam-id" token-provider="getToken">: one live CCTV camera.
//
// The entry of the element: it defines <cctv-player> from the modules under
// player/ (ES modules of one job each, no build step), which load from beside it:
//   element.js  the element: its state, session and tile      states.js  the state table
//   whep.js     the WHEP client (offer, trickle, DELETE)      words.js   both languages' words
//   renewal.js  keeping the session signed in                 link.js    the weak-link switch
//   turn.js     TURN servers and credentials                  events.js  the page's event stream
//   picture.js, retry.js, timers.js, style.js: the video, backoff, attempt timers, look
//
// It plays the camera over WHEP, shows its state
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

import { CctvPlayer } from "./player/element.js";

export { CctvPlayer };
export { GatewayEvents, gatewayEvents } from "./player/events.js";

if (!customElements.get("cctv-player")) customElements.define("cctv-player", CctvPlayer);
