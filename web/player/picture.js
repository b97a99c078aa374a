// The tile's <video> elements, and waiting for one to show a picture.

import { every, later } from "./timers.js";

export function makeVideo() {
  const video = document.createElement("video");
  for (const name of ["muted", "autoplay", "playsinline"]) video.setAttribute(name, "");
  video.muted = true;
  return video;
}

// Resolves once `video` shows a picture, or rejects after `ms` or when aborted.
export function picture(video, signal, ms) {
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
