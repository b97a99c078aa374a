"""The one rule: may this account watch this camera now, and under which grant.

Admission (a new offer) and enforcement (the sweep over live sessions) both ask
`check`, so they can never disagree about what a grant allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .grants import Grant

# The rule that failed, as a stable code (JSON errors, events, the player).
NO_GRANT = "no_grant"
NOT_YET_STARTED = "not_yet_started"
GRANT_PENDING = "grant_pending"  # waits for a second person's approval
AUTHORIZATION_WITHDRAWN = "authorization_withdrawn"  # the police withdrew their consent
GRANT_ENDED = "grant_ended"
GRANT_REVOKED = "grant_revoked"
REMOVED_FROM_GRANT = "removed_from_grant"
CAMERA_REMOVED_FROM_GRANT = "camera_removed_from_grant"


@dataclass(frozen=True)
class Viewer:
    """Who watches, under which grant: what a session is bound to."""

    account: str
    grant_id: int | None = None
    project: str | None = None
    authorization_ref: str | None = None
    ends_at: datetime | None = None
    authorization_id: int | None = None
    emergency_id: int | None = None  # admitted by emergency access, not a grant

    @classmethod
    def under(cls, account: str, grant: Grant) -> Viewer:
        return cls(
            account,
            grant.id,
            grant.project,
            grant.authorization_ref,
            grant.ends_at,
            grant.authorization_id,
        )


class Refusal(Exception):
    """Why an account may not open a camera now: a rule code, and the grant that came
    closest (if any)."""

    def __init__(self, code: str, grant: Grant | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.grant = grant


def check(grant: Grant | None, account: str, camera_id: str, now: datetime) -> str | None:
    """The rule `grant` fails for `account` watching `camera_id` at `now`, or None."""
    if grant is None:
        return NO_GRANT
    if grant.withdrawn:
        return AUTHORIZATION_WITHDRAWN
    status = grant.status(now)
    if status == "revoked":
        return GRANT_REVOKED
    if status == "pending":
        return GRANT_PENDING
    if status == "scheduled":
        return NOT_YET_STARTED
    if status == "ended":
        return GRANT_ENDED
    if account not in grant.members:
        return REMOVED_FROM_GRANT
    if camera_id not in grant.cameras:
        return CAMERA_REMOVED_FROM_GRANT
    return None


def decide(grants: Iterable[Grant], account: str, camera_id: str, now: datetime) -> Grant:
    """Of `grants`, the one that lets `account` watch `camera_id` now (the one ending
    last); else raise Refusal with the most useful rule."""
    failed: dict[str, list[Grant]] = {}
    allowed: list[Grant] = []
    for grant in grants:
        rule = check(grant, account, camera_id, now)
        if rule is None:
            allowed.append(grant)
        else:
            failed.setdefault(rule, []).append(grant)
    if allowed:
        return max(allowed, key=lambda g: (g.ends_at, g.id))
    # "Not yet started" first: it tells the viewer to come back, not that access is gone.
    if pending := failed.get(NOT_YET_STARTED):
        raise Refusal(NOT_YET_STARTED, min(pending, key=lambda g: (g.starts_at, -g.id)))
    if waiting := failed.get(GRANT_PENDING):
        raise Refusal(GRANT_PENDING, max(waiting, key=lambda g: g.id))
    if withdrawn := failed.get(AUTHORIZATION_WITHDRAWN):
        raise Refusal(AUTHORIZATION_WITHDRAWN, max(withdrawn, key=lambda g: g.id))
    if revoked := failed.get(GRANT_REVOKED):
        raise Refusal(GRANT_REVOKED, max(revoked, key=lambda g: (g.revoked_at, g.id)))
    if ended := failed.get(GRANT_ENDED):
        raise Refusal(GRANT_ENDED, max(ended, key=lambda g: (g.ends_at, g.id)))
    raise Refusal(NO_GRANT)
