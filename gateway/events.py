"""EventBus: live notices to viewers and to the admin console (served as SSE).

A viewer hears about its own sessions and grants: a session revoked and why, a
grant's end (for the countdown), a new grant. Administrators hear everything.
Each subscriber has a bounded queue; one that stops reading is dropped rather
than letting notices pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web

QUEUE_LIMIT = 256
HEARTBEAT_SECONDS = 15.0


class Subscription:
    def __init__(self, account: str, admin: bool) -> None:
        self.account = account
        self.admin = admin
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)

    def offer(self, event: dict[str, Any]) -> bool:
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            return False


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self, account: str, admin: bool) -> Subscription:
        subscription = Subscription(account, admin)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, kind: str, data: dict[str, Any], accounts: Iterable[str] = ()) -> None:
        """Send to administrators and to the named accounts."""
        to = set(accounts)
        event = {"type": kind, **data}
        for subscription in list(self._subscribers):
            if (subscription.admin or subscription.account in to) and not subscription.offer(event):
                self.unsubscribe(subscription)  # a reader that stopped reading
                with contextlib.suppress(asyncio.QueueFull):
                    subscription.queue.put_nowait(None)

    def close(self) -> None:
        for subscription in list(self._subscribers):
            self.unsubscribe(subscription)
            with contextlib.suppress(asyncio.QueueFull):
                subscription.queue.put_nowait(None)


async def stream(
    request: web.Request, subscription: Subscription, first: Iterable[dict[str, Any]] = ()
) -> web.StreamResponse:
    """Serve a subscription as text/event-stream until either side ends it."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    try:
        for event in first:
            await response.write(_encode(event))
        async for event in _events(subscription):
            await response.write(_encode(event) if event else b": keep-alive\n\n")
    except ConnectionResetError:
        pass
    return response


async def _events(subscription: Subscription) -> AsyncIterator[dict[str, Any] | None]:
    while True:
        try:
            event = await asyncio.wait_for(subscription.queue.get(), HEARTBEAT_SECONDS)
        except TimeoutError:
            yield None
            continue
        if event is None:
            return
        yield event


def _encode(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, default=str)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
