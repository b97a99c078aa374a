"""Refusals: what a caller is told when the gateway says no, and the audit row of it.

A refusal carries a stable code (http/errors.py gives each its status; players and
pages match codes, never words) and words that are safe to show: never a camera
URL, a credential, or why a token was bad. Every refusal after sign-in is written
down, in one place (`Refusals.refuse`), with one shape of audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.access.grants import GrantInvalid, RuleBroken
from gateway.signaling import TooManySessions
from gateway.store import Store, StoreUnavailable, WritePending
from gateway.store import audit as events
from gateway.store.authorizations import AuthorizationNotFound
from gateway.store.emergencies import EmergencyNotFound
from gateway.store.grants import GrantNotFound
from gateway.store.masks import LiftNotFound

from .events import TooManyStreams
from .tickets import TooManyTickets

RETRY_SECONDS = 5  # Retry-After when the database cannot answer
TOO_MANY_RETRY_SECONDS = 10


class Denied(Exception):
    """A refusal: a stable code, words that are safe to show, `retry_after` when trying
    again later may work, and any fields the answer carries besides (e.g. `field`)."""

    def __init__(
        self, code: str, message: str, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.extra = extra


class RecordPending(Exception):
    """Access has ended; the record of it waits for the database and will be written."""


def undecidable() -> Denied:
    return Denied(
        "database_unavailable",
        "access cannot be decided right now (the grants cannot be read); try again shortly",
        RETRY_SECONDS,
    )


def audit_unavailable() -> Denied:
    """Nobody is admitted whose access cannot be written down now."""
    return Denied(
        "audit_unavailable",
        "access cannot be recorded right now, so it is refused; try again shortly",
        RETRY_SECONDS,
    )


def as_refusal(exc: BaseException) -> Denied | None:
    """What a caller is told of an exception from below, or None if it is not a
    refusal but a fault."""
    if isinstance(exc, Denied):
        return exc
    if isinstance(exc, TooManySessions | TooManyTickets | TooManyStreams):
        return Denied("too_many", str(exc), TOO_MANY_RETRY_SECONDS)
    if isinstance(exc, RecordPending):
        # Access has already ended; only its record waits (never a 500).
        return Denied(
            "record_pending",
            "access has ended; the record of it cannot be written yet and will be "
            "written when the database recovers",
            RETRY_SECONDS,
        )
    if isinstance(exc, WritePending):
        return audit_unavailable()
    if isinstance(exc, StoreUnavailable):
        return Denied(
            "database_unavailable",
            "the database cannot answer right now; nothing was changed, try again shortly",
            RETRY_SECONDS,
        )
    if isinstance(exc, RuleBroken):
        # A rule of the chain of consent: its own code, and the field it concerns.
        return Denied(exc.code, str(exc), field=exc.field)
    if isinstance(exc, GrantInvalid):
        # `fields`: every field found wrong (field -> message), for forms to mark at once.
        return Denied("invalid_field", str(exc), field=exc.field, fields=exc.problems)
    if isinstance(exc, GrantNotFound):
        return Denied("unknown_grant", "no such grant")
    if isinstance(exc, AuthorizationNotFound):
        return Denied("unknown_authorization", "no such police authorization")
    if isinstance(exc, EmergencyNotFound):
        return Denied("unknown_emergency", "no such emergency access")
    if isinstance(exc, LiftNotFound):
        return Denied("unknown_lift", "no such mask lift")
    return None


class Refusals:
    """Builds each refusal after sign-in together with its audit row."""

    def __init__(self, store: Store, on_denied: Callable[[str], None]) -> None:
        self.store = store
        # A metric by rule (cctv_access_denials_total), for the refusals of access
        # rules: a bounded set of labels, never an offer's own words.
        self.on_denied = on_denied

    def refuse(
        self,
        account: str,
        remote: str,
        code: str,
        reason: str,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        counted: bool = False,
        **detail: Any,
    ) -> Denied:
        """The refusal to raise: `reason` goes to the audit row (and, if `counted`, is
        the metric's label), `message` (else `reason`) to the caller."""
        if counted:
            self.on_denied(reason)
        self.store.record(
            events.ACCESS_DENIED, account=account, remote=remote, reason=reason, code=code, **detail
        )
        return Denied(code, message or reason, retry_after)
