"""Several gateways (issue 14): two nodes on one PostgreSQL behind HAProxy, built by
deploy/local_cluster.py (as `make cluster-demo` and the cluster tests are).

- The many cameras of the `many` phase, one viewer each, offered through HAProxy:
  each node's CPU, the RTSP connections (one per camera across the cluster), and
  the viewers' frame rates. The single gateway's figures are the `many` phase's.
- A revoke sent to gw1 to the peer connection closed on gw2.
- kill -9 of the node that holds a viewer, to a picture again: the viewer offers
  again through HAProxy (as the player does) until it has frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from log import log
from processes import WorkerProc
from project import OUT, grant_cameras
from sampling import cpu_seconds, fps_between, rss_mb, wait_quiet, window_cpu_and_fps
from stage import ACCOUNT, Stage
from stats import rounded, summary

from deploy import local_cluster

NODES = ("gw1", "gw2")


async def run(stage: Stage) -> None:
    plan = stage.plan
    async with running(stage, "cluster") as (nodes, balancer):
        results: dict[str, Any] = {"nodes": len(nodes)}
        results["many_cameras"] = await _many(stage, nodes, balancer.url)
        results["per_viewer"] = await _per_viewer(stage, nodes, balancer.url)
        results["revoke_gw1_to_closed_on_gw2_s"] = await _revokes(stage, nodes, plan.revoke_reps)
        results["kill_to_picture_s"] = await _kill_to_picture(stage, nodes, balancer.url)
        stage.results["cluster"] = results


@contextlib.asynccontextmanager
async def running(
    stage: Stage, name: str, **tables: dict[str, Any]
) -> AsyncIterator[tuple[list[Any], Any]]:
    """PostgreSQL, the nodes and HAProxy, with the many cameras running; (nodes, balancer).
    `tables`: settings merged over each node's (e.g. cluster={"spread_viewers": 40})."""
    folder = stage.workdir / name
    folder.mkdir(exist_ok=True)
    # Outside the run's own folder, which only root may enter; PostgreSQL runs as postgres.
    postgres = local_cluster.Postgres(Path(tempfile.mkdtemp(prefix="gateway-bench-pg-")))
    postgres.start()
    nodes: list[Any] = []
    balancer = None
    for cam in stage.many_procs:
        cam.start()
    try:
        database = postgres.create_database("bench")
        grant_cameras(database, ["main", "hevc", *stage.camera_ids], ACCOUNT)  # type: ignore[arg-type]
        base = tomllib.loads(stage.config_text())
        for node_id in NODES:
            port = local_cluster.free_port()
            settings = local_cluster.node_settings(base, node_id, port, database, **tables)
            nodes.append(local_cluster.Node(folder, node_id, settings))
        for node in nodes:
            node.start()
        balancer = local_cluster.Balancer(folder, {n.node_id: n.port for n in nodes})
        balancer.start()
        await asyncio.sleep(2.5)  # HAProxy's health checks (rise 2, every second)
        yield nodes, balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for node in nodes:
            node.stop()
            with contextlib.suppress(OSError):  # as the single gateway's logs are kept
                OUT.mkdir(exist_ok=True)
                (OUT / f"{name}-{node.node_id}.log").write_bytes(node.log.read_bytes())
        postgres.stop()
        shutil.rmtree(postgres.folder, ignore_errors=True)
        for cam in stage.many_procs:
            cam.stop()


async def _many(stage: Stage, nodes: list[Any], url: str) -> dict[str, Any]:
    plan = stage.plan
    n_workers = min(4, plan.many_cameras)
    workers = [WorkerProc(f"cluster{i}") for i in range(n_workers)]
    await asyncio.gather(*(w.start(url, "main", stage.token) for w in workers))
    try:
        log(f"cluster: {plan.many_cameras} cameras through HAProxy, one viewer each")
        for i, cid in enumerate(stage.many_ids):
            await workers[i % n_workers].call("join", n=1, camera=cid)
        await asyncio.sleep(plan.settle + 2)
        pids = [n.proc.pid for n in nodes]
        cam_pids = [c._proc.pid for c in stage.many_procs]  # type: ignore[union-attr]
        await wait_quiet({*pids, os.getpid(), *(w.pid for w in workers), *cam_pids})
        s0 = await asyncio.gather(*(w.call("stats") for w in workers))
        c0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
        await asyncio.sleep(plan.window)
        c1, t1 = [cpu_seconds(p) for p in pids], time.monotonic()
        s1 = await asyncio.gather(*(w.call("stats") for w in workers))
        fps = fps_between(s0, s1)
        per_node = {
            node.node_id: {
                "cpu_pct": round(100 * (after - before) / (t1 - t0), 1),
                "rss_mb": round(rss_mb(node.proc.pid), 1),
                "viewers": await node_sessions(node.url),
            }
            for node, before, after in zip(nodes, c0, c1, strict=True)
        }
        await asyncio.gather(*(w.call("leave") for w in workers))
        return {
            "cameras": plan.many_cameras,
            "rtsp_connections": sum(c.connections for c in stage.many_procs),
            "per_node": per_node,
            "fps_min": rounded(min(fps), 2) if fps else None,
            "fps_median": rounded(statistics.median(fps), 2) if fps else None,
        }
    finally:
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)


