"""Grants: which named accounts may watch which cameras, and for which time window.

A grant belongs to a response project, stays inside the police authorization it
names (access/authorizations.py), ends on its own at `ends_at` and can be revoked
at any time. A new grant, or a change that widens one, waits for a second person's
approval (`Approval`). This module holds the grant itself and the rules for its fields; the store
(gateway/store/grants.py) keeps grants, and access/decision.py says what they allow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Literal

from .names import NameRefused, account_problem, readable_name

PROJECT_MAX = 200
PURPOSE_MAX = 2000
AUTHORIZATION_REF_MAX = 200
REASON_MAX = 2000
ACCOUNT_MAX = 256
MEMBERS_MAX = 500
CAMERAS_MAX = 1000
_DATETIME_TEXT_MAX = 64
_EXAMPLE = "e.g. 2027-01-01T00:00:00+08:00"

# "pending": waits for approval (admits nobody); "scheduled": approved, its window
# not started yet (called "pending" before approvals existed).
Status = Literal["revoked", "pending", "scheduled", "active", "ended"]
# The fields a change may carry, and those that widen access when they grow.
CHANGE_FIELDS = ("members", "cameras", "starts_at", "ends_at", "purpose", "authorization_id")


class GrantInvalid(ValueError):
    """A grant field is wrong; the message is meant to sit next to that form field."""

    def __init__(self, field: str, message: str, problems: dict[str, str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        # Every field found wrong at once (field -> message, this one first), so a form
        # can mark them all: `each_field`.
        self.problems = problems or {field: message}


class RuleBroken(GrantInvalid):
    """A change the chain of consent does not allow: `code` names the rule (a stable
    code of its own, http/errors.py), `field` where it applies."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(field, message)
        self.code = code


SELF_APPROVAL = "self_approval"
NOTHING_PENDING = "nothing_pending"


@dataclass(frozen=True)
class PreviousAuthorization:
    """An authorization reference a grant ran under before, and who replaced it when."""

    authorization_ref: str
    replaced_at: datetime
    replaced_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "authorization_ref": self.authorization_ref,
            "replaced_at": iso_z(self.replaced_at),
            "replaced_by": self.replaced_by,
        }


@dataclass(frozen=True)
class Approval:
    """What waits for a second person: a new grant, or a change that widens one."""

    kind: Literal["new", "change"]
    asked_by: tuple[str, ...]  # who asked, and who changed it while it waited
    asked_at: datetime
    # For a change: the fields asked for, as JSON values (sets as sorted lists,
    # times as ISO 8601); applied to the grant as it is when approved.
    change: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "asked_by": list(self.asked_by),
            "asked_at": iso_z(self.asked_at),
            "change": self.change,
        }

    def stored(self) -> str:
        value = {**self.to_json(), "asked_at": stamp(self.asked_at)}
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_stored(cls, text: str | None) -> Approval | None:
        if not text:
            return None
        value = json.loads(text)
        return cls(
            value["kind"],
            tuple(value["asked_by"]),
            parse_stored(value["asked_at"]),
            value["change"],
        )

    def by_also(self, account: str) -> Approval:
        """The same request, changed by `account` too (who then cannot approve it)."""
        if account in self.asked_by:
            return self
        return dataclasses.replace(self, asked_by=(*self.asked_by, account))


