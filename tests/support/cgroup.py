"""A cgroup v1 `cpu` group with a CFS quota: a CPU budget that holds whatever the
scheduler does with nice values (autogroups make `nice` mean little across sessions,
and a browser launched by Playwright has a session of its own)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
_names = itertools.count()


@contextmanager
def cpu_quota(cores: float) -> Iterator[Path]:
    """A group whose processes together get at most `cores` of CPU time (0.3: 30 % of
    one core); its processes go back to the root group when it ends."""
    if not os.access(CPU_ROOT / "cgroup.procs", os.W_OK):
        pytest.skip(f"no writable cgroup v1 cpu hierarchy at {CPU_ROOT}")
    group = CPU_ROOT / f"cctv-test-{os.getpid()}-{next(_names)}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(round(cores * PERIOD_US)))
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            with suppress(ProcessLookupError):
                (CPU_ROOT / "cgroup.procs").write_text(pid)
        group.rmdir()


def join(group: Path, pids: Iterable[int]) -> int:
    """Moves these processes (all their threads) into the group; children they start
    later are born in it. Returns how many moved (one may have exited meanwhile)."""
    moved = 0
    for pid in pids:
        try:
            (group / "cgroup.procs").write_text(str(pid))
            moved += 1
        except ProcessLookupError:
            pass
    return moved


def descendants(root: int) -> list[int]:
    """The processes started, directly or not, by `root`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "pid (comm) state ppid ...", comm may hold spaces.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def chromium_processes() -> list[int]:
    """This test process's Chromium: the browser and every process it started."""
    pids = []
    for pid in descendants(os.getpid()):
        try:
            if "chrom" in os.readlink(f"/proc/{pid}/exe"):
                pids.append(pid)
        except OSError:
            continue
    return pids
