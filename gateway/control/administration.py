"""AccessAdmin: what administrators do to grants and sessions, each step written down.

Every change is audited before it is announced, and sessions it ends are ended
before the call returns, so the console shows the world as it now is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.access.grants import Grant
from gateway.access.tokens import Identity
from gateway.egress import Ending
from gateway.store import audit as events
from gateway.store.audit import AuditLog
from gateway.store.grants import GrantStore

from .enforcer import GrantEnforcer
from .events import EventBus
from .sessions import SessionRegistry


class AccessAdmin:
    def __init__(
        self,
        grants: GrantStore,
        audit: AuditLog,
        bus: EventBus,
        sessions: SessionRegistry,
        enforcer: GrantEnforcer,
    ) -> None:
        self.grants = grants
        self.audit = audit
        self.bus = bus
        self.sessions = sessions
        self.enforcer = enforcer

    def create_grant(self, admin: Identity, remote: str, fields: dict[str, Any]) -> Grant:
        grant = self.grants.create(created_by=admin.account, **fields)
        self._record(events.GRANT_CREATED, admin, remote, grant, **_summary(grant))
        self._announce("grant_created", grant, grant.members)
        return grant

    async def update_grant(
        self, admin: Identity, remote: str, grant_id: int, changes: dict[str, Any]
    ) -> Grant:
        before, after = self.grants.update(grant_id, by=admin.account, **changes)
        changed = {
            key: {"from": old, "to": new}
            for key, old, new in ((k, v, _summary(after)[k]) for k, v in _summary(before).items())
            if old != new
        }
        self._record(events.GRANT_UPDATED, admin, remote, after, changes=changed)
        self._announce("grant_updated", after, before.members | after.members)
        await self.enforcer.sweep()
        return after

    async def revoke_grant(self, admin: Identity, remote: str, grant_id: int, reason: str) -> Grant:
        grant = self.grants.revoke(grant_id, by=admin.account, reason=reason)
        self._record(events.GRANT_REVOKED, admin, remote, grant, reason=reason)
        self._announce("grant_revoked", grant, grant.members)
        await self.enforcer.sweep()
        return grant

    async def revoke_session(
        self, admin: Identity, remote: str, session_id: str, reason: str
    ) -> bool:
        session = self.sessions.get(session_id)
        if session is None:
            return False
        self.audit.record(
            events.SESSION_REVOKED,
            account=session.account,
            camera_id=session.camera_id,
            grant_id=session.viewer.grant_id,
            project=session.viewer.project,
            remote=remote,
            session_id=session.id,
            by=admin.account,
            reason=reason,
        )
        ending = Ending("revoked", f"revoked by an administrator: {reason}")
        return await self.sessions.end(session_id, ending)

    async def revoke_account(self, admin: Identity, remote: str, account: str, reason: str) -> int:
        ids = [s.id for s in self.sessions if s.account == account]
        ended = 0
        for session_id in ids:
            ended += await self.revoke_session(admin, remote, session_id, reason)
        return ended

    def _record(
        self, event: str, admin: Identity, remote: str, grant: Grant, **detail: Any
    ) -> None:
        self.audit.record(
            event,
            account=admin.account,
            grant_id=grant.id,
            project=grant.project,
            remote=remote,
            **detail,
        )

    def _announce(self, kind: str, grant: Grant, members: frozenset[str]) -> None:
        self.bus.publish(kind, {"grant": self.grants_json(grant)}, accounts=members)

    def grants_json(self, grant: Grant, now: datetime | None = None) -> dict[str, Any]:
        """A grant as the console shows it, with the cameras that left the inventory."""
        gone = grant.cameras - self.grants.camera_ids
        return {**grant.to_json(now or self.grants.clock()), "cameras_gone": sorted(gone)}


def _summary(grant: Grant) -> dict[str, Any]:
    """What a grant change is recorded as: who, which cameras, when, on what authority."""
    return {
        "members": sorted(grant.members),
        "cameras": sorted(grant.cameras),
        "starts_at": grant.starts_at.isoformat(),
        "ends_at": grant.ends_at.isoformat(),
        "purpose": grant.purpose,
        "authorization_ref": grant.authorization_ref,
    }
