"""Capacity (issue 14): how many cameras, one viewer each, one node holds at full frame
rate, and how many two nodes behind HAProxy hold (the issue asks at least 1.8 times).

On 2 cores the cameras and viewers would take the machine long before an uncapped node
is saturated, so each node runs in a cgroup capped at `plan.node_cpu_quota_pct` % of one
core (bench/cgroup.py): a CPU quota per node stands in for "a core per node". The
cameras, the viewers, PostgreSQL and HAProxy are not capped. The cluster is the
`cluster` phase's (deploy/local_cluster.py: PostgreSQL, gw1 and gw2, HAProxy).

- One node: the viewers offer straight to gw1 (gw2 runs idle under its own quota).
- Two nodes: the viewers offer through HAProxy, which spreads the cameras by its hash.

Cameras are added with one viewer each, `plan.capacity_step` at a time, fewer as the
busiest node nears 80 % of its quota, one at a time past it. After each step every
viewer's frame rate is taken over `plan.capacity_window` s; a step is held when every
viewer has at least 24 fps (the camera sends 25: at most a frame a second lost). A
step that fails is measured once more (the machine is shared); failing again ends the
ramp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from typing import Any

import cgroup
from log import log
from processes import WorkerProc
from sampling import cpu_seconds, fps_between, wait_quiet
from stage import LINGER, Stage
from stats import rounded

from .cluster import node_sessions, running

FPS_HELD = 24.0
NEAR_QUOTA = 0.8  # past this share of its quota, the busiest node gets one camera at a time
WORKERS = 4


async def run(stage: Stage) -> None:
    plan = stage.plan
    reason = cgroup.unavailable()
    if reason:
        log(f"capacity: skipped: {reason}")
        stage.results["capacity"] = {"skipped": reason}
        return
    async with running(stage, "capacity") as (nodes, balancer):
        with contextlib.ExitStack() as stack:
            quotas = {}
            for node in nodes:
                quota = stack.enter_context(cgroup.CpuQuota(node.node_id, plan.node_cpu_quota_pct))
                quota.add(node.proc.pid)
                quotas[node.node_id] = quota
            results: dict[str, Any] = {
                "node_cpu_quota_pct": plan.node_cpu_quota_pct,
                "period_us": quotas[nodes[0].node_id].period_us,
                "fps_held": FPS_HELD,
                "window_s": plan.capacity_window,
                "one_node_offers": "straight to gw1",
                "two_nodes_offer": "through HAProxy",
            }
            log(f"capacity: each node capped at {plan.node_cpu_quota_pct} % of a core")
            one = await _ramp(stage, nodes[:1], nodes[0].url, quotas, start=4)
            results["one_node"] = one
            await asyncio.sleep(LINGER + 1)  # the first ramp's cameras are let go
            start = max(4, one["held"])
            results["two_nodes"] = await _ramp(stage, nodes, balancer.url, quotas, start)
            held1, held2 = one["held"], results["two_nodes"]["held"]
            results["ratio"] = round(held2 / held1, 2) if held1 else None
            log(f"capacity: one node {held1} cameras, two nodes {held2}: {results['ratio']} times")
            stage.results["capacity"] = results


async def _ramp(
    stage: Stage, nodes: list[Any], url: str, quotas: dict[str, Any], start: int
) -> dict[str, Any]:
    """Add cameras until a step is not held; the largest count held and its steps."""
    plan, ids = stage.plan, stage.camera_ids
    workers = [WorkerProc(f"capacity{i}") for i in range(WORKERS)]
    await asyncio.gather(*(w.start(url, "main", stage.token) for w in workers))
    steps: list[dict[str, Any]] = []
    held, count, target = 0, 0, min(start, len(ids))
    try:
        while True:
            failed = await _join(workers, ids, count, target)
            count = target
            await asyncio.sleep(plan.settle)
            step = await measure_step(stage, nodes, workers, quotas, count)
            if not step["held"] and not failed:
                step = await measure_step(stage, nodes, workers, quotas, count)
                step["measured_twice"] = True
            step["failed_joins"] = failed
            steps.append(step)
            split = ", ".join(f"{k} {v['viewers']}" for k, v in step["per_node"].items())
            log(
                f"capacity: {len(nodes)} node(s), {count} cameras: fps min {step['fps_min']}, "
                f"{split}; CPU "
                + ", ".join(f"{k} {v['cpu_pct']} %" for k, v in step["per_node"].items())
                + ("" if step["held"] else " — not held")
            )
            if not step["held"]:
                break
            held = count
            if count >= len(ids):
                break
            target = min(len(ids), count + next_step(step, plan.capacity_step, plan))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.gather(*(w.call("leave", _timeout=60) for w in workers))
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
    at = next((s for s in steps if s["cameras"] == held), None)
    return {
        "held": held,
        "split": {k: v["viewers"] for k, v in at["per_node"].items()} if at else {},
        "cameras_available": len(ids),
        "steps": steps,
    }


def next_step(step: dict[str, Any], most: int, plan: Any) -> int:
    """How many viewers to add next: `most`, fewer as the busiest node nears 80 % of
    its quota (were they all to land on it), one at a time past that."""
    busiest = max(step["per_node"].values(), key=lambda n: n["cpu_pct"])
    per_viewer = busiest["cpu_pct"] / max(1, busiest["viewers"])
    room = (NEAR_QUOTA * plan.node_cpu_quota_pct - busiest["cpu_pct"]) / max(0.1, per_viewer)
    return max(1, min(most, int(room)))


async def _join(workers: list[WorkerProc], ids: list[str], have: int, want: int) -> int:
    """One viewer each for cameras have..want-1, round the workers; the joins that failed."""

    async def joins(worker: WorkerProc, cameras: list[str]) -> int:
        failed = 0
        for cid in cameras:  # one at a time per worker: a join names its camera
            got = await worker.call("join", n=1, camera=cid, wait_frames=10)
            failed += got["failed"] + got["without_frames"]
        return failed

    shares = [
        [ids[i] for i in range(have, want) if i % len(workers) == k] for k in range(len(workers))
    ]
    return sum(await asyncio.gather(*(joins(w, s) for w, s in zip(workers, shares, strict=True))))


async def measure_step(
    stage: Stage, nodes: list[Any], workers: list[WorkerProc], quotas: dict[str, Any], count: int
) -> dict[str, Any]:
    """Every viewer's frame rate and each node's CPU over one window (`count`: the
    cameras, one viewer each; or the viewers of one camera, as the spread phase has)."""
    pids = [n.proc.pid for n in nodes]
    cams = [c._proc.pid for c in stage.many_procs]  # type: ignore[union-attr]
    await wait_quiet({*pids, os.getpid(), *(w.pid for w in workers), *cams})
    s0 = await asyncio.gather(*(w.call("stats") for w in workers))
    c0, q0, t0 = (
        [cpu_seconds(p) for p in pids],
        [quotas[n.node_id].throttled() for n in nodes],
        time.monotonic(),
    )
    await asyncio.sleep(stage.plan.capacity_window)
    c1, q1, t1 = (
        [cpu_seconds(p) for p in pids],
        [quotas[n.node_id].throttled() for n in nodes],
        time.monotonic(),
    )
    s1 = await asyncio.gather(*(w.call("stats") for w in workers))
    fps = fps_between(s0, s1)
    dt = t1 - t0
    periods = dt * 1e6 / quotas[nodes[0].node_id].period_us
    per_node = {
        node.node_id: {
            "cpu_pct": round(100 * (b - a) / dt, 1),
            "throttled_periods_pct": round(100 * (qb[0] - qa[0]) / periods, 1),
            "viewers": await node_sessions(node.url),
        }
        for node, a, b, qa, qb in zip(nodes, c0, c1, q0, q1, strict=True)
    }
    return {
        "cameras": count,
        "viewers": len(fps),
        "held": len(fps) == count and min(fps, default=0.0) >= FPS_HELD,
        "fps_min": rounded(min(fps), 2) if fps else None,
        "fps_median": rounded(statistics.median(fps), 2) if fps else None,
        "viewers_below": sum(1 for f in fps if f < FPS_HELD),
        "per_node": per_node,
    }
