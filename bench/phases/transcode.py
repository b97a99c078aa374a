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
            rows = await ramp(stage, gw, workers, cam, plan.transcode_levels, "transcode")
            await asyncio.gather(*(w.call("leave") for w in workers))
            modes = [
                m for m in ("transcode", "passthrough") if f"hevc: live, {m}" in gw.tail(10_000)
            ]
    finally:
        cam.stop()
    stage.results["transcode"] = rows
    stage.results["transcode_mode_seen"] = modes


async def ramp(
    stage: Stage,
    gw: Gateway,
    workers: list[WorkerProc],
    cam: RtspCamera,
    levels: list[int],
    what: str,
    have: int = 0,
    **join: Any,
) -> list[dict[str, Any]]:
    """Viewers added level by level (`have` watch already), split over the workers
    (`join`: their join options), each level measured as `measure` does, with the
    gateway's CPU outside its event loop (the pull, decodes and encodes) besides."""
    rows = []
    for level in levels:
        add = level - have
        if add > 0:
            log(f"{what}: {level} viewers")
            shares = [add // len(workers) + (i < add % len(workers)) for i in range(len(workers))]
            await asyncio.gather(
                *(
                    w.call("join", n=n, batch=5, wait_frames=15, **join)
                    for w, n in zip(workers, shares, strict=True)
                    if n
                )
            )
        have = level
        await asyncio.sleep(stage.plan.settle)
        row = await measure(gw, workers, cam, stage.plan.window, level)
        row["outside_loop_cpu_pct"] = rounded(row["gateway_cpu_pct"] - row["event_loop_cpu_pct"], 1)
        rows.append(row)
        log(
            f"  {what}, {level} viewers: gateway {row['gateway_cpu_pct']} %, event loop "
            f"{row['event_loop_cpu_pct']} %, outside it {row['outside_loop_cpu_pct']} %"
        )
    return rows


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
