"""The CPU gauge a cluster node spreads by (`[cluster] spread_cpu_percent`, issue 25):
it weighs the process against its cgroup's real CPU quota (a cgroup v1 `cpu` group
made for the test, as bench/cgroup.py makes one per node) and its event loop's thread
against one core."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cgroup import cpu_quota

from gateway.relay.overload import CPU_WINDOW_SECONDS, CpuGauge, cpu_allowance

PROBE = """
import time
from gateway.relay.overload import CpuGauge, cpu_allowance
gauge = CpuGauge()
gauge.share()
started = time.monotonic()
while time.monotonic() - started < 1.0:
    pass
print(cpu_allowance(), gauge.share())
"""


@pytest.fixture
def quota_group() -> Iterator[Path]:
    """A cpu group capped at 30 % of a core."""
    with cpu_quota(0.3) as group:
        yield group


def test_a_process_under_a_quota_is_busy_at_its_quota(quota_group: Path) -> None:
    """Spinning for a second under a 30 % quota, the process has used all it may."""
    # The shell joins the group, then becomes the probe: the probe starts inside it.
    script = f'echo $$ > {quota_group}/cgroup.procs && exec "$0" -c "$1"'
    done = subprocess.run(
        ["sh", "-c", script, sys.executable, PROBE],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[1],
        check=True,
    )
    allowance, share = map(float, done.stdout.split())
    assert allowance == pytest.approx(0.3)
    # 0.3 s of CPU in a second, against 0.3 s allowed (a spin outside it shows ~0.3).
    assert share > 0.8, share


def test_the_loop_thread_is_weighed_against_one_core() -> None:
    """Without a quota (a whole core or more), spinning on the reading thread is busy,
    and idling after it for a window is not."""
    assert cpu_allowance() >= 1.0
    gauge = CpuGauge()
    gauge.share()
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        pass
    assert gauge.share() > 0.7
    time.sleep(CPU_WINDOW_SECONDS + 0.5)
    assert gauge.share() < 0.2
