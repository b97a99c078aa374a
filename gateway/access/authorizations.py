"""Police authorizations: the police department's consent as a record.

A police liaison records one (its reference, the consent document's number; its
scope, cameras or whole districts; its validity; its purpose class under 要點第五條;
a note), or an administrator enters it on a liaison's behalf, and it is
`unconfirmed` until a liaison confirms it. Every grant names one and stays inside
it (`outside`). A liaison may withdraw it: every grant under it ends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .grants import (
    ACCOUNT_MAX,
    AUTHORIZATION_REF_MAX,
    CAMERAS_MAX,
    PURPOSE_MAX,
    GrantInvalid,
    RuleBroken,
    _string_set,
    check_window,
    iso_z,
    moment,
    stamp,
    text_field,
)

# 要點第五條: live viewing only to perform a legal duty, or to avert an imminent danger
# to a person's life, body, freedom or property.
LEGAL_DUTY = "legal_duty"
IMMINENT_DANGER = "imminent_danger"
PURPOSE_CLASSES = (LEGAL_DUTY, IMMINENT_DANGER)
DISTRICTS_MAX = 100
# The longest validity a consent may be recorded with.
VALIDITY_DAYS_MAX = 366
MIGRATED_BY = "migration"  # entered_by of the authorizations made from old grants' references

State = Literal["unconfirmed", "confirmed", "withdrawn"]
Status = Literal["unconfirmed", "confirmed", "withdrawn", "expired"]

# Codes of a grant that does not stay inside its authorization (http/errors.py).
OUTSIDE = "outside_authorization"
EXPIRED = "authorization_expired"
WITHDRAWN = "authorization_withdrawn"


class OutsideAuthorization(RuleBroken):
    """A grant that does not fit its authorization: `code` says how, `field` where."""


@dataclass(frozen=True)
class Authorization:
    id: int
    reference: str
    cameras: frozenset[str]
    districts: frozenset[str]
    starts_at: datetime
    ends_at: datetime
    purpose_class: str | None  # None only for one made from an old grant's reference
    note: str
    entered_by: str
    entered_at: datetime
    state: State = "unconfirmed"
    on_behalf_of: str | None = None  # the liaison an administrator entered it for
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawn_at: datetime | None = None
    withdraw_reason: str | None = None

    def status(self, now: datetime) -> Status:
        if self.state == "withdrawn":
            return "withdrawn"
        if now >= self.ends_at:
            return "expired"
        return self.state

    @property
    def migrated(self) -> bool:
        return self.entered_by == MIGRATED_BY

    def covers(self, camera_id: str, district: str) -> bool:
        return camera_id in self.cameras or bool(district and district in self.districts)

    def outside(
        self,
        cameras: Iterable[str],
        starts_at: datetime,
        ends_at: datetime,
        districts: Mapping[str, str],
        now: datetime,
    ) -> OutsideAuthorization | None:
        """Why a grant with these cameras and window does not fit, or None."""
        status = self.status(now)
        if status == "withdrawn":
            return OutsideAuthorization(
                WITHDRAWN, "authorization_id", f"authorization {self.reference} was withdrawn"
            )
        if status == "expired":
            return OutsideAuthorization(
                EXPIRED, "authorization_id", f"authorization {self.reference} has expired"
            )
        if outside := sorted(c for c in cameras if not self.covers(c, districts.get(c, ""))):
            shown = ", ".join(outside[:5]) + (
                f" and {len(outside) - 5} more" if len(outside) > 5 else ""
            )
            return OutsideAuthorization(
                OUTSIDE, "cameras", f"outside authorization {self.reference}'s scope: {shown}"
            )
        if starts_at < self.starts_at:
            return OutsideAuthorization(
                OUTSIDE,
                "starts_at",
                f"before authorization {self.reference} starts ({iso_z(self.starts_at)})",
            )
        if ends_at > self.ends_at:
            return OutsideAuthorization(
                OUTSIDE,
                "ends_at",
                f"after authorization {self.reference} ends ({iso_z(self.ends_at)})",
            )
        return None

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "cameras": sorted(self.cameras),
            "districts": sorted(self.districts),
            "starts_at": iso_z(self.starts_at),
            "ends_at": iso_z(self.ends_at),
            "purpose_class": self.purpose_class,
            "note": self.note,
            "entered_by": self.entered_by,
            "entered_at": iso_z(self.entered_at),
            "on_behalf_of": self.on_behalf_of,
            "confirmed_by": self.confirmed_by,
            "confirmed_at": iso_z(self.confirmed_at) if self.confirmed_at else None,
            "withdrawn_by": self.withdrawn_by,
            "withdrawn_at": iso_z(self.withdrawn_at) if self.withdrawn_at else None,
            "withdraw_reason": self.withdraw_reason,
            "migrated": self.migrated,
            "status": self.status(now),
        }

    def content_hash(self) -> str:
        """sha256 over every stored field, as Grant.content_hash: each audited change of
        the authorization records it, and `gateway audit verify` compares."""
        content = {
            "id": self.id,
            "reference": self.reference,
            "cameras": sorted(self.cameras),
            "districts": sorted(self.districts),
            "starts_at": stamp(self.starts_at),
            "ends_at": stamp(self.ends_at),
            "purpose_class": self.purpose_class,
            "note": self.note,
            "entered_by": self.entered_by,
            "entered_at": stamp(self.entered_at),
            "state": self.state,
            "on_behalf_of": self.on_behalf_of,
            "confirmed_by": self.confirmed_by,
            "confirmed_at": stamp(self.confirmed_at) if self.confirmed_at else None,
            "withdrawn_by": self.withdrawn_by,
            "withdrawn_at": stamp(self.withdrawn_at) if self.withdrawn_at else None,
            "withdraw_reason": self.withdraw_reason,
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class AuthorizationFields:
    """A new authorization's fields, validated."""

    reference: str
    cameras: frozenset[str]
    districts: frozenset[str]
    starts_at: datetime
    ends_at: datetime
    purpose_class: str | None  # None only for one adopted from old grants' reference
    note: str
    on_behalf_of: str | None


