"""Tablets in the field (issue 15): TURN and the lighter picture, in Chromium's real
<cctv-player> (web/cctv-player.js, loaded from the gateway by a page of its own
origin, as a dashboard embeds it), with Debian's coturn on loopback.

- first frame through TURN against direct: the tile's time from being put on the
  page to "live" (its first picture), alternating a tile forced to relay only
  (ice-transport-policy="relay") and a plain one, the camera kept warm by an aiortc
  viewer; the same player code either way, so the difference is TURN's;
- the CPU of one lighter-rendition encode per camera: the gateway's CPU outside its
  event loop with one H.264 viewer, then with one and three viewers of
  ?rendition=low (decoded once, scaled to 640x360, encoded once at 15 fps);
- the switch time on a limited link: coturn's --max-bps=75000 (600 kbit/s per
  relay) and a relay-only tile on the 2 Mbit/s camera: from the tile being put on
  the page to the lighter picture showing (renditionchange), and its frame rate.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from chromium import serve_page
from log import log
from processes import Gateway, WorkerProc
from project import CHROMIUM, FLAGS, Coturn
from sampling import window_cpu_and_fps
from stage import Stage
from stats import rounded, summary

TURN_SECRET = "bench-coturn-static-auth-secret"
WEAK_LINK_BYTES_PER_SECOND = 75_000

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>bench tiles</title>
<body>
<script>
window.benchToken = () => window.token;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One tile, put on the page now; resolves with what it did, then takes it off.
window.benchTile = async (base, camera, token, relay, timeoutMs, holdMs) => {
  window.token = token;
  await import(new URL("web/cctv-player.js", base).href);
  const p = document.createElement("cctv-player");
  p.setAttribute("base-url", base);
  p.setAttribute("camera", camera);
  p.setAttribute("token-provider", "benchToken");
  if (relay) p.setAttribute("ice-transport-policy", "relay");
  if (holdMs === 0) p.setAttribute("adaptive", "off");
  p.style.width = "320px";
  const t0 = performance.now();
  const at = {};
  p.addEventListener("statechange", (e) => { at[e.detail.state] ??= performance.now() - t0; });
  p.addEventListener("renditionchange", (e) => {
    at[`rendition:${e.detail.rendition}`] ??= performance.now() - t0;
  });
  document.body.append(p);
  const until = performance.now() + timeoutMs;
  const done = () => (holdMs === 0 ? at.live !== undefined : at["rendition:low"] !== undefined);
  while (!done() && performance.now() < until && !["error", "denied"].includes(p.state)) await sleep(20);
  const result = { at, state: p.state, reason: p.reason };
  const frames = async () => {
    let n = 0, type = null;
    const stats = await p.pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded;
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId);
        type = stats.get(pair.localCandidateId)?.candidateType;
      }
    });
    return { n, type };
  };
  if (p.pc && done()) {
    const a = await frames();
    result.path = a.type;
    if (holdMs > 0) {
      await sleep(holdMs);
      const b = await frames();
      result.fps = (b.n - a.n) / (holdMs / 1000);
      result.size = [p.video.videoWidth, p.video.videoHeight];
      result.rendition = p.rendition;
    }
  }
  p.remove();
  await sleep(300);
  return result;
};
</script>
"""


async def run(stage: Stage) -> None:
    plan = stage.plan
    joins = 6 if plan.quick else 16
    results: dict[str, Any] = {}
    runner = await serve_page(stage.page_port, PAGE)
    try:
        with Coturn(TURN_SECRET) as turn:
            extra = _turn_toml(turn.urls["udp"])
            async with (
                stage.gateway("tablets", extra) as gw,
                stage.workers(gw, ["warm", "low"]) as (
                    warm,
                    low,
                ),
            ):
                await warm.call("join", n=1, wait_frames=10)
                log(f"tablets: {joins} Chromium tiles, alternating relay-only (TURN) and direct")
                tiles = await _tiles(stage, gw, [i % 2 == 0 for i in range(joins)], 10_000, 0)
                results["first_frame"] = _first_frames(tiles)
                results["turn_allocations"] = turn.allocations
                log("tablets: the lighter rendition's encode")
                results["encode"] = await _encode_cpu(stage, gw, warm, low)
                await asyncio.gather(warm.call("leave"), low.call("leave"))
        with Coturn(TURN_SECRET, max_bps=WEAK_LINK_BYTES_PER_SECOND) as weak:
            extra = _turn_toml(weak.urls["udp"])
            reps = 1 if plan.quick else 3
            async with stage.gateway("weaklink", extra) as gw:
                log(f"tablets: {reps} relay-only tiles on a 600 kbit/s relay")
                switches = await _tiles(stage, gw, [True] * reps, 30_000, 5_000)
                results["weak_link"] = _switches(switches)
    finally:
        await runner.cleanup()
    stage.results["tablets"] = results
    ff, enc, weak_link = results["first_frame"], results["encode"], results["weak_link"]
    log(
        f"  tablets: first frame direct p50 {ff['direct_ms']['p50']} ms, TURN p50 "
        f"{ff['turn_ms']['p50']} ms; low encode {enc['encode_cpu_pct']}% of a core; weak-link "
        f"switch p50 {weak_link['switch_ms']['p50']} ms at {weak_link['fps']['p50']} fps"
    )


