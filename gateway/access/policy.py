"""The access decision: given a request and a camera, who is watching, or why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web


@dataclass(frozen=True)
class Viewer:
    account: str


class AccessDenied(Exception):
    """Refusal with an HTTP status and a reason that is safe to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class AccessPolicy(Protocol):
    async def authorize_view(self, request: web.Request, camera_id: str) -> Viewer: ...


class AllowAll:
    """Everyone may watch every camera (until grants exist)."""

    async def authorize_view(self, request: web.Request, camera_id: str) -> Viewer:
        return Viewer(account="anonymous")
