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
import time

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
