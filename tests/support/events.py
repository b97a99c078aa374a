"""An event-stream (SSE) client, as a browser's EventSource would be."""

from __future__ import annotations

import asyncio
import json
import time

from .gateway import VIEWER


class EventReader:
    """An SSE client, as a browser's EventSource would be (ticket in the URL)."""

    def __init__(self, gateway, account: str = VIEWER, admin: bool = False) -> None:
        self.gateway, self.account, self.admin = gateway, account, admin
        self.events: list[dict] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> EventReader:
        response = await self.gateway.http.post(
            f"{self.gateway.url}/api/events/ticket",
            headers=self.gateway.bearer(self.account, admin=self.admin),
        )
        ticket = (await response.json())["ticket"]
        self._response = await self.gateway.http.get(
            f"{self.gateway.url}/api/events?ticket={ticket}"
        )
        assert self._response.status == 200
        self._task = asyncio.ensure_future(self._read())
        await self.wait_for("hello")
        return self

    async def _read(self) -> None:
        async for line in self._response.content:
            if line.startswith(b"data: "):
                self.events.append(json.loads(line[6:]))

    async def wait_for(self, kind: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event["type"] == kind:
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind} event; got {[e['type'] for e in self.events]}")

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        self._response.close()
