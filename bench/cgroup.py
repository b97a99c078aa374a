"""A CPU quota for one process: a cgroup v1 `cpu` group of its own.

The capacity phase caps each gateway node at a fraction of a core, so that one node
saturates while the cameras and viewers (uncapped) still have the rest of the
machine: a quota per node stands in for "a core per node" on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CPU_ROOT = Path("/sys/fs/cgroup/cpu")


def unavailable() -> str | None:
    """Why a quota cannot be set here (None: it can): a probe group is made and removed."""
    if not (CPU_ROOT / "cgroup.procs").exists():
        return f"no cgroup v1 cpu hierarchy at {CPU_ROOT}"
    probe = CPU_ROOT / f"cctv-bench-probe-{os.getpid()}"
    try:
        probe.mkdir()
        try:
            (probe / "cpu.cfs_quota_us").write_text("10000")
        finally:
            probe.rmdir()
    except OSError as exc:
        return f"{CPU_ROOT} is not writable: {exc.strerror or exc}"
    return None


class CpuQuota:
    """`pct` % of one core (cpu.cfs_quota_us per cpu.cfs_period_us) for the pids added."""

    def __init__(self, name: str, pct: float, period_us: int = 100_000) -> None:
        self.path = CPU_ROOT / f"cctv-bench-{os.getpid()}-{name}"
        self.pct = pct
        self.period_us = period_us

    def __enter__(self) -> CpuQuota:
        self.path.mkdir()
        (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
        (self.path / "cpu.cfs_quota_us").write_text(str(round(self.period_us * self.pct / 100)))
        return self

    def add(self, pid: int) -> None:
        """Move the process (all its threads) into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> tuple[int, float]:
        """(periods throttled, seconds throttled) since the group was made."""
        values = dict(
            line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if line
        )
        return int(values.get("nr_throttled", 0)), int(values.get("throttled_time", 0)) / 1e9

    def __exit__(self, *exc: object) -> None:
        # Whatever still runs in the group goes back to the root group, then the group goes.
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CPU_ROOT / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.path.rmdir()