async def _per_viewer(stage: Stage, nodes: list[Any], url: str) -> dict[str, Any]:
    """A node's CPU per viewer of one camera when the viewers offer through HAProxy and
    when they offer to the node directly: after the offer, media is the same."""
    n, window = stage.plan.per_viewer_viewers, stage.plan.window
    through, direct = WorkerProc("per-viewer-haproxy"), WorkerProc("per-viewer-direct")
    await through.start(url, "main", stage.token)
    try:
        # One viewer keeps the camera pulled on the node that owns it.
        first = await through.call("join", n=1, wait_frames=10)
        holder = first["sessions"][0].rsplit("/", 1)[1].split(".", 1)[0]
        node = next(x for x in nodes if x.node_id == holder)
        await direct.start(node.url, "main", stage.token)
        quiet = {node.proc.pid, os.getpid(), through.pid, direct.pid}
        base, _, _ = await window_cpu_and_fps(node.proc.pid, [through], quiet, window)
        row: dict[str, Any] = {"node": holder, "viewers": n, "one_viewer_cpu_pct": round(base, 1)}
        for key, worker in (("haproxy", through), ("direct", direct)):
            joined = await worker.call("join", n=n, wait_frames=10)
            await asyncio.sleep(stage.plan.settle)
            cpu, _, rates = await window_cpu_and_fps(node.proc.pid, [worker], quiet, window)
            fps = rates[worker.name]
            row[key] = {
                "joined": joined["joined"],
                "cpu_pct": round(cpu, 1),
                "cpu_pct_per_viewer": round((cpu - base) / max(1, joined["joined"]), 3),
                "fps_min": rounded(min(fps), 2) if fps else None,
            }
            await worker.call("leave", n=joined["joined"])  # one viewer of the camera stays
        log(
            f"cluster: CPU per viewer on {holder}: through HAProxy "
            f"{row['haproxy']['cpu_pct_per_viewer']} %, direct {row['direct']['cpu_pct_per_viewer']} %"
        )
        return row
    finally:
        await asyncio.gather(through.stop(), direct.stop(), return_exceptions=True)


async def node_sessions(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as reply:
        return int((await reply.json())["sessions"])


async def _revokes(stage: Stage, nodes: list[Any], reps: int) -> dict[str, Any]:
    """A viewer on gw2; an administrator revokes its session through gw1."""
    gw1, gw2 = nodes
    worker = WorkerProc("cluster-revoke")
    await worker.start(gw2.url, "main", stage.token)
    times = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(reps):
                joined = await worker.call("join", n=1, wait_frames=10)
                session_url = joined["sessions"][0]
                await asyncio.sleep(1.0)
                t0 = time.monotonic()
                async with http.post(
                    f"{gw1.url}/api/sessions/{session_url.rsplit('/', 1)[1]}/revoke",
                    json={"reason": "benchmark"},
                    headers={"Authorization": f"Bearer {stage.admin}"},
                ) as reply:
                    await reply.read()
                closed = await worker.call("closed_at", session=session_url)
                if closed["closed_at"] is not None:
                    times.append(closed["closed_at"] - t0)
    finally:
        await worker.stop()
    log(f"cluster: revoke on gw1 to closed on gw2: {[round(t * 1000) for t in times]} ms")
    return summary(times)


async def _kill_to_picture(stage: Stage, nodes: list[Any], url: str) -> float | None:
    """Kill the node holding a viewer; offer again through HAProxy until a picture."""
    worker = WorkerProc("cluster-failover")
    await worker.start(url, "main", stage.token)
    try:
        joined = await worker.call("join", n=1, wait_frames=10)
        holder = joined["sessions"][0].rsplit("/", 1)[1].split(".", 1)[0]
        node = next(n for n in nodes if n.node_id == holder)
        killed = time.monotonic()
        node.kill()
        deadline = killed + 60
        delay = 0.25
        while time.monotonic() < deadline:
            again = await worker.call("join", n=1, wait_frames=10)
            if again["joined"] and not again["without_frames"]:
                took = time.monotonic() - killed
                log(f"cluster: kill -9 of {holder} to a picture again: {took:.2f} s")
                return round(took, 2)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)
        return None
    finally:
        await worker.stop()
