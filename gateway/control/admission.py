"""AccessControl: the one entry point that decides who may do what, and writes it down.

Every handler calls it; none has access logic of its own. It takes plain data
(a token, an address, a camera id), never an HTTP request, and answers with an
Identity, a Viewer, or a Denied that carries a stable code.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.access import decision
from gateway.access.decision import Refusal, Viewer
from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import Identity, TokenRejected, TokenVerifier
from gateway.store import audit as events
from gateway.store.audit import AuditLog
from gateway.store.grants import GrantStore

INVALID_TOKEN = "missing or invalid token"
NOT_ADMIN = "not_admin"
NOT_OWNER = "not_owner"

# How a refused offer reads, by rule (also the label of cctv_access_denials_total).
REFUSAL_WORDS = {
    decision.NO_GRANT: "no grant",
    decision.NOT_YET_STARTED: "not yet started",
    decision.GRANT_ENDED: "ended",
    decision.GRANT_REVOKED: "revoked",
}


class Denied(Exception):
    """A refusal: a stable code (see gateway/http/errors.py for its status) and words
    that are safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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

    async def identify(self, token: str, remote: str) -> Identity:
        """The caller's identity from its bearer token, else Denied("invalid_token")."""
        try:
            return await self.verifier.averify(token)
        except TokenRejected as exc:
            # The reason is for the audit trail; the caller learns nothing from it.
            self.on_denied("invalid token")
            self.audit.record(events.TOKEN_REJECTED, remote=remote, reason=str(exc))
            await self.throttle.failed(remote)
            raise Denied("invalid_token", INVALID_TOKEN) from None

    def require_admin(self, identity: Identity, remote: str, path: str) -> None:
        if not identity.is_admin:
            self.on_denied("not an administrator")
            self.audit.record(
                events.ACCESS_DENIED,
                account=identity.account,
                remote=remote,
                reason="not an administrator",
                path=path,
            )
            raise Denied(NOT_ADMIN, "this needs an administrator account")

    def authorize_view(self, identity: Identity, camera_id: str, remote: str) -> Viewer:
        """The grant that lets this caller watch `camera_id` now, else Denied."""
        account = identity.account
        try:
            grant = decision.decide(
                self.grants.naming(account, camera_id), account, camera_id, self.grants.clock()
            )
        except Refusal as refusal:
            words = REFUSAL_WORDS[refusal.code]
            self.on_denied(words)
            self.audit.record(
                events.ACCESS_DENIED,
                account=account,
                camera_id=camera_id,
                grant_id=refusal.grant.id if refusal.grant else None,
                project=refusal.grant.project if refusal.grant else None,
                remote=remote,
                reason=words,
            )
            raise Denied(refusal.code, f"no active grant for this camera: {words}") from None
        return Viewer.under(account, grant)

    async def authorize_session_change(
        self, token: str, owner: str, remote: str, session_id: str, camera_id: str
    ) -> Identity | None:
        """Who changes (trickle PATCH) or ends (DELETE) a session through its URL.

        The unguessable session URL is the capability (WHEP players such as
        Medooze's send no token there): None means "the holder of the URL". A
        token, when sent, must be valid and be the owner's or an administrator's.
        """
        if not token:
            return None
        identity = await self.identify(token, remote)
        if identity.account != owner and not identity.is_admin:
            self.on_denied("not the owner")
            self.audit.record(
                events.ACCESS_DENIED,
                account=identity.account,
                camera_id=camera_id,
                session_id=session_id,
                remote=remote,
                reason="not the owner",
            )
            raise Denied(NOT_OWNER, "this session belongs to another account")
        return identity
