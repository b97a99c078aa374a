"""FailureThrottle: slows down failed token checks per remote address.

A burst of bad tokens from one address must not become a fast oracle: every
failure waits before it is answered, twice as long for each recent failure from
the same address, up to a cap. Good tokens are never delayed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000  # bounded memory under a spray from many addresses


class FailureThrottle:
    def __init__(self, base_seconds: float = 0.2, cap_seconds: float = 5.0) -> None:
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self._failures: dict[str, deque[float]] = {}

    def delay_for(self, address: str) -> float:
        """Record a failure from `address`; return how long to wait before answering."""
        now = time.monotonic()
        recent = self._failures.pop(address, None) or deque()
        while recent and now - recent[0] > WINDOW_SECONDS:
            recent.popleft()
        recent.append(now)
        self._failures[address] = recent  # re-inserted: dict order is least recent first
        if len(self._failures) > MAX_ADDRESSES:
            del self._failures[next(iter(self._failures))]
        # The exponent is bounded: 2 ** 1024 times a float overflows.
        doublings = min(len(recent) - 1, 32)
        return min(self.base_seconds * 2**doublings, self.cap_seconds)

    async def failed(self, address: str) -> None:
        await asyncio.sleep(self.delay_for(address))
