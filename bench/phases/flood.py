"""A flood of bad tokens (issue 10): 400 clients sending requests with forged tokens for
60 s, from many addresses (through a trusted proxy, as behind HAProxy), while viewers
watch. What it shows: the viewers' fps, the gateway's CPU, how much the database grew,
and how many answers were 5xx (goal: none)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import time
from collections import Counter

import aiohttp
from log import log
from sampling import cpu_seconds, rss_mb
from stage import Stage
from stats import rounded

CLIENTS = 400
VIEWERS = 5


def database_bytes(stage: Stage) -> int:
    return sum(
        os.path.getsize(path)
        for suffix in ("", "-wal")
        if os.path.exists(path := f"{stage.db_path}{suffix}")
    )


async def _client(
    http: aiohttp.ClientSession, url: str, addresses: itertools.count, stop: float, got: Counter
) -> None:
    while time.monotonic() < stop:
        n = next(addresses)
        # Addresses from 198.18.0.0/15 (RFC 2544, benchmarking): only header values,
        # every packet goes to loopback.
        forwarded = f"198.18.{(n >> 8) & 0xFF}.{n & 0xFF}"
        headers = {"Authorization": f"Bearer forged.{n}.token", "X-Forwarded-For": forwarded}
        try:
            async with http.get(url, headers=headers) as response:
                got[response.status] += 1
        except (aiohttp.ClientError, TimeoutError):
            got["error"] += 1


async def run(stage: Stage) -> None:
    plan = stage.plan
    seconds = 15.0 if plan.quick else 60.0
    async with (
        stage.gateway("flood") as gw,
        stage.workers(gw, ["flood-viewers"]) as workers,
    ):
        await workers[0].call("join", n=VIEWERS)
        await asyncio.sleep(plan.settle)
        size0 = database_bytes(stage)
        s0 = await workers[0].call("stats")
        g0, t0 = cpu_seconds(gw.pid), time.monotonic()
        log(f"flood: {CLIENTS} clients with forged tokens for {seconds:g} s")
        got: Counter = Counter()
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            stop = time.monotonic() + seconds
            addresses = itertools.count(1)
            await asyncio.gather(
                *(_client(http, f"{gw.url}/api/me", addresses, stop, got) for _ in range(CLIENTS))
            )
        g1, t1 = cpu_seconds(gw.pid), time.monotonic()
        s1 = await workers[0].call("stats")
        with contextlib.suppress(Exception):
            await asyncio.sleep(2)  # the last minute's rows are queued on the next flush
        size1 = database_bytes(stage)
        fps = [
            (vb["frames"] - va["frames"]) / (s1["t"] - s0["t"])
            for va, vb in zip(s0["viewers"], s1["viewers"], strict=False)
        ]
        requests = sum(n for k, n in got.items() if k != "error")
        stage.results["flood"] = {
            "clients": CLIENTS,
            "seconds": seconds,
            "requests": requests,
            "requests_per_second": round(requests / (t1 - t0)),
            "status": {str(k): n for k, n in sorted(got.items(), key=str)},
            "server_errors": sum(n for k, n in got.items() if isinstance(k, int) and k >= 500),
            "client_errors": got["error"],
            "gateway_cpu_pct": round(100 * (g1 - g0) / (t1 - t0), 1),
            "gateway_rss_mb": round(rss_mb(gw.pid), 1),
            "database_growth_kb": round((size1 - size0) / 1024, 1),
            "viewers": VIEWERS,
            "viewer_fps_min": rounded(min(fps), 2) if fps else None,
            "viewer_fps_median": rounded(statistics.median(fps), 2) if fps else None,
        }
        await workers[0].call("leave")
