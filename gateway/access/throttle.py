"""FailureThrottle: slows down failed token checks per source.

A burst of bad tokens must not become a fast oracle. Every failure waits before it
is answered, twice as long for each recent failure from the same source, up to a
cap. A source is the client's address, and the account the token claims (read
without trusting it), so that neither many addresses guessing one account nor one
address guessing many gains anything. Failures from one source are answered one
after another: parallel guesses queue behind each other (a red-team run of 120
parallel guessers made 24 guesses a second when each only waited its own turn).
Good tokens are never delayed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

WINDOW_SECONDS = 60.0
MAX_SOURCES = 10_000  # bounded memory under a spray from many addresses


class _Source:
    __slots__ = ("answered_until", "recent")

    def __init__(self) -> None:
        self.recent: deque[float] = deque()  # this source's failures in the window
        self.answered_until = 0.0  # when its failures queued so far are answered


class FailureThrottle:
    def __init__(self, base_seconds: float = 0.2, cap_seconds: float = 5.0) -> None:
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self._sources: dict[str, _Source] = {}

    def delay_for(self, *sources: str) -> float:
        """Record a failure from each source; how long to wait before answering it:
        after the failures queued before it from the same sources, plus its own step."""
        now = time.monotonic()
        wait = 0.0
        for name in sources:
            source = self._sources.pop(name, None) or _Source()
            recent = source.recent
            while recent and now - recent[0] > WINDOW_SECONDS:
                recent.popleft()
            recent.append(now)
            # The exponent is bounded: 2 ** 1024 times a float overflows.
            step = min(self.base_seconds * 2 ** min(len(recent) - 1, 32), self.cap_seconds)
            queued = max(0.0, source.answered_until - now)  # behind the ones before it
            source.answered_until = now + queued + step
            wait = max(wait, queued + step)
            self._sources[name] = source  # re-inserted: dict order is least recent first
            if len(self._sources) > MAX_SOURCES:
                del self._sources[next(iter(self._sources))]
        return wait

    async def failed(self, address: str, account: str | None = None) -> None:
        sources = [f"address {address}"] + ([f"account {account}"] if account else [])
        await asyncio.sleep(self.delay_for(*sources))
