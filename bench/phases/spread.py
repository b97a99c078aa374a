"""Spreading (issue 25): how many viewers of one hot camera one node holds under its
CPU quota, and how many two nodes hold when the camera's owner, busy past `[cluster]
spread_cpu_percent` of its quota, sends further viewers to the other node, which
relays the owner's stream (one RTSP connection still). The goal: two nodes hold at
least 1.8 times as many.

As in the capacity phase, each node runs in a cgroup capped at
`plan.node_cpu_quota_pct` % of one core (bench/cgroup.py); the camera, the viewers,
PostgreSQL and HAProxy are not capped. The camera is the main one (720p25, 2 Mbit/s).

- One node: spreading off, viewers offered straight to gw1.
- Two nodes: a fresh cluster with `spread_cpu_percent` at `plan.spread_cpu_percent`
  (the owner also sends the stream to the other node), viewers offered through
  HAProxy. The busy rule follows the machine as it is during the run; a count
  (`spread_viewers`) set from the one-node ramp did not (docs/performance.md: one
  node held 17 in one run, 45 an hour later, on the shared machine).

Viewers are added `plan.spread_step` at a time, fewer as the busiest node nears 80 %
of its quota, one at a time past it. A step is held when, over `plan.capacity_window`
s, no node drops a frame (its own counters: `cctv_frames_dropped_overload`, the
pull falling behind, and `cctv_frames_dropped_slow_viewer`, a send that did not fit)
and the viewers' median is 24 fps or more. Not every viewer's minimum, as in the
capacity phase: on a shared 2-core machine the viewer processes and the camera lose
frames to the other load (a first run ended at 17 and 26 viewers with every viewer
at 23.97 fps, the nodes at half their quota and no frame dropped by them). A step that fails is measured once more; failing again ends the ramp.
The RTSP connections are the camera's own count: open at each step, and opened in
all during the ramp.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import aiohttp
import cgroup
from log import log
from processes import WorkerProc
from stage import LINGER, Stage

from .capacity import FPS_HELD, measure_step, next_step
from .cluster import running

DROPS = re.compile(
    r"^cctv_frames_dropped_(?:overload|slow_viewer)_total\{[^}]*\} ([0-9.e+]+)$", re.M
)
WORKERS = 4


async def run(stage: Stage) -> None:
    plan = stage.plan
    reason = cgroup.unavailable()
    if reason:
        log(f"spread: skipped: {reason}")
        stage.results["spread"] = {"skipped": reason}
        return
    results: dict[str, Any] = {
        "node_cpu_quota_pct": plan.node_cpu_quota_pct,
        "camera": "main",
        "window_s": plan.capacity_window,
        "one_node_offers": "straight to gw1, spreading off",
        "two_nodes_offer": "through HAProxy",
    }
    if plan.spread_one_node:  # measured in an earlier run (bench/run.py --spread-one-node)
        one = {"held": plan.spread_one_node, "earlier_run": True, "split": {}, "steps": []}
        one.update(rtsp_opened=1, rtsp_most=1)
    else:
        async with running(stage, "spread-one") as (nodes, _):
            one = await _ramp(stage, nodes[:1], nodes[0].url, start=plan.spread_step)
    results["one_node"] = one
    results["spread_cpu_percent"] = plan.spread_cpu_percent
    await asyncio.sleep(LINGER + 1)
    cluster = {"spread_cpu_percent": plan.spread_cpu_percent}
    async with running(stage, "spread-two", cluster=cluster) as (nodes, balancer):
        await asyncio.sleep(1.5)  # each node has heard the other's load
        # From the first step again: a capped node given 43 offers at once fell behind
        # its heartbeat, and the other node took it for dead (a first run).
        two = await _ramp(stage, nodes, balancer.url, plan.spread_step)
    results["two_nodes"] = two
    held1, held2 = one["held"], two["held"]
    results["ratio"] = round(held2 / held1, 2) if held1 else None
    log(
        f"spread: one node {held1} viewers, two nodes {held2}: {results['ratio']} times;"
        f" RTSP connections opened {two['rtsp_opened']}, most open at once {two['rtsp_most']}"
    )
    stage.results["spread"] = results


async def _ramp(stage: Stage, nodes: list[Any], url: str, start: int) -> dict[str, Any]:
    """Add viewers of the main camera until a step is not held: the most held, and steps."""
    plan, camera = stage.plan, stage.cameras["main"]
    opened_before = camera.total_connections
    with contextlib.ExitStack() as stack:
        quotas = {}
        for node in nodes:
            quota = stack.enter_context(cgroup.CpuQuota(node.node_id, plan.node_cpu_quota_pct))
            quota.add(node.proc.pid)
            quotas[node.node_id] = quota
        workers = [WorkerProc(f"spread{i}") for i in range(WORKERS)]
        await asyncio.gather(*(w.start(url, "main", stage.token) for w in workers))
        steps: list[dict[str, Any]] = []
        held, count, target = 0, 0, start
        before: dict[str, int] = {}
        busy_pct = plan.node_cpu_quota_pct * plan.spread_cpu_percent / 100
        try:
            while True:
                failed = await _join(workers, target - count)
                count = target
                await asyncio.sleep(plan.settle)
                step = await _measure(stage, nodes, workers, quotas, count)
                if not step["held"] and not failed:
                    step = await _measure(stage, nodes, workers, quotas, count)
                    step["measured_twice"] = True
                step["viewers_joined"] = step.pop("cameras")
                step["failed_joins"] = failed
                step["rtsp_open"] = camera.connections
                steps.append(step)
                split = ", ".join(
                    f"{k} {v['viewers']} ({v['cpu_pct']} %)" for k, v in step["per_node"].items()
                )
                log(
                    f"spread: {len(nodes)} node(s), {count} viewers: fps min {step['fps_min']},"
                    f" median {step['fps_median']}, frames dropped by the nodes"
                    f" {step['node_drops']}; {split}; RTSP {camera.connections}"
                    + ("" if step["held"] else " — not held")
                )
                if not step["held"]:
                    break
                held = count
                if count >= plan.spread_max:
                    break
                # New viewers land on the nodes that are not full: once the owner is
                # busy it keeps what it has, so its CPU does not say how many more fit.
                growing = {
                    k: v
                    for k, v in step["per_node"].items()
                    if v["viewers"] > before.get(k, 0) and v["cpu_pct"] < busy_pct
                }
                before = {k: v["viewers"] for k, v in step["per_node"].items()}
                step_on = {"per_node": growing or step["per_node"]}
                # Two at a time at least: a step near the quota takes a minute here.
                more = max(2, next_step(step_on, plan.spread_step, plan))
                target = min(plan.spread_max, count + more)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.gather(*(w.call("leave", _timeout=60) for w in workers))
            await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
    at = next((s for s in steps if s["viewers_joined"] == held), None)
    return {
        "held": held,
        "split": {k: v["viewers"] for k, v in at["per_node"].items()} if at else {},
        "rtsp_opened": camera.total_connections - opened_before,
        "rtsp_most": max((s["rtsp_open"] for s in steps), default=0),
        "steps": steps,
    }


async def _measure(
    stage: Stage, nodes: list[Any], workers: list[WorkerProc], quotas: dict[str, Any], count: int
) -> dict[str, Any]:
    """The capacity phase's step, and the frames the nodes themselves dropped meanwhile."""
    before = sum([await _drops(node.url) for node in nodes])
    step = await measure_step(stage, nodes, workers, quotas, count)
    step["node_drops"] = sum([await _drops(node.url) for node in nodes]) - before
    step["held"] = (
        step["viewers"] == count
        and step["node_drops"] == 0
        and (step["fps_median"] or 0.0) >= FPS_HELD
    )
    return step


async def _drops(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as reply:
        text = await reply.text()
    return int(sum(float(n) for n in DROPS.findall(text)))


async def _join(workers: list[WorkerProc], n: int) -> int:
    """`n` more viewers, shared round the workers; the joins that failed."""
    shares = [n // len(workers) + (1 if k < n % len(workers) else 0) for k in range(len(workers))]

    async def joins(worker: WorkerProc, k: int) -> int:
        if not k:
            return 0
        got = await worker.call("join", n=k, wait_frames=10)
        return int(got["failed"] + got["without_frames"])

    return sum(await asyncio.gather(*(joins(w, k) for w, k in zip(workers, shares, strict=True))))
