"""AccessControl: the one entry point that decides who may do what, and writes it down.

Every handler calls it; none has access logic of its own. It takes plain data
(a token, an address, a camera id), never an HTTP request, and answers with an
Identity, a Viewer, or a Denied that carries a stable code. When the grants
cannot be read it refuses (fails closed); it never waits on the database for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.access import decision
from gateway.access.decision import Refusal, Viewer
from gateway.access.grants import Grant
from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import Identity, TokenRejected, TokenVerifier
from gateway.store import Store, StoreUnavailable
from gateway.store import audit as events

from .overlay import GrantOverlay

INVALID_TOKEN = "missing or invalid token"
NOT_ADMIN = "not_admin"
RETRY_SECONDS = 5  # Retry-After when the database cannot answer
NOT_OWNER = "not_owner"

# How a refused offer reads, by rule (also the label of cctv_access_denials_total).
REFUSAL_WORDS = {
    decision.NO_GRANT: "no grant",
    decision.NOT_YET_STARTED: "not yet started",
    decision.GRANT_ENDED: "ended",
    decision.GRANT_REVOKED: "revoked",
    decision.REMOVED_FROM_GRANT: "no grant",
    decision.CAMERA_REMOVED_FROM_GRANT: "no grant",
}


class Denied(Exception):
    """A refusal: a stable code (see gateway/http/errors.py for its status) and words
    that are safe to show; `retry_after` when trying again later may work."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


def undecidable() -> Denied:
    return Denied(
        "database_unavailable",
        "access cannot be decided right now (the grants cannot be read); try again shortly",
        RETRY_SECONDS,
    )


