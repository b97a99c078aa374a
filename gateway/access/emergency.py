"""Emergency access (要點第五條, imminent danger to a person's life, body, freedom or
property): an allowed account opens a camera without a grant by stating the danger,
for at most `[governance] emergency_minutes`. Every use is reviewed afterwards.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .grants import PURPOSE_MAX, GrantInvalid, iso_z, stamp, text_field

DANGER_MAX = PURPOSE_MAX
NOTE_MAX = PURPOSE_MAX
Status = Literal["active", "ended"]


@dataclass(frozen=True)
class Emergency:
    id: int
    account: str
    camera_id: str
    danger: str  # the danger, in the account's own words
    starts_at: datetime
    ends_at: datetime
    remote: str = ""
    ended_at: datetime | None = None  # ended early (by a liaison or an administrator)
    ended_by: str | None = None
    end_reason: str | None = None
    justified: bool | None = None  # the review: None until reviewed
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_note: str | None = None

    def status(self, now: datetime) -> Status:
        return "ended" if self.ended_at is not None or now >= self.ends_at else "active"

    def until(self) -> datetime:
        """When it ended or will end."""
        return self.ended_at if self.ended_at is not None else self.ends_at

    @property
    def reviewed(self) -> bool:
        return self.justified is not None

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "camera_id": self.camera_id,
            "danger": self.danger,
            "starts_at": iso_z(self.starts_at),
            "ends_at": iso_z(self.ends_at),
            "remote": self.remote,
            "ended_at": iso_z(self.ended_at) if self.ended_at else None,
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
            "justified": self.justified,
            "reviewed_by": self.reviewed_by,
            "reviewed_at": iso_z(self.reviewed_at) if self.reviewed_at else None,
            "review_note": self.review_note,
            "status": self.status(now),
        }

    def content_hash(self) -> str:
        """As Grant.content_hash: audited changes record it, `gateway audit verify`
        compares it with the row."""
        content = {
            **self.to_json(self.starts_at),
            "starts_at": stamp(self.starts_at),
            "ends_at": stamp(self.ends_at),
            "ended_at": stamp(self.ended_at) if self.ended_at else None,
            "reviewed_at": stamp(self.reviewed_at) if self.reviewed_at else None,
        }
        del content["status"]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def danger_of(value: object) -> str:
    return text_field("danger", value, DANGER_MAX)


def minutes_of(value: object, most: int) -> int:
    if value is None:
        return most
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise GrantInvalid("minutes", f"emergency access lasts 1 to {most} minutes")
    return value


def review_of(justified: object, note: object) -> tuple[bool, str]:
    if not isinstance(justified, bool):
        raise GrantInvalid("justified", "must be true or false")
    return justified, text_field("note", note, NOTE_MAX)