@dataclass(frozen=True)
class Grant:
    id: int
    project: str
    purpose: str
    authorization_ref: str
    members: frozenset[str]
    cameras: frozenset[str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None
    # Oldest first; the current one is `authorization_ref`.
    previous_authorizations: tuple[PreviousAuthorization, ...] = ()
    # The police authorization it stays inside (its reference is `authorization_ref`);
    # None only for a grant made before authorizations were records, until migrated.
    authorization_id: int | None = None
    approval: Approval | None = None  # what waits for a second person, if anything
    approved_by: str | None = None  # who approved it last, and when
    approved_at: datetime | None = None
    # Its authorization was withdrawn (read with the grant; not one of its fields).
    withdrawn: bool = dataclasses.field(default=False, compare=False)

    def status(self, now: datetime) -> Status:
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.ends_at:
            return "ended"
        if self.approval is not None and self.approval.kind == "new":
            return "pending"
        if now < self.starts_at:
            return "scheduled"
        return "active"

    def is_active(self, now: datetime) -> bool:
        return self.status(now) == "active"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "purpose": self.purpose,
            "authorization_ref": self.authorization_ref,
            "members": sorted(self.members),
            "cameras": sorted(self.cameras),
            "starts_at": iso_z(self.starts_at),
            "ends_at": iso_z(self.ends_at),
            "created_by": self.created_by,
            "created_at": iso_z(self.created_at),
            "updated_at": iso_z(self.updated_at),
            "revoked_at": iso_z(self.revoked_at) if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
            "previous_authorizations": [p.to_json() for p in self.previous_authorizations],
            "authorization_id": self.authorization_id,
            "approval": self.approval.to_json() if self.approval else None,
            "approved_by": self.approved_by,
            "approved_at": iso_z(self.approved_at) if self.approved_at else None,
            "status": self.status(now),
        }

    def to_viewer_json(self, now: datetime) -> dict[str, Any]:
        """What a member needs of its grant: which cameras, for which project, until when.
        Not who else is in it, why, on whose authority, or who made it."""
        return {
            "id": self.id,
            "project": self.project,
            "cameras": sorted(self.cameras),
            "starts_at": iso_z(self.starts_at),
            "ends_at": iso_z(self.ends_at),
            "status": self.status(now),
        }

    def content_hash(self) -> str:
        """sha256 over every stored field of the grant, in canonical JSON.

        Each audited grant change records it, and `gateway audit verify` compares it
        with the grant row as it is now: a row changed outside the API no longer
        matches. Adding a field here changes every grant's hash, so earlier audit
        rows would stop matching: add one only together with a way to tell them apart.
        The fields that came with authorizations and approvals count only when set,
        so a grant that never had them hashes as it did before they existed.
        """
        content = {
            "id": self.id,
            "project": self.project,
            "purpose": self.purpose,
            "authorization_ref": self.authorization_ref,
            "members": sorted(self.members),
            "cameras": sorted(self.cameras),
            "starts_at": stamp(self.starts_at),
            "ends_at": stamp(self.ends_at),
            "created_by": self.created_by,
            "created_at": stamp(self.created_at),
            "updated_at": stamp(self.updated_at),
            "revoked_at": stamp(self.revoked_at) if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
            "previous_authorizations": [
                [p.authorization_ref, stamp(p.replaced_at), p.replaced_by]
                for p in self.previous_authorizations
            ],
        }
        if self.authorization_id is not None:
            content["authorization_id"] = self.authorization_id
        if self.approval is not None:
            content["approval"] = self.approval.stored()
        if self.approved_by is not None:
            content["approved_by"] = self.approved_by
        if self.approved_at is not None:
            content["approved_at"] = stamp(self.approved_at)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def widening(self, after: Grant) -> list[str]:
        """The fields in which `after` gives more access than this grant: more
        members or cameras, an earlier start, a later end, another authorization."""
        grows = {
            "members": bool(after.members - self.members),
            "cameras": bool(after.cameras - self.cameras),
            "starts_at": after.starts_at < self.starts_at,
            "ends_at": after.ends_at > self.ends_at,
            "authorization_id": after.authorization_id != self.authorization_id,
        }
        return [name for name, grown in grows.items() if grown]

    def narrowed_toward(self, after: Grant) -> Grant:
        """What of the change to `after` takes effect at once: the members and cameras
        both have, the later start and the earlier end (when they still make a window),
        and a new purpose. The rest waits for approval."""
        start, end = max(self.starts_at, after.starts_at), min(self.ends_at, after.ends_at)
        if start >= end:
            start, end = self.starts_at, min(self.ends_at, after.ends_at)
            if start >= end:
                start, end = self.starts_at, self.ends_at
        narrowed = dataclasses.replace(
            self,
            members=(self.members & after.members) or self.members,
            cameras=(self.cameras & after.cameras) or self.cameras,
            starts_at=start,
            ends_at=end,
            purpose=after.purpose,
        )
        return (
            self if narrowed == self else dataclasses.replace(narrowed, updated_at=after.updated_at)
        )


