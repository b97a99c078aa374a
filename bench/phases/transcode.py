"""Transcode: an H.265 camera, which the gateway decodes and encodes once for all viewers."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from log import log
from processes import Gateway, WorkerProc
from project import RtspCamera
from sampling import cpu_seconds, cpu_split, main_thread_cpu_seconds, rss_mb, wait_quiet
from stage import Stage
from stats import rounded


async def run(stage: Stage) -> None:
    plan = stage.plan
    cam = stage.cameras["hevc"]
    cam.start()
    rows = []
    try:
        async with (
            stage.gateway("transcode") as gw,
            stage.workers(gw, ["tc0", "tc1"], camera="hevc") as workers,
        ):
            have = 0
            for level in plan.transcode_levels:
                log(f"transcode (H.265 camera): {level} viewers")
                add = level - have
                await asyncio.gather(
                    *(
                        w.call(
                            "join",
                            n=add // 2 + (add % 2 if i == 0 else 0),
                            batch=4,
                            wait_frames=15,
                        )
                        for i, w in enumerate(workers)
                        if add // 2 + (add % 2 if i == 0 else 0) > 0
                    )
                )
                have = level
                await asyncio.sleep(plan.settle)
                rows.append(await measure(gw, workers, cam, plan.window, level))
                log(f"  {level} viewers: gateway {rows[-1]['gateway_cpu_pct']}% CPU")
            await asyncio.gather(*(w.call("leave") for w in workers))
            modes = [
                m for m in ("transcode", "passthrough") if f"hevc: live, {m}" in gw.tail(10_000)
            ]
    finally:
        cam.stop()
    stage.results["transcode"] = rows
    stage.results["transcode_mode_seen"] = modes


async def measure(
    gw: Gateway, workers: list[WorkerProc], cam: RtspCamera, window: float, level: int
) -> dict[str, Any]:
    """One level: the gateway's CPU (the kernel's and the event loop's part) and the viewers' rates."""
    await wait_quiet(
        {gw.pid, os.getpid(), cam._proc.pid, *(w.pid for w in workers)}  # type: ignore[union-attr]
    )
    s0 = await asyncio.gather(*(w.call("stats") for w in workers))
    g0, t0, sys0 = cpu_seconds(gw.pid), time.monotonic(), cpu_split(gw.pid)[1]
    main0 = main_thread_cpu_seconds(gw.pid)
    await asyncio.sleep(window)
    g1, t1, sys1 = cpu_seconds(gw.pid), time.monotonic(), cpu_split(gw.pid)[1]
    main1 = main_thread_cpu_seconds(gw.pid)
    s1 = await asyncio.gather(*(w.call("stats") for w in workers))
    pairs = [
        (va, vb, b["t"] - a["t"])
        for a, b in zip(s0, s1, strict=True)
        for va, vb in zip(a["viewers"], b["viewers"], strict=False)
    ]
    fps = [(vb["frames"] - va["frames"]) / dt for va, vb, dt in pairs]
    pps = [
        (vb["packets"] - va["packets"]) / dt for va, vb, dt in pairs if vb["packets"] is not None
    ]
    return {
        "viewers": level,
        "gateway_cpu_pct": round(100 * (g1 - g0) / (t1 - t0), 1),
        "gateway_system_cpu_pct": round(100 * (sys1 - sys0) / (t1 - t0), 1),
        "event_loop_cpu_pct": round(100 * (main1 - main0) / (t1 - t0), 1),
        "packets_per_viewer_s": round(statistics.median(pps)) if pps else None,
        "gateway_rss_mb": round(rss_mb(gw.pid), 1),
        "fps_min": rounded(min(fps), 2) if fps else None,
        "fps_median": rounded(statistics.median(fps), 2) if fps else None,
    }
