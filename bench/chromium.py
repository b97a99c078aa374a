"""Time to first frame in headless Debian Chromium, with its default WebRTC settings.

mDNS host-candidate hiding stays on, as in real users' browsers. The page is served
from its own loopback origin (like a dashboard that embeds the player), so the WHEP
POST is cross-origin and pays the CORS preflight a real dashboard pays. The gateway
allows that origin through `[cors] origins` in the benchmark's config.

The clock is the page's `performance.now()`: from just before `fetch(POST)` to the
first `requestVideoFrameCallback` (or `videoWidth > 0`, whichever comes first).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp import web
from project import CHROMIUM, FLAGS

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>bench</title>
<body>
<script>
const GATHER_CAP_MS = 500; // as web/cctv-player.js: host candidates come in a few ms

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, GATHER_CAP_MS);
  });
}

window.benchJoin = async (url, token, holdMs, timeoutMs) => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = document.createElement("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.width = 320;
  document.body.appendChild(video);
  let first = null;
  let connectedAt = null;
  const gotFrame = new Promise((resolve) => {
    const mark = (how) => {
      if (first === null) {
        first = { t: performance.now(), how };
        resolve();
      }
    };
    if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(() => mark("rvfc"));
    const poll = () => {
      if (first !== null) return;
      if (video.videoWidth > 0) mark("videoWidth");
      else setTimeout(poll, 2);
    };
    poll();
  });
  // Every presented frame: [performance.now(), presentedFrames, rtpTimestamp].
  const presented = [];
  let logging = true;
  if ("requestVideoFrameCallback" in video) {
    const onFrame = (now, meta) => {
      presented.push([now, meta.presentedFrames, meta.rtpTimestamp ?? null]);
      if (logging) video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
  pc.addEventListener("track", (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
    video.play().catch(() => {});
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const mdns = (pc.localDescription.sdp.match(/a=candidate:.* ([^ ]+\\.local) /g) || []).length;
  const auth = { Authorization: `Bearer ${token}` };
  const t0 = performance.now();
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected" && connectedAt === null) connectedAt = performance.now();
  });
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", ...auth },
      body: pc.localDescription.sdp,
    });
  } catch (e) {
    pc.close();
    video.remove();
    return { error: String(e) };
  }
  const answerAt = performance.now();
  if (response.status !== 201) {
    pc.close();
    video.remove();
    return { error: `${response.status} ${await response.text()}` };
  }
  const sessionUrl = new URL(response.headers.get("Location"), url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  await Promise.race([gotFrame, new Promise((r) => setTimeout(r, timeoutMs))]);
  const result = {
    ttff_s: first ? (first.t - t0) / 1000 : null,
    how: first ? first.how : null,
    answer_s: (answerAt - t0) / 1000,
    connected_s: connectedAt === null ? null : (connectedAt - t0) / 1000,
    mdns_candidates: mdns,
  };
  if (first) {
    const before = video.getVideoPlaybackQuality().totalVideoFrames;
    await new Promise((r) => setTimeout(r, holdMs));
    const q = video.getVideoPlaybackQuality();
    result.frames_in_hold = q.totalVideoFrames;
    result.frames_at_first = before;
    result.hold_s = holdMs / 1000;
    result.size = [video.videoWidth, video.videoHeight];
    result.dropped_in_hold = q.droppedVideoFrames;
    result.presented_in_hold = presented.filter((p) => p[0] <= first.t + holdMs).length;
    // The live picture: the first presented frame followed by a real frame interval
    // (>= 20 ms of RTP time); presented frames before it are a squeezed replay.
    for (let i = 0; i + 1 < presented.length; i++) {
      const a = presented[i][2], b = presented[i + 1][2];
      if (a === null || b === null) break;
      if (((b - a) >>> 0) >= 1800) {
        result.live_s = (presented[i][0] - t0) / 1000;
        result.replayed_frames_presented = i;
        break;
      }
    }
  }
  logging = false;
  pc.close();
  video.srcObject = null;
  video.remove();
  await fetch(sessionUrl, { method: "DELETE", headers: auth }).catch(() => {});
  return result;
};
</script>
"""


async def serve_page(port: int, html: str = PAGE) -> web.AppRunner:
    """Serve `html` at / on loopback (a page on another origin than the gateway)."""
    app = web.Application()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def chromium_ttff(
    whep_url: str,
    token: str,
    page_port: int,
    n: int,
    *,
    max_delay: float = 2.0,
    hold: float = 0.5,
    seed: int = 7,
) -> dict[str, Any]:
    """n joins, each a new RTCPeerConnection in one page, spread by random 0..max_delay s."""
    from playwright.async_api import async_playwright  # never `playwright install`

    runner = await serve_page(page_port)
    rng = random.Random(seed)
    joins: list[dict[str, Any]] = []
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{page_port}/")
                version = browser.version
                for _ in range(n):
                    await asyncio.sleep(rng.uniform(0, max_delay))
                    joins.append(
                        await page.evaluate(
                            "([u, t, h, to]) => benchJoin(u, t, h, to)",
                            [whep_url, token, int(hold * 1000), 10_000],
                        )
                    )
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    return {"browser": f"Chromium {version}", "joins": joins}
