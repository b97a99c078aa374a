"""What the machine and the benchmark's processes are doing, read from /proc."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) seconds of the whole process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process's main thread (the event loop); the rest is the
    camera pulls' worker threads and the codecs' own threads."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def proc_snapshot() -> dict[int, tuple[str, int]]:
    """CPU ticks of every process, for naming what else loads the machine."""
    snap = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read(300).replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        name = cmd or text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        snap[int(entry)] = (name[:80], int(fields[11]) + int(fields[12]))
    return snap


def top_others(
    a: dict[int, tuple[str, int]], b: dict[int, tuple[str, int]], ours: set[int], dt: float
) -> list[dict[str, Any]]:
    rows = [
        (b[pid][1] - a[pid][1], b[pid][0])
        for pid in b
        if pid in a and pid not in ours and b[pid][1] > a[pid][1]
    ]
    rows.sort(reverse=True)
    return [{"cmd": name, "cpu_pct": round(100 * t / CLK_TCK / dt, 1)} for t, name in rows[:3]]


QUIET_PCT = 20.0  # other processes' load (% of a core) under which a window may start
QUIET_WAIT = 45.0  # at most this long; then measure anyway, and the row says so


async def wait_quiet(ours: set[int]) -> float:
    """Wait (bounded) until processes other than ours load the machine little.

    The machine may be shared (other jobs running tests): a measurement window that
    overlaps their bursts shows their load as latency and lost frames.
    """
    start = time.monotonic()
    while time.monotonic() - start < QUIET_WAIT:
        a = proc_snapshot()
        await asyncio.sleep(1.0)
        b = proc_snapshot()
        other = sum(b[p][1] - a[p][1] for p in b if p in a and p not in ours and not _is_kernel(p))
        if 100 * other / CLK_TCK < QUIET_PCT:
            break
    return round(time.monotonic() - start, 1)


def _is_kernel(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return not f.read(1)
    except OSError:
        return True


def machine_info() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def fps_between(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[float]:
    """Every viewer's frame rate between two rounds of the workers' `stats` answers."""
    return [
        (vb["frames"] - va["frames"]) / (b["t"] - a["t"])
        for a, b in zip(before, after, strict=True)
        for va, vb in zip(a["viewers"], b["viewers"], strict=False)
    ]


async def window_cpu_and_fps(
    gateway_pid: int, workers: list[Any], quiet: set[int], window: float
) -> tuple[float, float, dict[str, list[float]]]:
    """Over `window` seconds on a quiet machine: the gateway's CPU and its event loop's
    (% of a core), and each worker's viewers' frame rates, by worker name."""
    await wait_quiet(quiet)
    s0 = await asyncio.gather(*(w.call("stats") for w in workers))
    g0, m0, t0 = cpu_seconds(gateway_pid), main_thread_cpu_seconds(gateway_pid), time.monotonic()
    await asyncio.sleep(window)
    g1, m1, t1 = cpu_seconds(gateway_pid), main_thread_cpu_seconds(gateway_pid), time.monotonic()
    s1 = await asyncio.gather(*(w.call("stats") for w in workers))
    dt = t1 - t0
    rates = {
        w.name: [
            (vb["frames"] - va["frames"]) / (b["t"] - a["t"])
            for va, vb in zip(a["viewers"], b["viewers"], strict=False)
        ]
        for w, a, b in zip(workers, s0, s1, strict=True)
    }
    return 100 * (g1 - g0) / dt, 100 * (m1 - m0) / dt, rates
