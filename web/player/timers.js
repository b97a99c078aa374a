// Timers that belong to an attempt (an AbortSignal): aborting it clears them, so
// nothing of a stopped or replaced attempt acts again.

const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (about 24.8 days)

export function later(signal, callback, ms) {
  if (signal.aborted) return;
  const timer = setTimeout(callback, ms);
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
}

// At the wall-clock time `when` (ms since the epoch), tied to `signal` like later().
export function at(signal, when, callback) {
  const wait = when - Date.now();
  if (wait > MAX_TIMER_MS) later(signal, () => at(signal, when, callback), MAX_TIMER_MS);
  else later(signal, callback, Math.max(0, wait));
}

export function every(signal, callback, ms) {
  if (signal.aborted) return;
  const timer = setInterval(callback, ms);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}
