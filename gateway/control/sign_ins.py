"""FailedSignIns: failed token checks in the audit log, aggregated so that a flood of
bad tokens cannot grow the database quickly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime

from gateway.store import Store
from gateway.store import audit as events


class FailedSignIns:
    """Failed token checks in the audit log: the first from an address in a minute at
    once, the rest of that minute as one row with a count, so a flood of bad tokens
    cannot grow the database quickly."""

    # Addresses that get rows of their own each minute; past it, the rest share one,
    # so a flood from many addresses adds a few hundred rows a minute at most.
    MAX_ADDRESSES = 100
    FLUSH_SECONDS = 5.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self._minutes: dict[tuple[str, int], Counter[str]] = {}
        self._flushing: asyncio.Task[None] | None = None

    def note(self, remote: str, reason: str) -> None:
        minute = int(time.time() // 60)
        key = (remote, minute)
        if key not in self._minutes:
            if len(self._minutes) >= self.MAX_ADDRESSES:
                key = ("(other addresses)", minute)
            else:
                self._minutes[key] = Counter()
                self.store.record(events.TOKEN_REJECTED, remote=remote, reason=reason, count=1)
                return
        self._minutes.setdefault(key, Counter())[reason] += 1
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        while self._minutes:
            await asyncio.sleep(self.FLUSH_SECONDS)
            self.flush(before=int(time.time() // 60))

    def flush(self, before: int | None = None) -> None:
        """Queue the rows of every minute before `before` (default: all of them)."""
        for key in [k for k in self._minutes if before is None or k[1] < before]:
            remote, minute = key
            reasons = self._minutes.pop(key)
            if not reasons:  # only the first failure, already written
                continue
            self.store.record(
                events.TOKEN_REJECTED,
                remote=remote,
                reason=reasons.most_common(1)[0][0],
                count=sum(reasons.values()),
                reasons=dict(reasons),
                minute=datetime.fromtimestamp(minute * 60, UTC).isoformat(),
            )

    async def close(self) -> None:
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        self.flush()
