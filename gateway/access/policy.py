"""AccessControl: the one place that decides who may watch, and writes it down.

Every handler calls it; none has access logic of its own. Given a request and a
camera it answers one question: which grant allows this viewer, and until when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from . import audit as events
from .audit import AuditLog
from .grants import GrantStore, Refusal
from .throttle import FailureThrottle
from .tokens import Identity, TokenRejected, TokenVerifier


@dataclass(frozen=True)
class Viewer:
    """Who watches, under which grant: what a session is bound to."""

    account: str
    grant_id: int | None = None
    project: str | None = None
    authorization_ref: str | None = None
    ends_at: datetime | None = None


class AccessDenied(Exception):
    """Refusal with an HTTP status and a reason that is safe to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


INVALID_TOKEN = "missing or invalid token"


def remote_of(request: web.Request) -> str:
    return request.remote or ""


class AccessControl:
    def __init__(
        self,
        verifier: TokenVerifier,
        grants: GrantStore,
        audit: AuditLog,
        throttle: FailureThrottle,
        on_denied: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.verifier = verifier
        self.grants = grants
        self.audit = audit
        self.throttle = throttle
        self.on_denied = on_denied  # e.g. a metric by reason

    async def identify(self, request: web.Request) -> Identity:
        """The caller's identity from its bearer token, else 401."""
        try:
            return await self.verifier.averify_header(request.headers.get("Authorization"))
        except TokenRejected as exc:
            # The reason is for the audit trail; the caller learns nothing from it.
            self.on_denied("invalid token")
            self.audit.record(events.TOKEN_REJECTED, remote=remote_of(request), reason=str(exc))
            await self.throttle.failed(remote_of(request))
            raise AccessDenied(401, INVALID_TOKEN) from None

    async def require_admin(self, request: web.Request) -> Identity:
        identity = await self.identify(request)
        if not identity.is_admin:
            self.on_denied("not an administrator")
            self.audit.record(
                events.ACCESS_DENIED,
                account=identity.account,
                remote=remote_of(request),
                reason="not an administrator",
                path=request.path,
            )
            raise AccessDenied(403, "this needs an administrator account")
        return identity

    def authorize_view(self, request: web.Request, identity: Identity, camera_id: str) -> Viewer:
        """The grant that lets this caller watch `camera_id` now, else 403."""
        try:
            grant = self.grants.decide(identity.account, camera_id)
        except Refusal as refusal:
            self.on_denied(refusal.reason)
            self.audit.record(
                events.ACCESS_DENIED,
                account=identity.account,
                camera_id=camera_id,
                grant_id=refusal.grant.id if refusal.grant else None,
                project=refusal.grant.project if refusal.grant else None,
                remote=remote_of(request),
                reason=refusal.reason,
            )
            raise AccessDenied(403, f"no active grant for this camera: {refusal.reason}") from None
        return Viewer(
            account=identity.account,
            grant_id=grant.id,
            project=grant.project,
            authorization_ref=grant.authorization_ref,
            ends_at=grant.ends_at,
        )