def fields_of(body: Mapping[str, Any], known_cameras: frozenset[str]) -> AuthorizationFields:
    """Validate a new authorization (GrantInvalid names the field)."""
    reference = text_field(
        "reference", body.get("reference"), AUTHORIZATION_REF_MAX, single_line=True
    )
    cameras = _optional_set("cameras", body.get("cameras"), "camera id", CAMERAS_MAX)
    if unknown := sorted(cameras - known_cameras):
        raise GrantInvalid("cameras", f"unknown camera id {unknown[0]!r}")
    districts = _optional_set("districts", body.get("districts"), "district", DISTRICTS_MAX)
    if not cameras and not districts:
        raise GrantInvalid("cameras", "name at least one camera or district")
    start = moment("starts_at", body.get("starts_at"))
    end = moment("ends_at", body.get("ends_at"))
    check_window(start, end, VALIDITY_DAYS_MAX)
    note = body.get("note") or ""
    if note:
        note = text_field("note", note, PURPOSE_MAX)
    on_behalf = body.get("on_behalf_of")
    if on_behalf is not None:
        on_behalf = text_field("on_behalf_of", on_behalf, ACCOUNT_MAX, single_line=True)
    return AuthorizationFields(
        reference,
        cameras,
        districts,
        start,
        end,
        purpose_class(body.get("purpose_class")),
        note,
        on_behalf,
    )


def purpose_class(value: object) -> str:
    if value not in PURPOSE_CLASSES:
        raise GrantInvalid("purpose_class", f"must be one of {', '.join(PURPOSE_CLASSES)}")
    return str(value)


def _optional_set(field: str, value: object, noun: str, limit: int) -> frozenset[str]:
    if value is None or value == []:
        return frozenset()
    return _string_set(field, value, noun, limit, ACCOUNT_MAX)