def changed(
    before: Grant,
    *,
    known_cameras: frozenset[str],
    max_days: float,
    now: datetime,
    members: Iterable[str] | None = None,
    cameras: Iterable[str] | None = None,
    starts_at: datetime | str | None = None,
    ends_at: datetime | str | None = None,
    purpose: str | None = None,
    authorization: tuple[int, str] | None = None,
    by: str = "",
) -> Grant:
    """The grant with the given fields changed (sets replaced, not merged), validated;
    `before` itself if nothing changes. Raises GrantInvalid.

    `authorization` (id, reference) moves the grant under another police
    authorization; the reference it ran under is kept in `previous_authorizations`,
    with who moved it (`by`). Whether the result stays inside its authorization is
    the caller's check (Authorization.outside), which needs the authorization.
    """
    new_purpose = None if purpose is None else text_field("purpose", purpose, PURPOSE_MAX)
    new_members = None if members is None else members_of(members)
    new_cameras = None if cameras is None else cameras_of(cameras, known_cameras)
    new_start = None if starts_at is None else moment("starts_at", starts_at)
    new_end = None if ends_at is None else moment("ends_at", ends_at)
    if before.revoked_at is not None:
        raise GrantInvalid("grant", "revoked grants cannot be changed")
    start = before.starts_at if new_start is None else new_start
    end = before.ends_at if new_end is None else new_end
    if new_start is not None or new_end is not None:
        check_window(start, end, max_days)
    auth_id, ref = (
        (before.authorization_id, before.authorization_ref)
        if authorization is None
        else authorization
    )
    after = dataclasses.replace(
        before,
        purpose=before.purpose if new_purpose is None else new_purpose,
        members=before.members if new_members is None else new_members,
        cameras=before.cameras if new_cameras is None else new_cameras,
        starts_at=start,
        ends_at=end,
        authorization_id=auth_id,
        authorization_ref=ref,
    )
    if after == before:
        return before  # nothing changes: no write, nothing to audit
    if auth_id != before.authorization_id and before.authorization_ref != ref:
        replaced = PreviousAuthorization(before.authorization_ref, now, by)
        after = dataclasses.replace(
            after, previous_authorizations=(*before.previous_authorizations, replaced)
        )
    return dataclasses.replace(after, updated_at=now)


def change_of(before: Grant, after: Grant) -> dict[str, Any]:
    """The fields in which `after` differs from `before`, as JSON values (what an
    Approval of a change keeps)."""
    values = {
        "members": sorted(after.members),
        "cameras": sorted(after.cameras),
        "starts_at": iso_z(after.starts_at),
        "ends_at": iso_z(after.ends_at),
        "purpose": after.purpose,
        "authorization_id": after.authorization_id,
    }
    old = {
        "members": sorted(before.members),
        "cameras": sorted(before.cameras),
        "starts_at": iso_z(before.starts_at),
        "ends_at": iso_z(before.ends_at),
        "purpose": before.purpose,
        "authorization_id": before.authorization_id,
    }
    return {key: value for key, value in values.items() if old[key] != value}


# -- validation helpers -------------------------------------------------------------


