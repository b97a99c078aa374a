"""A flood of bad tokens (issue 10): 400 clients sending requests with forged tokens for
60 s, from many addresses (through a trusted proxy, as behind HAProxy), while viewers
watch. What it shows: the viewers' fps, the gateway's CPU, how much the database grew,
and how many answers were 5xx (goal: none).

Then (issue 27) two attacks from one address each, as themselves (not through the
proxy): 120 parallel guessers of one account's token (goal: no more guesses answered
than one guesser in a row gets), and 3,000 connections that drip their headers
(goal: at most `max_connections_per_address` held, each for at most the request
timeout); the viewers' fps meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import time
from collections import Counter

import aiohttp
import jwt
from log import log
from sampling import cpu_seconds, rss_mb
from stage import Stage
from stats import rounded

CLIENTS = 400
VIEWERS = 5
GUESSERS = 120
GUESSING_FROM = "127.0.0.8"
DRIPPERS = 3000
DRIPPING_FROM = "127.0.0.9"


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


async def _guess(url: str, token: str, stop: float, answered: list[float]) -> None:
    """One guesser: a wrong token for one account, again and again, from one address."""
    connector = aiohttp.TCPConnector(local_addr=(GUESSING_FROM, 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        while time.monotonic() < stop:
            try:
                async with asyncio.timeout(max(0.1, stop - time.monotonic())):
                    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                        if r.status == 401:
                            answered.append(time.monotonic())
            except (aiohttp.ClientError, TimeoutError):
                pass


async def _drip(host: str, port: int, stop: float, held: list[float]) -> None:
    """One connection dripping its headers a byte a second; how long it was held."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(DRIPPING_FROM, 0))
    except OSError:
        return
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Drip: ")
        while time.monotonic() < stop:
            writer.write(b"x")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1024), 1.0) == b"":
                    break
    except OSError:
        pass
    finally:
        held.append(time.monotonic() - started)
        writer.close()


async def _attacks(stage: Stage, gw, workers) -> dict:  # type: ignore[no-untyped-def]
    """Guessers, then drippers, each for a while; the viewers' fps throughout."""
    seconds = 10.0 if stage.plan.quick else 30.0
    s0 = await workers[0].call("stats")
    wrong = jwt.encode({"account_id": "victim", "exp": int(time.time()) + 600}, "x" * 32)
    answered: list[float] = []
    started = time.monotonic()
    stop = started + seconds
    await asyncio.gather(
        *(_guess(f"{gw.url}/api/me", wrong, stop, answered) for _ in range(GUESSERS))
    )
    guessing = time.monotonic() - started
    log(f"flood: {GUESSERS} guessers from one address: {len(answered)} answers in {guessing:.1f} s")
    held: list[float] = []
    stop = time.monotonic() + seconds
    host, port = gw.url.removeprefix("http://").split(":")
    drips = [asyncio.ensure_future(_drip(host, int(port), stop, held)) for _ in range(DRIPPERS)]
    await asyncio.sleep(seconds / 2)
    open_now = sum(1 for t in drips if not t.done())  # still dripping, or refused late
    await asyncio.gather(*drips)
    s1 = await workers[0].call("stats")
    fps = [
        (vb["frames"] - va["frames"]) / (s1["t"] - s0["t"])
        for va, vb in zip(s0["viewers"], s1["viewers"], strict=False)
    ]
    longest = sorted(held)[-((stage.plan.quick and 1) or 5) :]
    return {
        "guessers": GUESSERS,
        "guessing_seconds": round(guessing, 1),
        "guesses_answered": len(answered),
        "guesses_per_second": round(len(answered) / guessing, 2),
        "drippers": DRIPPERS,
        "dripping_seconds": seconds,
        "drippers_open_midway": open_now,
        "longest_held_seconds": [round(t, 1) for t in longest],
        "viewer_fps_min": rounded(min(fps), 2) if fps else None,
    }


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
        attacks = await _attacks(stage, gw, workers)
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
            "attacks": attacks,
        }
        await workers[0].call("leave")
