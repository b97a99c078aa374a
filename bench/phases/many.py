"""Many cameras: one viewer each, the gateway holding one RTSP pull per camera."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from log import log
from sampling import cpu_seconds, fps_between, rss_mb, wait_quiet
from stage import Stage
from stats import rounded


async def run(stage: Stage) -> None:
    plan = stage.plan
    for cam in stage.many_procs:
        cam.start()
    try:
        n_workers = min(4, plan.many_cameras)
        async with (
            stage.gateway("many") as gw,
            stage.workers(gw, [f"many{i}" for i in range(n_workers)]) as workers,
        ):
            log(f"many cameras: {plan.many_cameras} cameras, one viewer each")
            for i, cid in enumerate(stage.many_ids):
                await workers[i % n_workers].call("join", n=1, camera=cid)
            await asyncio.sleep(plan.settle + 2)
            cam_pids = [c._proc.pid for c in stage.many_procs]  # type: ignore[union-attr]
            await wait_quiet({gw.pid, os.getpid(), *(w.pid for w in workers), *cam_pids})
            s0 = await asyncio.gather(*(w.call("stats") for w in workers))
            g0, t0 = cpu_seconds(gw.pid), time.monotonic()
            cams0 = sum(cpu_seconds(c._proc.pid) for c in stage.many_procs)  # type: ignore[union-attr]
            await asyncio.sleep(plan.window)
            g1, t1 = cpu_seconds(gw.pid), time.monotonic()
            cams1 = sum(cpu_seconds(c._proc.pid) for c in stage.many_procs)  # type: ignore[union-attr]
            s1 = await asyncio.gather(*(w.call("stats") for w in workers))
            fps = fps_between(s0, s1)
            stage.results["many_cameras"] = {
                "cameras": plan.many_cameras,
                "camera_processes": len(stage.many_procs),
                "rtsp_connections": sum(c.connections for c in stage.many_procs),
                "gateway_cpu_pct": round(100 * (g1 - g0) / (t1 - t0), 1),
                "gateway_rss_mb": round(rss_mb(gw.pid), 1),
                "fps_min": rounded(min(fps), 2) if fps else None,
                "fps_median": rounded(statistics.median(fps), 2) if fps else None,
                "camera_processes_cpu_pct": round(100 * (cams1 - cams0) / (t1 - t0), 1),
            }
            await asyncio.gather(*(w.call("leave") for w in workers))
    finally:
        for cam in stage.many_procs:
            cam.stop()
