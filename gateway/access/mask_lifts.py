"""A lift of a camera's privacy masks for one grant, and the rules it follows.

Asked for with a reason, it waits for a second person under the same rule as a
grant's approval (`[governance] approval`; the one who asked never approves), then
lasts `[governance] mask_lift_minutes` and ends by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .grants import NOTHING_PENDING, SELF_APPROVAL, Grant, RuleBroken, iso_z

State = Literal["requested", "approved", "declined"]
# "waiting": for a second person; "lifted": in force now; "ended": its time ran out.
Status = Literal["waiting", "lifted", "ended", "declined"]
NOT_IN_GRANT = "camera_not_in_grant"
GRANT_NOT_LIVE = "grant_not_live"


@dataclass(frozen=True)
class MaskLift:
    id: int
    grant_id: int
    camera_id: str
    reason: str
    seconds: int
    asked_by: str
    asked_at: datetime
    state: State
    decided_by: str | None = None
    decided_at: datetime | None = None
    decline_reason: str | None = None
    until: datetime | None = None  # approved: when the masks return
    ended_at: datetime | None = None  # its end, once recorded
    ended_by: str | None = None  # ended early: who, and why
    end_reason: str | None = None

    def status(self, now: datetime) -> Status:
        if self.state == "requested":
            return "waiting"
        if self.state == "declined":
            return "declined"
        assert self.until is not None
        return "ended" if self.ended_at is not None or now >= self.until else "lifted"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "grant_id": self.grant_id,
            "camera_id": self.camera_id,
            "reason": self.reason,
            "minutes": round(self.seconds / 60, 2),
            "asked_by": self.asked_by,
            "asked_at": iso_z(self.asked_at),
            "status": self.status(now),
            "decided_by": self.decided_by,
            "decided_at": iso_z(self.decided_at) if self.decided_at else None,
            "decline_reason": self.decline_reason,
            "until": iso_z(self.until) if self.until else None,
            "ended_at": iso_z(self.ended_at) if self.ended_at else None,
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
        }


def check_liftable(grant: Grant, camera_id: str, now: datetime) -> None:
    """A lift is for a camera of a grant that admits its members now (or will)."""
    if camera_id not in grant.cameras:
        raise RuleBroken(NOT_IN_GRANT, "camera_id", f"grant {grant.id} does not name this camera")
    if (status := grant.status(now)) not in ("active", "scheduled"):
        words = f"grant {grant.id} is {status}: nobody to lift the masks for"
        raise RuleBroken(GRANT_NOT_LIVE, "grant_id", words)


def check_endable(lift: MaskLift, now: datetime) -> None:
    if lift.status(now) != "lifted":
        raise RuleBroken(NOTHING_PENDING, "lift", "this lift is not in force")


def check_decider(lift: MaskLift, account: str, *, approving: bool) -> None:
    """Only a waiting lift is decided, and the one who asked never approves it."""
    if lift.state != "requested":
        raise RuleBroken(NOTHING_PENDING, "lift", "this lift waits for nobody's approval")
    if approving and account == lift.asked_by:
        raise RuleBroken(SELF_APPROVAL, "lift", "who asked for this lift cannot approve it")