def _turn_toml(url: str) -> str:
    return f'[turn]\nurls = ["{url}"]\nsecret = "{TURN_SECRET}"\n'


async def _tiles(
    stage: Stage, gw: Gateway, relays: list[bool], timeout_ms: int, hold_ms: int
) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright  # never `playwright install`

    out = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{stage.page_port}/")
            for relay in relays:
                result = await page.evaluate(
                    "([b, c, t, r, to, h]) => benchTile(b, c, t, r, to, h)",
                    [f"{gw.url}/", "main", stage.token, relay, timeout_ms, hold_ms],
                )
                out.append({"relay": relay, **result})
                await asyncio.sleep(0.5)
        finally:
            await browser.close()
    return out


def _first_frames(tiles: list[dict[str, Any]]) -> dict[str, Any]:
    def of(relay: bool) -> list[float]:
        return [t["at"]["live"] / 1000 for t in tiles if t["relay"] is relay and "live" in t["at"]]

    return {
        "direct_ms": summary(of(False), 1000),
        "turn_ms": summary(of(True), 1000),
        "paths": sorted({f"{t['relay']}:{t.get('path')}" for t in tiles}),
        "failed": [t for t in tiles if "live" not in t["at"]],
    }


def _switches(tiles: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [t for t in tiles if "rendition:low" in t["at"]]
    return {
        "switch_ms": summary([t["at"]["rendition:low"] / 1000 for t in ok], 1000),
        "first_live_ms": summary([t["at"]["live"] / 1000 for t in ok if "live" in t["at"]], 1000),
        "fps": summary([t["fps"] for t in ok if "fps" in t]),
        "sizes": sorted({str(t.get("size")) for t in ok}),
        "failed": [t for t in tiles if t not in ok],
    }


async def _encode_cpu(
    stage: Stage, gw: Gateway, warm: WorkerProc, low: WorkerProc
) -> dict[str, Any]:
    plan = stage.plan
    cam = stage.cameras["main"]
    await asyncio.sleep(plan.settle)
    before = await _measure(gw, [warm, low], cam, plan.window)
    first = await low.call("join", n=1, camera="main?rendition=low", wait_frames=10)
    await asyncio.sleep(plan.settle)
    one = await _measure(gw, [warm, low], cam, plan.window)
    await low.call("join", n=2, camera="main?rendition=low", wait_frames=5)
    await asyncio.sleep(plan.settle)
    three = await _measure(gw, [warm, low], cam, plan.window)
    return {
        "first_frame_ms": rounded(1000 * first["ttff"][0], 0) if first["ttff"] else None,
        "without": before,
        "with_one": one,
        "with_three": three,
        "encode_cpu_pct": rounded(one["outside_loop_cpu_pct"] - before["outside_loop_cpu_pct"], 1),
        "encode_cpu_pct_three_viewers": rounded(
            three["outside_loop_cpu_pct"] - before["outside_loop_cpu_pct"], 1
        ),
    }


async def _measure(
    gw: Gateway, workers: list[WorkerProc], cam: Any, window: float
) -> dict[str, Any]:
    quiet = {gw.pid, os.getpid(), cam._proc.pid, *(w.pid for w in workers)}
    total, loop, fps = await window_cpu_and_fps(gw.pid, workers, quiet, window)
    return {
        "gateway_cpu_pct": rounded(total, 1),
        "event_loop_cpu_pct": rounded(loop, 1),
        "outside_loop_cpu_pct": rounded(total - loop, 1),
        "h264_fps_min": rounded(min(fps["warm"]), 2) if fps["warm"] else None,
        "low_fps_min": rounded(min(fps["low"]), 2) if fps["low"] else None,
    }
