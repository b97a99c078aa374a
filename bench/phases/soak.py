"""Soak: thousands of viewers join and leave one gateway for minutes (issue 24).

The gateway is its own process and the viewers are in four others, so the RSS and
file descriptors sampled here are the gateway's alone. Two workers keep viewers
coming and going on the main camera (its pull never stops); two come in waves on
two other cameras, with a rest longer than the linger between waves, so those
pulls stop and start again. Viewers leave as in tests/test_soak.py: 7 in 10 with
DELETE, 2 closing their connection, 1 going silent (the gateway notices through
ICE consent).

Before the churn one viewer joins and leaves (imports, codecs, executor threads),
and the idle figures are taken once the pull has stopped; after it, once every
session has ended and every pull has stopped. Every five seconds the gateway's
RSS, open file descriptors, threads and live sessions are read; the report keeps
the last reading of each minute and the largest RSS within it. At both idle
readings glibc is also asked to hand its free heap back (malloc_trim, through gdb),
which tells memory still in use from what the allocator keeps for later.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from typing import Any

import aiohttp
from log import log
from processes import Gateway
from stage import LINGER, Stage

SAMPLE_SECONDS = 5.0
WARMUP_MINUTES = 2  # imports, caches and the allocator's arenas fill up first
SETTLE_SECONDS = 90.0  # silent viewers (ICE consent, up to ~30 s) and the linger
# (worker, camera, in flight, hold, waves)
LANES = (
    ("soak-main-1", "main", 6, 3.0, False),
    ("soak-main-2", "main", 6, 3.0, False),
    ("soak-wave-1", "many-00", 5, 3.0, True),
    ("soak-wave-2", "many-01", 5, 3.0, True),
)


def _reading(pid: int) -> dict[str, float]:
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    return {
        "rss_mb": round(int(status["VmRSS"][0]) / 1024, 1),
        "threads": int(status["Threads"][0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


async def _sessions(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/healthz") as reply:
        return int((await reply.json())["sessions"])


async def _quiet(gw: Gateway, http: aiohttp.ClientSession, timeout: float) -> dict[str, Any]:
    """Once no session is left and the pulls have lingered out: the readings then.
    Idle keep-alive connections (the workers', this one's) are closed by then too:
    the gateway keeps one idle for `request_timeout_seconds` (5 s)."""
    deadline = time.monotonic() + timeout
    while await _sessions(http, gw.url) and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
    await asyncio.sleep(LINGER + 6.0)
    reading = _reading(gw.pid)
    return {
        **reading,
        "sessions": await _sessions(http, gw.url),
        "rss_trimmed_mb": await asyncio.to_thread(_trimmed_rss, gw.pid),
    }


def _trimmed_rss(pid: int) -> float | None:
    """The RSS once glibc has handed its free heap back to the system (malloc_trim,
    called through gdb): memory still in use, without what the allocator keeps for
    later. None without gdb."""
    if shutil.which("gdb") is None:
        return None
    subprocess.run(
        ["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "call (int) malloc_trim(0)"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return _reading(pid)["rss_mb"]


async def run(stage: Stage) -> None:
    plan = stage.plan
    seconds = plan.soak_seconds
    cams = stage.many_procs[:2]  # many-00 and many-01 are served by the first two
    for cam in cams:
        cam.start()
    try:
        async with (
            stage.gateway("soak") as gw,
            stage.workers(gw, [lane[0] for lane in LANES]) as workers,
            aiohttp.ClientSession() as http,
        ):
            warm = await workers[0].call("join", n=1, wait_frames=10)
            await workers[0].call("leave")
            idle = await _quiet(gw, http, 30)
            log(f"soak: idle {idle}; churning for {seconds:.0f} s")
            started = time.monotonic()
            for worker, (_, camera, in_flight, hold, waves) in zip(workers, LANES, strict=True):
                await worker.call(
                    "churn",
                    seconds=seconds,
                    in_flight=in_flight,
                    hold=hold,
                    camera=camera,
                    waves=waves,
                    pause=LINGER + 2.0,
                )
            samples = []
            while time.monotonic() - started < seconds:
                await asyncio.sleep(SAMPLE_SECONDS)
                statuses = await asyncio.gather(*(w.call("churn_status") for w in workers))
                samples.append(
                    {
                        "t": round(time.monotonic() - started, 1),
                        **_reading(gw.pid),
                        "sessions": await _sessions(http, gw.url),
                        "started": sum(s["counts"]["started"] for s in statuses),
                    }
                )
            done = await asyncio.gather(*(w.call("churn_wait", _timeout=120) for w in workers))
            after = await _quiet(gw, http, SETTLE_SECONDS)
        summary = _summary(seconds, warm, idle, after, samples, done)
        # Run on its own too (--phases soak) and merged into a full run's results.
        summary["run"] = {"git": stage.results.get("git"), "at": stage.results.get("started_at")}
        stage.results["soak"] = summary
        log(f"soak: {stage.results['soak']['verdict']}")
    finally:
        for cam in cams:
            cam.stop()


def _summary(
    seconds: float,
    warm: dict[str, Any],
    idle: dict[str, Any],
    after: dict[str, Any],
    samples: list[dict[str, Any]],
    done: list[dict[str, Any]],
) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for result in done:
        for key, count in result["counts"].items():
            outcomes[key] = outcomes.get(key, 0) + count
    minutes = []
    for minute in range(1, int(seconds // 60) + 2):
        inside = [s for s in samples if minute - 1 < s["t"] / 60 <= minute]
        if inside:
            last = inside[-1]
            minutes.append(
                {
                    "minute": minute,
                    "sessions_started": last["started"],
                    "live_sessions": last["sessions"],
                    "rss_mb": last["rss_mb"],
                    "rss_max_mb": max(s["rss_mb"] for s in inside),
                    "fds": last["fds"],
                    "threads": last["threads"],
                }
            )
    steady = [m["rss_mb"] for m in minutes if m["minute"] > WARMUP_MINUTES]
    growth = spread = None
    if len(steady) >= 2:
        growth = round(100 * (steady[-1] / steady[0] - 1), 1)
        spread = round(100 * (max(steady) / min(steady) - 1), 1)
    fds_back = after["fds"] <= idle["fds"]
    verdict = (
        f"{outcomes.get('started', 0)} sessions in {seconds / 60:.1f} min; RSS after warm-up"
        f" {'+' if (growth or 0) >= 0 else ''}{growth} % (spread {spread} %), fds idle"
        f" {idle['fds']} -> after {after['fds']}"
    )
    return {
        "seconds": seconds,
        "lanes": [
            {"worker": w, "camera": c, "in_flight": n, "hold_s": h, "waves": v}
            for w, c, n, h, v in LANES
        ],
        "warm_up_join": {"joined": warm.get("joined"), "failed": warm.get("failed")},
        "outcomes": outcomes,
        "idle": idle,
        "after": after,
        "minutes": minutes,
        "warmup_minutes": WARMUP_MINUTES,
        "rss_growth_after_warmup_pct": growth,
        "rss_spread_after_warmup_pct": spread,
        "fds_back_to_idle": fds_back,
        "verdict": verdict,
    }
