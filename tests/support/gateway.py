"""An in-process gateway for tests: settings, tokens, grants and its viewers."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aioice.ice
from aiohttp.test_utils import TestServer

from gateway.access.authorizations import LEGAL_DUTY, Authorization, AuthorizationFields
from gateway.access.grants import Grant
from gateway.access.tokens import mint
from gateway.app import HUBS, SETTINGS, STORE
from gateway.config import AuthSettings, Settings, parse_settings
from gateway.store.audit import AUTHORIZATION_RECORDED, GRANT_CREATED, AuditLog
from gateway.store.grants import GrantStore

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
# The police authorization the tests' grants run under (a standing one: every
# camera, for months around now), and the liaison who recorded it.
REFERENCE = "北市警資字第1130000001號"
LIAISON = "liaison-1"
# For tests of something else that make grants through the admin API and use them at
# once: one person alone (a small deployment). Approvals: tests/test_consent.py.
ONE_PERSON = {"approval": "none"}
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
    governance: dict[str, Any] | None = None,
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
    if governance:
        data["governance"] = governance
    return parse_settings(data)


def authorize(
    grants: GrantStore,
    cameras: Any = None,
    *,
    reference: str = REFERENCE,
    around: datetime | None = None,
    days: float = 100,
    audit: AuditLog | None = None,
) -> Authorization:
    """A confirmed police authorization written straight to the store (as an operator
    holding the police's document would), audited when `audit` is given; one with
    this reference already there is reused."""
    for found in grants.authorizations.by_reference(reference):
        if found.state == "confirmed":
            return found
    now = around or grants.clock()
    made = grants.authorizations.create(
        AuthorizationFields(
            reference=reference,
            cameras=frozenset(cameras if cameras is not None else grants.camera_ids),
            districts=frozenset(),
            starts_at=now - timedelta(days=days),
            ends_at=now + timedelta(days=days),
            purpose_class=LEGAL_DUTY,
            note="test",
            on_behalf_of=None,
        ),
        by=LIAISON,
        confirmed=True,
    )
    if audit is not None:
        audit.record(
            AUTHORIZATION_RECORDED,
            account=LIAISON,
            authorization_id=made.id,
            authorization_hash=made.content_hash(),
        )
    return made


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
        """A grant written straight to the store and audited, as the admin API would,
        already approved (as an operator's migration would write it), under the
        standing police authorization."""
        now = datetime.now(UTC)
        store = self.app[STORE]
        authorization = self.authorization()
        grant = store.grants.create(
            project=project,
            purpose="test",
            authorization_id=authorization.id,
            members=members or [VIEWER],
            cameras=cameras or [h.id for h in self.app[HUBS]],
            starts_at=now + timedelta(seconds=starts_in),
            ends_at=now + timedelta(seconds=starts_in + lasts),
            created_by="admin-1",
        )
        audit_grant(self.app[STORE].audit, GRANT_CREATED, grant)
        return grant

    def authorization(self, reference: str = REFERENCE, **options: Any) -> Authorization:
        """The standing police authorization (every camera), recorded and audited once."""
        store = self.app[STORE]
        return authorize(store.grants, reference=reference, audit=store.audit, **options)

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
