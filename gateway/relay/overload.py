"""LoopWatch: whether the event loop keeps up with the cameras.

Frames reach the event loop from the pull threads. When the process has more to
do than its CPU allows, the loop falls behind, and everything queued on it waits
behind the frames: sign-ins, revocations, a cluster node's heartbeat (which, 5 s
late, makes the other nodes take the node for dead). The loop stamps the time
every TICK_SECONDS; a pull thread that finds the stamp older than that plus
BEHIND_SECONDS drops frames up to the next keyframe instead of queueing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

TICK_SECONDS = 0.05
# Late by this much the loop is behind, not merely busy: a fan-out of one keyframe
# to 200 viewers takes tens of ms here, and the healthy added latency p99 is under
# 40 ms (README, Performance), so this is far past anything normal.
BEHIND_SECONDS = 0.5


class LoopWatch:
    def __init__(self) -> None:
        self._stamp = time.monotonic()  # written on the loop, read by pull threads
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start stamping (on the running loop); again is a no-op."""
        if self._handle is None:
            self._tick()

    def _tick(self) -> None:
        self._stamp = time.monotonic()
        self._handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    @property
    def behind(self) -> bool:
        if self._handle is None:
            return False
        return time.monotonic() - self._stamp > TICK_SECONDS + BEHIND_SECONDS

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


# The share of its CPU a node used is judged over this long: long enough that one
# keyframe's fan-out (tens of ms) or a GC pause is not taken for load, short enough
# that a burst of viewers is seen within a ramp's step.
CPU_WINDOW_SECONDS = 2.0
CPU_SAMPLE_SECONDS = 0.25  # samples kept at most this often (read on demand)
ALLOWANCE_SECONDS = 10.0  # the cgroup's quota is read again at most this often


class CpuGauge:
    """The share of the CPU this process may use that it used over the last
    CPU_WINDOW_SECONDS: the larger of its CPU against its allowance (its cgroup's
    quota, else its cores) and its event loop's thread against one core (the fan-out
    runs there, under the GIL, however many cores there are).

    Read on the event loop only (`share`): the loop thread's CPU clock is the caller's.
    Sampled when read, so it needs no timer; a cluster node reads it every heartbeat.
    """

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, float]] = deque()
        self._share = 0.0
        self._allowance = 1.0
        self._allowance_read = -ALLOWANCE_SECONDS

    def share(self) -> float:
        now = time.monotonic()
        sample = (now, time.process_time(), time.thread_time())
        samples = self._samples
        # The reference: the newest sample at least a window old, else the oldest.
        while len(samples) >= 2 and now - samples[1][0] >= CPU_WINDOW_SECONDS:
            samples.popleft()
        if not samples or now - samples[-1][0] >= CPU_SAMPLE_SECONDS:
            samples.append(sample)
        then, process, loop = samples[0]
        elapsed = now - then
        if elapsed >= CPU_SAMPLE_SECONDS:
            if now - self._allowance_read >= ALLOWANCE_SECONDS:
                self._allowance, self._allowance_read = cpu_allowance(), now
            self._share = max(
                (sample[1] - process) / elapsed / self._allowance,
                (sample[2] - loop) / elapsed,
            )
        return self._share


def cpu_allowance() -> float:
    """Cores this process may use: its CPU affinity, capped by the CPU quota of its
    cgroup or any parent group (v1 `cpu.cfs_quota_us`, v2 `cpu.max`)."""
    cores = float(len(os.sched_getaffinity(0)))
    for quota in _cgroup_quotas():
        cores = min(cores, quota)
    return max(cores, 0.01)


def _cgroup_quotas() -> Iterator[float]:
    """Each quota, in cores, set on this process's cgroup and its parents."""
    try:
        groups = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    for line in groups:
        _, controllers, group = line.split(":", 2)
        v2 = controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        for mount in mounts:
            fields = mount.split()
            fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
            if fstype == "cgroup2" if v2 else fstype == "cgroup" and "cpu" in options:
                yield from _quotas_up(Path(fields[4]), fields[3], group, v2)


def _quotas_up(mount: Path, root: str, group: str, v2: bool) -> Iterator[float]:
    """The quotas from `group` up to the mount's root (`root`: the part of the
    hierarchy the mount shows)."""
    relative = group[len(root) :] if group.startswith(root) else group
    path = mount / relative.lstrip("/")
    while True:
        with contextlib.suppress(OSError, ValueError, ZeroDivisionError):
            if v2:
                quota, period = (path / "cpu.max").read_text().split()
                if quota != "max":
                    yield int(quota) / int(period)
            else:
                quota = (path / "cpu.cfs_quota_us").read_text().strip()
                if int(quota) > 0:
                    yield int(quota) / int((path / "cpu.cfs_period_us").read_text())
        if path == mount or path.parent == path:
            return
        path = path.parent
