"""VP8 (issue 11): viewers that offer no H.264 (Firefox without OpenH264) get the
camera's shared VP8 rendition, while the H.264 viewers stay passthrough.

Measured on the main camera (720p25 High), with `vp8_h264_viewers` H.264 viewers:
- first frame for a VP8 viewer: the first one starts the rendition (decoder primed
  with the hub's GOP); later ones join it and ask for a keyframe;
- the CPU of the shared decode and VP8 encode: the gateway's CPU outside its event
  loop, with VP8 viewers minus without (the camera's own pull thread is in both);
- the H.264 viewers' cost per viewer (event loop CPU / viewers) and their frame
  rate, without and with VP8 viewers watching.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from typing import Any

from log import log
from processes import Gateway, WorkerProc
from sampling import window_cpu_and_fps
from stage import Stage
from stats import rounded, summary

VP8_JOINS = 5  # joins while the rendition runs, for the first-frame figure


async def run(stage: Stage) -> None:
    plan = stage.plan
    n = plan.vp8_h264_viewers
    cam = stage.cameras["main"]
    results: dict[str, Any] = {"h264_viewers": n}
    async with stage.gateway("vp8") as gw, stage.workers(gw, ["h264", "vp8"]) as (h264, vp8):
        log(f"VP8: {n} H.264 viewers")
        joined = await h264.call("join", n=n, batch=5, pause=0.3, wait_frames=10)
        results["h264_join_failed"] = joined["failed"]
        await asyncio.sleep(plan.settle)
        before = await measure(gw, [h264], cam, plan.window, n)
        results["without_vp8"] = before
        log("VP8: the first VP8 viewer starts the rendition")
        first = await vp8.call("join", n=1, codec="vp8", wait_frames=10)
        results["first_frame_ms_rendition_start"] = (
            rounded(1000 * first["ttff"][0], 0) if first["ttff"] else None
        )
        log(f"VP8: {VP8_JOINS} more VP8 viewers join and leave while it runs")
        ttffs = []
        for _ in range(VP8_JOINS):
            joined = await vp8.call("join", n=1, codec="vp8", wait_frames=5)
            ttffs += joined["ttff"]
            await asyncio.sleep(0.5)
        results["first_frame_ms_rendition_running"] = summary(ttffs, 1000)
        await vp8.call("leave", n=VP8_JOINS)  # one VP8 viewer stays
        await asyncio.sleep(plan.settle)
        results["with_one_vp8"] = await measure(gw, [h264, vp8], cam, plan.window, n + 1)
        await vp8.call("join", n=2, codec="vp8", wait_frames=5)
        await asyncio.sleep(plan.settle)
        results["with_three_vp8"] = await measure(gw, [h264, vp8], cam, plan.window, n + 3)
        await asyncio.gather(h264.call("leave"), vp8.call("leave"))
    one, three = results["with_one_vp8"], results["with_three_vp8"]
    results["vp8_encode_cpu_pct"] = rounded(
        one["outside_loop_cpu_pct"] - before["outside_loop_cpu_pct"], 1
    )
    results["vp8_encode_cpu_pct_three_viewers"] = rounded(
        three["outside_loop_cpu_pct"] - before["outside_loop_cpu_pct"], 1
    )
    stage.results["vp8"] = results
    log(
        f"  VP8: first frame {results['first_frame_ms_rendition_start']} ms (start), "
        f"encode {results['vp8_encode_cpu_pct']}% of a core; H.264 loop per viewer "
        f"{before['loop_cpu_pct_per_viewer']} -> {one['loop_cpu_pct_per_viewer']}"
    )


async def measure(
    gw: Gateway, workers: list[WorkerProc], cam: Any, window: float, viewers: int
) -> dict[str, Any]:
    quiet = {gw.pid, os.getpid(), cam._proc.pid, *(w.pid for w in workers)}
    total, loop, rates = await window_cpu_and_fps(gw.pid, workers, quiet, window)
    h264 = rates.get("h264", [])
    vp8 = rates.get("vp8", [])
    return {
        "gateway_cpu_pct": rounded(total, 1),
        "event_loop_cpu_pct": rounded(loop, 1),
        "outside_loop_cpu_pct": rounded(total - loop, 1),
        "loop_cpu_pct_per_viewer": rounded(loop / viewers, 3),
        "h264_fps_min": rounded(min(h264), 2) if h264 else None,
        "h264_fps_median": rounded(statistics.median(h264), 2) if h264 else None,
        "vp8_fps_min": rounded(min(vp8), 2) if vp8 else None,
    }