def each_field(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each field's value from its check, every check run even after one fails: the
    GrantInvalid names the first field that failed, and its `problems` every one."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except RuleBroken:
            raise
        except GrantInvalid as exc:
            problems.setdefault(exc.field, exc.message)
    if problems:
        field, message = next(iter(problems.items()))
        raise GrantInvalid(field, message, problems)
    return values


def text_field(
    field: str, value: object, limit: int, *, single_line: bool = False, name: bool = False
) -> str:
    """A text field, trimmed; `name`: one people tell apart by reading it (names.py)."""
    if not isinstance(value, str):
        raise GrantInvalid(field, "is required" if value is None else "must be text")
    if name:
        try:
            value = readable_name(value)
        except NameRefused as exc:
            raise GrantInvalid(field, str(exc)) from None
    value = value.strip()
    if not value:
        raise GrantInvalid(field, "is required")
    if len(value) > limit:
        raise GrantInvalid(field, f"must be at most {limit} characters")
    allowed = "" if single_line else "\n\t"
    if any(ord(ch) < 32 and ch not in allowed for ch in value):
        raise GrantInvalid(field, "must not contain control characters")
    return value


def _string_set(
    field: str, values: object, noun: str, max_items: int, max_len: int, *, names: bool = False
) -> frozenset[str]:
    # A bare string is iterable too: "alice" must not become {"a", "l", "i", "c", "e"}.
    if isinstance(values, str | bytes | dict) or not isinstance(values, Iterable):
        raise GrantInvalid(field, f"must be a list of {noun}s")
    items = list(islice(values, max_items + 1))  # never materialize more than we accept
    if not items:
        raise GrantInvalid(field, f"at least one {noun} is required")
    if len(items) > max_items:
        raise GrantInvalid(field, f"at most {max_items} {noun}s")
    seen: set[str] = set()
    for i, item in enumerate(items, start=1):
        if not isinstance(item, str):
            raise GrantInvalid(field, f"item {i} must be a {noun} as text, not {_kind(item)}")
        if names:
            try:
                item = readable_name(item)
            except NameRefused as exc:
                raise GrantInvalid(field, f"item {i} {exc}") from None
        item = item.strip()
        if not item:
            raise GrantInvalid(field, f"item {i} is empty")
        if names and (problem := account_problem(item)):
            raise GrantInvalid(field, f"item {i} {_clip(item)!r} {problem}")
        if len(item) > max_len:
            raise GrantInvalid(field, f"item {i} is longer than {max_len} characters")
        if any(ord(ch) < 32 for ch in item):
            raise GrantInvalid(field, f"item {i} must not contain control characters")
        if item in seen:
            raise GrantInvalid(field, f"{_clip(item)!r} is listed twice")
        seen.add(item)
    return frozenset(seen)


def members_of(members: object) -> frozenset[str]:
    return _string_set("members", members, "account name", MEMBERS_MAX, ACCOUNT_MAX, names=True)


def cameras_of(cameras: object, known: frozenset[str]) -> frozenset[str]:
    ids = _string_set("cameras", cameras, "camera id", CAMERAS_MAX, ACCOUNT_MAX)
    if unknown := sorted(ids - known):
        shown = ", ".join(repr(_clip(c)) for c in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise GrantInvalid("cameras", f"unknown camera id {shown}{more}")
    return ids


def check_window(start: datetime, end: datetime, max_days: float) -> None:
    if end <= start:
        raise GrantInvalid("ends_at", "must be after starts_at")
    if end - start > timedelta(days=max_days):
        raise GrantInvalid("ends_at", f"a grant may run at most {max_days:g} days")


def moment(field: str, value: object) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _DATETIME_TEXT_MAX:
            raise GrantInvalid(field, f"is not an ISO 8601 date and time, {_EXAMPLE}")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise GrantInvalid(field, f"is not an ISO 8601 date and time, {_EXAMPLE}") from None
    if not isinstance(value, datetime):
        raise GrantInvalid(field, f"must be a date and time, {_EXAMPLE}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise GrantInvalid(field, f"must include a timezone, {_EXAMPLE}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise GrantInvalid(field, "is out of range") from None


def _kind(value: object) -> str:
    # Names a UI user recognizes, for values that came from JSON.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stamp(dt: datetime) -> str:
    # Fixed width (always microseconds, always +00:00) so stored times sort as text.
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def parse_stored(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso_z(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
