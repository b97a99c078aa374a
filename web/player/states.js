// The player's states, the only transitions between them, and which state each of
// the gateway's codes leads to: try again, or stop for good.

// "connecting" from anywhere is a restart (a new camera or gateway, a token after
// an error, back on the page); "stopped" from any other state is stop().
//   idle          not started, or no camera to play
//   connecting    the first offer is on its way
//   waiting       connected, waiting for the picture (or the picture stalled)
//   live          playing
//   reconnecting  lost or refused for now (network, 503, 429, 5xx); retrying
//   revoked, ended, expired, denied, error
//                 stopped for good, with the reason; only a restart leaves them
//                 (expired: the sign-in lapsed and could not be renewed)
//   stopped       stop(), or off the page
export const TRANSITIONS = Object.fromEntries(
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
export const TERMINAL = new Set(["revoked", "ended", "expired", "denied", "error", "stopped"]);

// Why the gateway ended a session (session_ended.code), when that is no reason to
// stop watching: the network, a gateway restart, a node lost or cut off from its
// cluster (another node decides the next try), a camera whose masks could not be
// applied just now (the gateway tries a fresh decode after a moment), an audit
// record that could not land yet (the next offer waits for it: 503).
export const TRANSIENT = new Set([
  "connection_lost",
  "never_connected",
  "negotiation_failed",
  "viewer_closed",
  "shutdown",
  "media_failed",
  "mask_failed",
  "not_recorded",
  "node_lost",
  "node_isolated",
]);

// The access itself is over: the grant's window ran out. (An emergency's end, by a
// person or by its time, reads as access withdrawn: "revoked", with its words.)
const TIME_UP = new Set(["grant_ended"]);

// What a session_ended code means for the tile: "reconnect", or the final state.
export function outcome(code) {
  if (TRANSIENT.has(code)) return "reconnect";
  if (code === "token_expired") return "expired";
  return TIME_UP.has(code) ? "ended" : "revoked";
}

// What a refused offer (a JSON error's status and code) means: "reconnect" (503,
// 5xx, 429: the gateway says later), "lighter_missing" (no such rendition here), or
// the final state. `wasLive`: this tile played before (a refusal now revokes it).
export function refusal(status, code, wasLive) {
  if (code === "unknown_rendition") return "lighter_missing";
  // A 307 to another node whose signed link went stale before the offer came: a new
  // offer to the camera's own URL gets a fresh one.
  if (code === "bad_spread") return "reconnect";
  if (status === 403) {
    // no_grant, not_yet_started, grant_pending, authorization_withdrawn, …: the rule that failed
    if (TIME_UP.has(code)) return "ended";
    return wasLive ? "revoked" : "denied";
  }
  if (status === 503 || status >= 500 || status === 429) return "reconnect";
  // A token refused where one was taken before (this tile played): the sign-in is over.
  if (status === 401 && wasLive) return "expired";
  return "error"; // 400, 401, 404, 413, 415: trying again will not help
}
