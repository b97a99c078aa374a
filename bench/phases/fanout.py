"""Fan-out: one camera, viewers ramped up level by level, each level measured over a window."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from collections import Counter
from typing import Any

from latency import match_latency_many
from log import log
from processes import Gateway, RtspProbe, WorkerProc
from pyspy import profile_gateway
from sampling import (
    cpu_seconds,
    cpu_split,
    machine_busy,
    proc_snapshot,
    rss_mb,
    top_others,
    wait_quiet,
)
from stage import Stage
from stats import rounded

PROBE_VIEWERS = 5  # latency is sampled by this many viewers, each at its own fan-out position


async def run(stage: Stage) -> None:
    plan = stage.plan
    names = ["probe", "decode"] + [f"count{i}" for i in range(plan.count_workers)]
    probe = RtspProbe(stage.cameras["main"].url)
    await probe.start()
    levels: list[dict[str, Any]] = []
    stage.results["fanout"] = levels
    try:
        async with stage.gateway("fanout") as gw, stage.workers(gw, names) as workers:
            lat_w, dec_w, *count_ws = workers
            have = {w.name: 0 for w in workers}
            idle_rss = rss_mb(gw.pid)
            idle_cpu0, t_idle0 = cpu_seconds(gw.pid), time.monotonic()
            await asyncio.sleep(2)
            idle_cpu = 100 * (cpu_seconds(gw.pid) - idle_cpu0) / (time.monotonic() - t_idle0)
            stage.results["gateway_idle"] = {
                "cpu_pct": rounded(idle_cpu, 2),
                "rss_mb": rounded(idle_rss, 1),
            }
            for level in plan.levels:
                log(f"fan-out: ramping to {level} viewers")
                want = viewers_per_worker(level, count_ws)
                t_ramp = time.monotonic()
                joins = await asyncio.gather(
                    *(
                        w.call(
                            "join",
                            n=want[w.name] - have[w.name],
                            kind="decode" if w is dec_w else "count",
                            log=w is lat_w,
                            batch=4,
                            pause=0.4,
                        )
                        for w in workers
                        if want[w.name] > have[w.name]
                    )
                )
                ramp_s = time.monotonic() - t_ramp
                failed = sum(j["failed"] for j in joins)
                errors = [e for j in joins for e in j["errors"]][:3]
                for w in workers:
                    have[w.name] = max(have[w.name], want[w.name])
                await asyncio.sleep(plan.settle)
                result = await measure(stage, gw, workers, probe, lat_w)
                result.update(viewers=level, ramp_s=rounded(ramp_s, 1), join_failed=failed)
                if errors:
                    result["join_errors"] = errors
                levels.append(result)
                log(
                    f"  {level} viewers: gateway {result['gateway_cpu_pct']:.1f}% CPU, "
                    f"{result['gateway_rss_mb']:.0f} MB, fps min/median "
                    f"{result['fps_min']}/{result['fps_median']}"
                )
                if level == plan.profile_at:
                    stage.results["profile"] = await profile_gateway(gw.pid, level)
            log("fan-out: all viewers leave")
            await asyncio.gather(*(w.call("leave") for w in workers))
    finally:
        await probe.stop()
    stage.results["camera_stream"] = camera_stream(probe.frames)


def viewers_per_worker(level: int, count_ws: list[WorkerProc]) -> dict[str, int]:
    """Latency probes and one decoding viewer; the counting workers share the rest."""
    want = {
        "probe": 1 if level < 10 else PROBE_VIEWERS,
        "decode": 1 if level >= 2 else 0,
    }
    rest = level - sum(want.values())
    for i, w in enumerate(count_ws):
        want[w.name] = rest // len(count_ws) + (1 if i < rest % len(count_ws) else 0)
    return want


async def measure(
    stage: Stage, gw: Gateway, workers: list[WorkerProc], probe: RtspProbe, lat_w: WorkerProc
) -> dict[str, Any]:
    window = stage.plan.window
    pids = [w.pid for w in workers]
    cam_pid = stage.cameras["main"]._proc.pid  # type: ignore[union-attr]
    waited = await wait_quiet({gw.pid, *pids, cam_pid, probe.pid, os.getpid()})
    s0 = await asyncio.gather(*(w.call("stats") for w in workers))
    snap0 = proc_snapshot()
    split0 = cpu_split(gw.pid)
    g0, m0, t0 = cpu_seconds(gw.pid), machine_busy(), time.monotonic()
    w0 = sum(cpu_seconds(p) for p in pids)
    c0 = cpu_seconds(cam_pid)
    p0 = cpu_seconds(probe.pid)
    await asyncio.sleep(window)
    g1, m1, t1 = cpu_seconds(gw.pid), machine_busy(), time.monotonic()
    split1 = cpu_split(gw.pid)
    w1 = sum(cpu_seconds(p) for p in pids)
    c1 = cpu_seconds(cam_pid)
    p1 = cpu_seconds(probe.pid)
    snap1 = proc_snapshot()
    s1 = await asyncio.gather(*(w.call("stats") for w in workers))
    rss = rss_mb(gw.pid)
    fps, decode_fps, lost, packets, states = [], [], 0, 0, Counter()
    counted = 0  # viewers that count packets (not the decoding or probe viewers)
    for a, b in zip(s0, s1, strict=True):
        dt = b["t"] - a["t"]
        for va, vb in zip(a["viewers"], b["viewers"], strict=False):
            rate = (vb["frames"] - va["frames"]) / dt
            fps.append(rate)
            states[vb["state"]] += 1
            if vb["kind"] == "decode":
                decode_fps.append(rate)
            if vb["packets"] is not None:
                lost += vb["lost"] - va["lost"]
                packets += vb["packets"] - va["packets"]
                counted += 1
    logs = (await lat_w.call("log", since=t0))["viewers"]
    direct = [f for f in probe.frames if f[0] >= t0 - 1.0]
    latency = match_latency_many(direct, [[f for f in lg if f[1] <= t1] for lg in logs])
    dt = t1 - t0
    # Every viewer gets the same packets; counting viewers give the rate.
    sent_per_s = packets / dt / counted * len(fps) if counted else 0.0
    per_packet = {  # gateway CPU seconds per packet sent, user and kernel
        part: rounded(1e6 * (split1[i] - split0[i]) / dt / sent_per_s, 1) if sent_per_s else None
        for i, part in enumerate(("user", "system"))
    }
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * 100 * (os.cpu_count() or 1)
    ours = (g1 - g0) + (w1 - w0) + (c1 - c0) + (p1 - p0)
    return {
        "window_s": rounded(dt, 1),
        "gateway_cpu_pct": round(100 * (g1 - g0) / dt, 1),
        "gateway_rss_mb": round(rss, 1),
        "gateway_system_cpu_pct": round(100 * (split1[1] - split0[1]) / dt, 1),
        "fps_min": rounded(min(fps), 2) if fps else None,
        "fps_median": rounded(statistics.median(fps), 2) if fps else None,
        "fps_decoding_viewer": rounded(decode_fps[0], 2) if decode_fps else None,
        "viewers_measured": len(fps),
        "viewers_below_20fps": sum(1 for f in fps if f < 20),
        "viewer_states": dict(states),
        "rtp_loss_pct": rounded(100 * lost / max(1, lost + packets), 3),
        "packets_sent_per_s": round(sent_per_s),
        "gateway_us_per_packet": per_packet,
        "latency": latency,
        "viewer_workers_cpu_pct": round(100 * (w1 - w0) / dt, 1),
        "camera_cpu_pct": round(100 * (c1 - c0) / dt, 1),
        "machine_busy_pct_of_one_core": round(busy, 1),
        # Whatever else ran on the machine meanwhile (kernel softirq, other jobs).
        "other_load_pct": round(busy - 100 * ours / dt, 1),
        "waited_for_quiet_s": waited,
        "other_top": top_others(snap0, snap1, {gw.pid, *pids, cam_pid, probe.pid, os.getpid()}, dt),
    }


def camera_stream(frames: list[tuple[float, int, int, int]]) -> dict[str, Any]:
    if len(frames) < 50:
        return {}
    span = frames[-1][0] - frames[0][0]
    keys = [f[0] for f in frames if f[2]]
    gaps = [b - a for a, b in itertools.pairwise(keys)]
    return {
        "fps": rounded((len(frames) - 1) / span, 2),
        "kbps": rounded(sum(f[3] for f in frames) * 8 / span / 1000, 0),
        "avg_frame_bytes": int(statistics.mean(f[3] for f in frames)),
        "avg_keyframe_bytes": int(statistics.mean([f[3] for f in frames if f[2]] or [0])),
        "avg_delta_frame_bytes": int(statistics.mean(f[3] for f in frames if not f[2])),
        "keyframe_interval_s": rounded(statistics.median(gaps), 2) if gaps else None,
    }
