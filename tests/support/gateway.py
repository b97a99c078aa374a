"""An in-process gateway for tests: settings, tokens, grants and its viewers."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aioice.ice
from aiohttp.test_utils import TestServer

from gateway.access.grants import Grant
from gateway.access.tokens import mint
from gateway.app import HUBS, SETTINGS, STORE
from gateway.config import AuthSettings, Settings, parse_settings
from gateway.store.audit import GRANT_CREATED, AuditLog

from .viewer import Viewer

SECRET = "test-secret-of-at-least-32-bytes-0123456789"
# The tests' viewers run on this host: its own addresses are where their candidates
# are (aioice leaves loopback out), so they are viewer networks here.
HOST_NETWORKS = [
    "127.0.0.0/8",
    "::1/128",
    *(f"{a}/32" for a in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)),
]
AUTH = {"secret": SECRET}
VIEWER = "viewer-1"
# `[webrtc] sender` of every test gateway; the `sender_mode` fixture runs a test
# module in both modes.
SENDER = "fast"


def settings_for(
    cameras: list[dict[str, Any]],
    *,
    database: str | None = None,
    limits: dict[str, Any] | None = None,
    tables: dict[str, Any] | None = None,
    webrtc: dict[str, Any] | None = None,
    cors: dict[str, Any] | None = None,
    **relay: Any,
) -> Settings:
    """Settings for a test gateway: quick linger and reconnects unless overridden.

    `tables` adds others, e.g. {"inventory": {...}, "police_api": {...}}.
    """
    relay = {
        "linger_seconds": 1.0,
        "start_timeout_seconds": 10.0,
        "reconnect_initial_seconds": 0.2,
        "reconnect_max_seconds": 1.0,
        **relay,
    }
    database = database or str(Path(tempfile.mkdtemp(prefix="gateway-test-")) / "gw.sqlite3")
    data = {
        "auth": AUTH,
        "storage": {"database": database},
        "relay": relay,
        "cameras": cameras,
        "webrtc": {"sender": SENDER, "viewer_networks": HOST_NETWORKS, **(webrtc or {})},
        "cors": cors or {},
        **(tables or {}),
    }
    if limits:
        data["limits"] = limits
    return parse_settings(data)


def audit_grant(audit: AuditLog, event: str, grant: Grant, account: str = "admin-1") -> None:
    """The audit row the admin API writes for a grant change (its content hash included)."""
    audit.record(
        event,
        account=account,
        grant_id=grant.id,
        project=grant.project,
        grant_hash=grant.content_hash(),
    )


def token(account: str = VIEWER, *, admin: bool = False, ttl: float = 3600, **claims: Any) -> str:
    return mint(AuthSettings(secret=SECRET), account, is_admin=admin, ttl_seconds=ttl, **claims)


def bearer(account: str = VIEWER, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(account, **kwargs)}"}


def camera_entry(camera_id: str, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": camera_id,
        "name": f"測試 {camera_id}",
        "lat": 25.04,
        "lon": 121.56,
        "source": source,
        **extra,
    }


class Gateway:
    def __init__(self, server: TestServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.app = server.app
        self.http = http
        self.url = str(server.make_url("")).rstrip("/")

    def grant(
        self,
        members: list[str] | None = None,
        cameras: list[str] | None = None,
        *,
        starts_in: float = -60,
        lasts: float = 3600,
        project: str = "2027 跨年 信義區",
    ) -> Grant:
        """A grant written straight to the store and audited, as the admin API would."""
        now = datetime.now(UTC)
        grant = self.app[STORE].grants.create(
            project=project,
            purpose="test",
            authorization_ref="北市警資字第1130000001號",
            members=members or [VIEWER],
            cameras=cameras or [h.id for h in self.app[HUBS]],
            starts_at=now + timedelta(seconds=starts_in),
            ends_at=now + timedelta(seconds=starts_in + lasts),
            created_by="admin-1",
        )
        audit_grant(self.app[STORE].audit, GRANT_CREATED, grant)
        return grant

    async def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit rows, once every queued row has been written (rows land in order,
        off the event loop)."""
        await self.app[STORE].flush(timeout=10)
        return self.app[STORE].audit.query(**filters)

    def bearer(self, account: str = VIEWER, *, admin: bool = False) -> dict[str, str]:
        """A token signed with this gateway's own secret."""
        jwt = mint(self.app[SETTINGS].auth, account, is_admin=admin)
        return {"Authorization": f"Bearer {jwt}"}

    def viewer(self, camera_id: str, account: str = VIEWER, **options: Any) -> Viewer:
        return Viewer(self.url, camera_id, headers=self.bearer(account), **options)