class AccessControl:
    def __init__(
        self,
        verifier: TokenVerifier,
        store: Store,
        overlay: GrantOverlay,
        throttle: FailureThrottle,
        on_denied: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.verifier = verifier
        self.store = store
        self.overlay = overlay
        self.throttle = throttle
        self.on_denied = on_denied  # e.g. a metric by reason
        self.failed_sign_ins = FailedSignIns(store)

    async def identify(self, token: str, remote: str) -> Identity:
        """The caller's identity from its bearer token, else Denied("invalid_token")."""
        try:
            return await self.verifier.averify(token)
        except TokenRejected as exc:
            # The reason is for the audit trail; the caller learns nothing from it.
            self.on_denied("invalid token")
            self.failed_sign_ins.note(remote, str(exc))
            await self.throttle.failed(remote)
            raise Denied("invalid_token", INVALID_TOKEN) from None

    def require_admin(self, identity: Identity, remote: str, path: str) -> None:
        if not identity.is_admin:
            self.on_denied("not an administrator")
            self.store.record(
                events.ACCESS_DENIED,
                account=identity.account,
                remote=remote,
                reason="not an administrator",
                path=path,
            )
            raise Denied(NOT_ADMIN, "this needs an administrator account")

    async def authorize_view(self, identity: Identity, camera_id: str, remote: str) -> Viewer:
        """The grant that lets this caller watch `camera_id` now, else Denied."""
        if self.store.refusing:
            raise Denied(
                "audit_unavailable",
                "access cannot be recorded right now, so viewing is refused",
                RETRY_SECONDS,
            )
        account = identity.account
        try:
            found = await self.store.read(lambda grants, _: grants.naming(account, camera_id))
        except StoreUnavailable:
            raise undecidable() from None
        try:
            now = self.store.clock()
            grant = decision.decide(self.overlay.apply(found, now), account, camera_id, now)
        except Refusal as refusal:
            words = REFUSAL_WORDS[refusal.code]
            self.on_denied(words)
            self.store.record(
                events.ACCESS_DENIED,
                account=account,
                camera_id=camera_id,
                grant_id=refusal.grant.id if refusal.grant else None,
                project=refusal.grant.project if refusal.grant else None,
                remote=remote,
                reason=words,
            )
            raise _refused(refusal.code) from None
        return Viewer.under(account, grant)

    def record_refusal(
        self, identity: Identity, remote: str, code: str, reason: str, **detail: object
    ) -> None:
        """A refusal after sign-in (unknown camera, a bad offer, no room, another
        account's session) is accountable too."""
        self.store.record(
            events.ACCESS_DENIED,
            account=identity.account,
            remote=remote,
            reason=reason,
            code=code,
            **detail,
        )

    def signed_in_until(self, identity: Identity) -> datetime:
        """Until when a session this sign-in opens may last, unless renewed."""
        return identity.expires_at + timedelta(seconds=self.verifier.leeway_seconds)

    async def still_allowed(self, viewer: Viewer, camera_id: str) -> None:
        """Ask again for the grant a viewer was admitted under (just before its session
        goes live); Denied if it no longer allows it or cannot be read."""
        grant: Grant | None = self.overlay.get(viewer.grant_id)
        if grant is None and viewer.grant_id is not None:
            grant_id = viewer.grant_id
            try:
                grant = await self.store.read(lambda grants, _: grants.find(grant_id))
            except StoreUnavailable:
                raise undecidable() from None
        now = self.store.clock()
        if grant is not None:
            (grant,) = self.overlay.apply([grant], now)
        rule = decision.check(grant, viewer.account, camera_id, now)
        if rule is not None:
            raise _refused(rule)

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
            self.store.record(
                events.ACCESS_DENIED,
                account=identity.account,
                camera_id=camera_id,
                session_id=session_id,
                remote=remote,
                reason="not the owner",
            )
            raise Denied(NOT_OWNER, "this session belongs to another account")
        return identity


REFUSAL_CODES = {
    decision.NO_GRANT,
    decision.NOT_YET_STARTED,
    decision.GRANT_ENDED,
    decision.GRANT_REVOKED,
}


class FailedSignIns:
    """Failed token checks in the audit log: the first from an address in a minute at
    once, the rest of that minute as one row with a count, so a flood of bad tokens
    cannot grow the database quickly."""

    # Addresses that get rows of their own each minute; past it, the rest share one,
    # so a flood from many addresses adds a few hundred rows a minute at most.
    MAX_ADDRESSES = 100
    FLUSH_SECONDS = 5.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self._minutes: dict[tuple[str, int], Counter[str]] = {}
        self._flushing: asyncio.Task[None] | None = None

    def note(self, remote: str, reason: str) -> None:
        minute = int(time.time() // 60)
        key = (remote, minute)
        if key not in self._minutes:
            if len(self._minutes) >= self.MAX_ADDRESSES:
                key = ("(other addresses)", minute)
            else:
                self._minutes[key] = Counter()
                self.store.record(events.TOKEN_REJECTED, remote=remote, reason=reason, count=1)
                return
        self._minutes.setdefault(key, Counter())[reason] += 1
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        while self._minutes:
            await asyncio.sleep(self.FLUSH_SECONDS)
            self.flush(before=int(time.time() // 60))

    def flush(self, before: int | None = None) -> None:
        """Queue the rows of every minute before `before` (default: all of them)."""
        for key in [k for k in self._minutes if before is None or k[1] < before]:
            remote, minute = key
            reasons = self._minutes.pop(key)
            if not reasons:  # only the first failure, already written
                continue
            self.store.record(
                events.TOKEN_REJECTED,
                remote=remote,
                reason=reasons.most_common(1)[0][0],
                count=sum(reasons.values()),
                reasons=dict(reasons),
                minute=datetime.fromtimestamp(minute * 60, UTC).isoformat(),
            )

    async def close(self) -> None:
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        self.flush()


def _refused(rule: str) -> Denied:
    """The answer to a viewer whose grant does not allow it (a rule of access/decision)."""
    code = rule if rule in REFUSAL_CODES else decision.NO_GRANT
    return Denied(code, f"no active grant for this camera: {REFUSAL_WORDS[rule]}")
