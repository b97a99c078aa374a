"""AccessControl: the one entry point that decides who may do what, and writes it down.

It takes plain data (a token, an address, a camera id), never an HTTP request, and
answers with an Identity, a Viewer, or a Denied that carries a stable code. When
the grants cannot be read it refuses (fails closed); it never waits on the
database for long.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.access import decision
from gateway.access.decision import Refusal, Viewer
from gateway.access.emergency import Emergency
from gateway.access.roles import words
from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import Identity, TokenRejected, TokenVerifier
from gateway.store import StoreUnavailable

from .known_grants import KnownGrants
from .refusals import Denied, Refusals, audit_unavailable, undecidable
from .sign_ins import FailedSignIns

INVALID_TOKEN = "missing or invalid token"
NOT_ADMIN = "not_admin"
NOT_OWNER = "not_owner"
ROLE_REQUIRED = "role_required"
EMERGENCY_ENDED = "emergency_ended"

# How a refused offer reads, by rule (also the label of cctv_access_denials_total).
REFUSAL_WORDS = {
    decision.NO_GRANT: "no grant",
    decision.NOT_YET_STARTED: "not yet started",
    decision.GRANT_PENDING: "waits for approval",
    decision.AUTHORIZATION_WITHDRAWN: "authorization withdrawn",
    decision.GRANT_ENDED: "ended",
    decision.GRANT_REVOKED: "revoked",
    decision.REMOVED_FROM_GRANT: "no grant",
    decision.CAMERA_REMOVED_FROM_GRANT: "no grant",
}
# The rules a viewer is told by name; the others read as "no grant".
REFUSAL_CODES = {
    decision.NO_GRANT,
    decision.NOT_YET_STARTED,
    decision.GRANT_PENDING,
    decision.AUTHORIZATION_WITHDRAWN,
    decision.GRANT_ENDED,
    decision.GRANT_REVOKED,
}


class AccessControl:
    def __init__(
        self,
        verifier: TokenVerifier,
        grants: KnownGrants,
        refusals: Refusals,
        throttle: FailureThrottle,
    ) -> None:
        self.verifier = verifier
        self.grants = grants
        self.refusals = refusals
        self.throttle = throttle
        self.failed_sign_ins = FailedSignIns(refusals.store)

    async def identify(self, token: str, remote: str) -> Identity:
        """The caller's identity from its bearer token, else Denied("invalid_token")."""
        try:
            return await self.verifier.averify(token)
        except TokenRejected as exc:
            # The reason is for the audit trail; the caller learns nothing from it.
            self.refusals.on_denied("invalid token")
            self.failed_sign_ins.note(remote, str(exc))
            await self.throttle.failed(remote, self.verifier.claimed_account(token))
            raise Denied("invalid_token", INVALID_TOKEN) from None

    async def admin(self, token: str, remote: str, path: str) -> Identity:
        """An administrator's identity, else Denied (invalid_token, not_admin)."""
        identity = await self.identify(token, remote)
        if not identity.is_admin:
            raise self.refusals.refuse(
                identity.account,
                remote,
                NOT_ADMIN,
                "not an administrator",
                "this needs an administrator account",
                counted=True,
                path=path,
            )
        return identity

    async def role(
        self, token: str, remote: str, path: str, *roles: str, code: str = ROLE_REQUIRED
    ) -> Identity:
        """The caller's identity if it has one of `roles` (access/roles.py), else
        Denied (invalid_token, `code`)."""
        identity = await self.identify(token, remote)
        if not identity.has(*roles):
            raise self.refusals.refuse(
                identity.account,
                remote,
                code,
                "wrong role",
                f"this needs {words(roles)} account",
                counted=True,
                path=path,
            )
        return identity

    async def authorize_view(self, identity: Identity, camera_id: str, remote: str) -> Viewer:
        """The grant that lets this caller watch `camera_id` now, or the emergency
        access it opened for it, else Denied."""
        if self.refusals.store.refusing:
            raise audit_unavailable()
        account = identity.account
        try:
            found = await self.grants.naming(account, camera_id)
            urgent = await self._emergencies(identity, camera_id)
        except StoreUnavailable:
            raise undecidable() from None
        try:
            grant = decision.decide(found, account, camera_id, self.grants.now())
        except Refusal as refusal:
            now = self.grants.now()
            ended = self.grants.overlay.ended_emergencies
            active = [e for e in urgent if e.status(now) == "active" and e.id not in ended]
            if active:
                emergency = max(active, key=lambda e: e.ends_at)
                return Viewer(account, ends_at=emergency.ends_at, emergency_id=emergency.id)
            if urgent and refusal.code == decision.NO_GRANT:
                # Its emergency access for this camera is over (past its minutes, or
                # ended by a liaison): say so, rather than "no grant".
                raise self.refusals.refuse(
                    account,
                    remote,
                    EMERGENCY_ENDED,
                    "emergency access ended",
                    "the emergency access to this camera has ended",
                    camera_id=camera_id,
                    emergency_id=urgent[0].id,
                ) from None
            words = REFUSAL_WORDS[refusal.code]
            raise self.refusals.refuse(
                account,
                remote,
                _code(refusal.code),
                words,
                _message(refusal.code),
                counted=True,
                camera_id=camera_id,
                grant_id=refusal.grant.id if refusal.grant else None,
                project=refusal.grant.project if refusal.grant else None,
            ) from None
        return Viewer.under(account, grant)

    async def _emergencies(self, identity: Identity, camera_id: str) -> list[Emergency]:
        """The caller's latest emergency accesses of `camera_id`, newest first (none
        unless it may use them: the same token checks as any viewer, and a role)."""
        if not identity.may_use_emergency:
            return []
        return await self.grants.store.read(
            lambda grants, _: grants.emergencies.latest(identity.account, camera_id)
        )

    def signed_in_until(self, identity: Identity) -> datetime:
        """Until when a session this sign-in opens may last, unless renewed."""
        return identity.expires_at + timedelta(seconds=self.verifier.leeway_seconds)

    async def still_allowed(self, viewer: Viewer, camera_id: str) -> None:
        """Ask again for the grant a viewer was admitted under (just before its session
        goes live); Denied if it no longer allows it or cannot be read."""
        grant = None
        if viewer.emergency_id is not None:
            if viewer.emergency_id in self.grants.overlay.ended_emergencies:
                raise Denied(EMERGENCY_ENDED, "the emergency access has ended")
            return
        if viewer.grant_id is not None:
            try:
                grant = await self.grants.find(viewer.grant_id)
            except StoreUnavailable:
                raise undecidable() from None
        rule = decision.check(grant, viewer.account, camera_id, self.grants.now())
        if rule is not None:
            raise Denied(_code(rule), _message(rule))

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
            raise self.refusals.refuse(
                identity.account,
                remote,
                NOT_OWNER,
                "not the owner",
                "this session belongs to another account",
                counted=True,
                camera_id=camera_id,
                session_id=session_id,
            )
        return identity


def _code(rule: str) -> str:
    """The code a viewer is told for a rule of access/decision."""
    return rule if rule in REFUSAL_CODES else decision.NO_GRANT


def _message(rule: str) -> str:
    return f"no active grant for this camera: {REFUSAL_WORDS[rule]}"
