"""Server-Sent Events: an EventBus subscription served as text/event-stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.control.events import Subscription

HEARTBEAT_SECONDS = 15.0


async def stream(
    request: web.Request,
    subscription: Subscription,
    first: Iterable[dict[str, Any]] = (),
    until: datetime | None = None,
) -> web.StreamResponse:
    """Serve a subscription as text/event-stream until either side ends it, or
    `until` (the sign-in that opened it lapses: the page reopens with a new ticket)."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    seconds = None if until is None else max(0.0, (until - datetime.now(UTC)).total_seconds())
    try:
        async with asyncio.timeout(seconds):
            for event in first:
                await response.write(_encode(event))
            async for event in _events(subscription):
                await response.write(_encode(event) if event else b": keep-alive\n\n")
    except (ConnectionResetError, TimeoutError):
        pass
    return response


async def _events(subscription: Subscription) -> AsyncIterator[dict[str, Any] | None]:
    while True:
        try:
            # Not wait_for: in Python 3.11 it loses a cancellation (the handler's, at
            # shutdown) that comes as an event does, and the stream would go on.
            async with asyncio.timeout(HEARTBEAT_SECONDS):
                event = await subscription.queue.get()
        except TimeoutError:
            yield None
            continue
        if event is None:
            return
        yield event


def _encode(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, default=str)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
