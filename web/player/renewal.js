// Sign-in: a session lasts no longer than the token that opened it. Before the
// token's `exp` the player asks its token provider for a fresh one and presents it
// to the gateway (POST <session URL>/renew); without one by `exp` the tile ends
// "sign-in expired".

import { errorOf } from "./whep.js";
import { at } from "./timers.js";

const RENEW_BEFORE_MS = 60000; // renew the session this long before its token's exp …
const RENEW_SHARE = 0.2; // … or with this share of a short token's lifetime left
// No fresh token yet (the provider gave none, or the same one): ask again after half
// of the time left, within these bounds, and give up at exp.
const RENEW_RETRY_MIN_MS = 2000;
const RENEW_RETRY_MAX_MS = 15000;

// The sign-in lapsed and no fresh token came: the gateway's own words and code
// for it (session_ended), so the tile says the same whichever noticed first.
export const SIGN_IN_EXPIRED = { reason: "sign-in expired", code: "token_expired" };

// A JWT's claims, read without checking the signature (the gateway checks it): the
// player only needs to know when its token lapses. Null for anything else.
export function claimsOf(token) {
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
export function expiryOf(token) {
  const exp = claimsOf(token)?.exp;
  return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : null;
}

// Keep the session signed in past `token`: renew it before the token's exp, 60 s
// before or, for a short token, with a fifth of its lifetime left. Tied to the
// attempt's `signal`, like everything else of the session. `session`:
//   url()                 the session's URL now
//   getToken()            a token from the provider (may throw)
//   renewed(token)        the gateway took `token` for the session
//   lapsed(why, remove)   the sign-in is over (remove: DELETE the session too)
export function keepSignedIn(signal, token, session) {
  const exp = expiryOf(token);
  if (exp === null) return; // not a JWT with exp: the gateway ends the session and says why
  const iat = claimsOf(token).iat;
  const issued = typeof iat === "number" && iat * 1000 < exp ? iat * 1000 : Date.now();
  const lead = Math.min(RENEW_BEFORE_MS, Math.max(0, exp - issued) * RENEW_SHARE);
  at(signal, exp - lead, () => renew(signal, token, exp, session));
}

// Ask the token provider for a fresh token (one that lapses later) and present it
// for the session. With none yet (the provider failed, or gave nothing, the same
// token or one that lapses no later: no loop of renewals either) or the gateway
// unable to take it now (network, 5xx), ask again a little later, until the token
// `current` lapses at `exp`; then the tile ends "sign-in expired". A refusal
// (401, 403 not_owner, 404 unknown_session) ends it at once: the session cannot
// be kept.
async function renew(signal, current, exp, session) {
  let token = null;
  try {
    token = await session.getToken();
  } catch {
    /* none now */
  }
  if (signal.aborted) return;
  if (token && token !== current && (expiryOf(token) ?? Infinity) > exp) {
    let response = null;
    try {
      response = await fetch(`${session.url()}/renew`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
        signal,
      });
    } catch {
      /* the network: try again below */
    }
    if (signal.aborted) return;
    if (response?.ok) {
      session.renewed(token); // the session's DELETE needs a live token too
      return keepSignedIn(signal, token, session);
    }
    if (response && [401, 403, 404].includes(response.status)) {
      const { message: reason, code } = await errorOf(response);
      // 404: the gateway has no such session any more, so nothing to DELETE.
      if (!signal.aborted) session.lapsed({ reason, code }, response.status !== 404);
      return;
    }
  }
  const left = exp - Date.now();
  if (left <= 0) return session.lapsed(SIGN_IN_EXPIRED, true);
  const wait = Math.min(Math.max(left / 2, RENEW_RETRY_MIN_MS), RENEW_RETRY_MAX_MS);
  at(signal, Math.min(Date.now() + wait, exp), () => renew(signal, current, exp, session));
}
