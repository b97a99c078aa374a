// How long a tile waits before its next offer after a failure.

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000]; // before jitter: see backoff()
const RETRY_AFTER_JITTER = 0.2; // up to this much of Retry-After is added at random

// How long to wait before try number `failures` + 1. With "equal jitter" each step
// is between half and all of BACKOFF_MS: tiles that lost the gateway together (a
// restart) come back spread over a second, two, four …, not in the same
// millisecond. The gateway's Retry-After (ms) is a minimum: jitter only adds to it.
export function backoff(failures, retryAfterMs) {
  if (retryAfterMs > 0) return retryAfterMs * (1 + RETRY_AFTER_JITTER * Math.random());
  const step = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
  return step / 2 + (step / 2) * Math.random();
}

// Retry-After in ms (delay-seconds or an HTTP date), or undefined.
export function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return undefined;
  const seconds = Number(value);
  const ms = Number.isNaN(seconds) ? Date.parse(value) - Date.now() : seconds * 1000;
  return ms > 0 ? ms : undefined;
}
