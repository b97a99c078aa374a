"""Grants: which named accounts may watch which cameras, and for which time window.

A grant belongs to a response project, records the police department's
authorization reference, ends on its own at `ends_at` and can be revoked at any
time. Every read goes to the database (no cache), so a change written by another
process, or while this one was down, is honoured at once. Times are stored as
fixed-width ISO 8601 UTC text.
"""

from __future__ import annotations

import builtins
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Literal

PROJECT_MAX = 200
PURPOSE_MAX = 2000
AUTHORIZATION_REF_MAX = 200
REASON_MAX = 2000
ACCOUNT_MAX = 256
MEMBERS_MAX = 500
CAMERAS_MAX = 1000
_DATETIME_TEXT_MAX = 64
_EXAMPLE = "e.g. 2027-01-01T00:00:00+08:00"

RefusalReason = Literal["no grant", "not yet started", "ended", "revoked"]
Status = Literal["revoked", "pending", "active", "ended"]


class GrantInvalid(ValueError):
    """A grant field is wrong; the message is meant to sit next to that form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class GrantNotFound(LookupError):
    pass


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

    def status(self, now: datetime) -> Status:
        if self.revoked_at is not None:
            return "revoked"
        if now < self.starts_at:
            return "pending"
        if now >= self.ends_at:
            return "ended"
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
            "starts_at": _iso_z(self.starts_at),
            "ends_at": _iso_z(self.ends_at),
            "created_by": self.created_by,
            "created_at": _iso_z(self.created_at),
            "updated_at": _iso_z(self.updated_at),
            "revoked_at": _iso_z(self.revoked_at) if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
            "status": self.status(now),
        }


class Refusal(Exception):
    """Why an account may not open a camera, in words safe to show the viewer."""

    def __init__(self, reason: RefusalReason, grant: Grant | None = None) -> None:
        super().__init__(reason)
        self.reason: RefusalReason = reason
        self.grant = grant  # the grant that came closest, if any


class GrantStore:
    def __init__(
        self,
        db: sqlite3.Connection,
        camera_ids: Iterable[str],
        max_days: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not (math.isfinite(max_days) and max_days > 0):
            raise ValueError("max_days must be a positive number")
        self.db = db
        self.camera_ids = frozenset(camera_ids)
        self.max_days = max_days
        self.clock = clock

    # -- writes: one BEGIN IMMEDIATE transaction each ------------------------------

    def create(
        self,
        *,
        project: str,
        purpose: str,
        authorization_ref: str,
        members: Iterable[str],
        cameras: Iterable[str],
        starts_at: datetime | str,
        ends_at: datetime | str,
        created_by: str,
    ) -> Grant:
        project = _text("project", project, PROJECT_MAX, single_line=True)
        purpose = _text("purpose", purpose, PURPOSE_MAX)
        authorization_ref = _text(
            "authorization_ref", authorization_ref, AUTHORIZATION_REF_MAX, single_line=True
        )
        member_set = _members(members)
        camera_set = self._cameras(cameras)
        start = _when("starts_at", starts_at)
        end = _when("ends_at", ends_at)
        self._check_window(start, end)
        created_by = _text("created_by", created_by, ACCOUNT_MAX, single_line=True)
        now = _stamp(self.clock())
        with self._write():
            cur = self.db.execute(
                "INSERT INTO grants (project, purpose, authorization_ref, starts_at, ends_at,"
                " created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project,
                    purpose,
                    authorization_ref,
                    _stamp(start),
                    _stamp(end),
                    created_by,
                    now,
                    now,
                ),
            )
            grant_id = cur.lastrowid
            assert grant_id is not None
            self._replace_sets(grant_id, member_set, camera_set)
            return self._get(grant_id)

    def update(
        self,
        grant_id: int,
        *,
        by: str,
        members: Iterable[str] | None = None,
        cameras: Iterable[str] | None = None,
        starts_at: datetime | str | None = None,
        ends_at: datetime | str | None = None,
        purpose: str | None = None,
    ) -> tuple[Grant, Grant]:
        """Change the given fields; returns (before, after). Sets are replaced, not merged."""
        _text("by", by, ACCOUNT_MAX, single_line=True)  # who is accountable; the caller audits it
        new_purpose = None if purpose is None else _text("purpose", purpose, PURPOSE_MAX)
        new_members = None if members is None else _members(members)
        new_cameras = None if cameras is None else self._cameras(cameras)
        new_start = None if starts_at is None else _when("starts_at", starts_at)
        new_end = None if ends_at is None else _when("ends_at", ends_at)
        with self._write():
            # Read inside the transaction so the window check sees what we overwrite.
            before = self._get(grant_id)
            if before.revoked_at is not None:
                raise GrantInvalid("grant", "revoked grants cannot be changed")
            start = before.starts_at if new_start is None else new_start
            end = before.ends_at if new_end is None else new_end
            if new_start is not None or new_end is not None:
                self._check_window(start, end)
            purpose_text = before.purpose if new_purpose is None else new_purpose
            member_set = before.members if new_members is None else new_members
            camera_set = before.cameras if new_cameras is None else new_cameras
            if (purpose_text, member_set, camera_set, start, end) == (
                before.purpose,
                before.members,
                before.cameras,
                before.starts_at,
                before.ends_at,
            ):
                return before, before  # nothing changes: no write, nothing to audit
            self.db.execute(
                "UPDATE grants SET purpose = ?, starts_at = ?, ends_at = ?, updated_at = ?"
                " WHERE id = ?",
                (purpose_text, _stamp(start), _stamp(end), _stamp(self.clock()), grant_id),
            )
            self._replace_sets(grant_id, member_set, camera_set)
            return before, self._get(grant_id)

    def revoke(self, grant_id: int, *, by: str, reason: str) -> Grant:
        by = _text("by", by, ACCOUNT_MAX, single_line=True)
        reason = _text("reason", reason, REASON_MAX)
        with self._write():
            if self._get(grant_id).revoked_at is not None:
                raise GrantInvalid("grant", "already revoked")
            self.db.execute(
                "UPDATE grants SET revoked_at = ?, revoked_by = ?, revoke_reason = ?,"
                " updated_at = ? WHERE id = ?",
                (now := _stamp(self.clock()), by, reason, now, grant_id),
            )
            return self._get(grant_id)

    # -- reads: always from the database ------------------------------------------

    def get(self, grant_id: int) -> Grant:
        with self._read():
            return self._get(grant_id)

    def list(self, *, include_ended: bool = True) -> list[Grant]:
        """Newest first. Without `include_ended`, grants that are over (ended or revoked)
        are left out."""
        with self._read():
            grants = self._load(self.db.execute("SELECT * FROM grants ORDER BY id DESC"))
        if include_ended:
            return grants
        now = self.clock()
        return [g for g in grants if g.status(now) in ("pending", "active")]

    def active_for(self, account: str, now: datetime | None = None) -> builtins.list[Grant]:
        """Active grants naming `account`, newest first."""
        now = self._now(now)
        with self._read():
            grants = self._load(
                self.db.execute(
                    "SELECT g.* FROM grants g JOIN grant_members m ON m.grant_id = g.id"
                    " WHERE m.account = ? AND g.revoked_at IS NULL ORDER BY g.id DESC",
                    (account,),
                )
            )
        return [g for g in grants if g.is_active(now)]

    def decide(self, account: str, camera_id: str, now: datetime | None = None) -> Grant:
        """The active grant naming both `account` and `camera_id` (the one ending last),
        else raise Refusal with the most useful reason."""
        now = self._now(now)
        with self._read():
            grants = self._load(
                self.db.execute(
                    "SELECT g.* FROM grants g"
                    " JOIN grant_members m ON m.grant_id = g.id"
                    " JOIN grant_cameras c ON c.grant_id = g.id"
                    " WHERE m.account = ? AND c.camera_id = ? ORDER BY g.id DESC",
                    (account, camera_id),
                )
            )
        by_status: dict[str, list[Grant]] = {}
        for g in grants:
            by_status.setdefault(g.status(now), []).append(g)
        if active := by_status.get("active"):
            return max(active, key=lambda g: (g.ends_at, g.id))
        # "Not yet started" first: it tells the viewer to come back, not that access is gone.
        if pending := by_status.get("pending"):
            raise Refusal("not yet started", min(pending, key=lambda g: (g.starts_at, -g.id)))
        if revoked := by_status.get("revoked"):
            raise Refusal("revoked", max(revoked, key=lambda g: (g.revoked_at, g.id)))
        if ended := by_status.get("ended"):
            raise Refusal("ended", max(ended, key=lambda g: (g.ends_at, g.id)))
        raise Refusal("no grant")

    def next_change(self, now: datetime | None = None) -> datetime | None:
        """The earliest start or end strictly after `now` among unrevoked grants: when a
        timer should wake to end (or allow) sessions."""
        now = self._now(now)
        with self._read():
            rows = self.db.execute(
                "SELECT starts_at, ends_at FROM grants WHERE revoked_at IS NULL"
            ).fetchall()
        times = (_parse_stored(t) for row in rows for t in (row["starts_at"], row["ends_at"]))
        return min((t for t in times if t > now), default=None)

    # -- internals -----------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[None]:
        # One snapshot, so a grant and its members/cameras are read consistently.
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def _now(self, now: datetime | None) -> datetime:
        now = self.clock() if now is None else now
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        return now

    def _cameras(self, cameras: Iterable[str]) -> frozenset[str]:
        ids = _string_set("cameras", cameras, "camera id", CAMERAS_MAX, ACCOUNT_MAX)
        if unknown := sorted(ids - self.camera_ids):
            shown = ", ".join(repr(_clip(c)) for c in unknown[:3])
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise GrantInvalid("cameras", f"unknown camera id {shown}{more}")
        return ids

    def _check_window(self, start: datetime, end: datetime) -> None:
        if end <= start:
            raise GrantInvalid("ends_at", "must be after starts_at")
        if end - start > timedelta(days=self.max_days):
            raise GrantInvalid("ends_at", f"a grant may run at most {self.max_days:g} days")

    def _replace_sets(
        self, grant_id: int, members: frozenset[str], cameras: frozenset[str]
    ) -> None:
        self.db.execute("DELETE FROM grant_members WHERE grant_id = ?", (grant_id,))
        self.db.execute("DELETE FROM grant_cameras WHERE grant_id = ?", (grant_id,))
        self.db.executemany(
            "INSERT INTO grant_members (grant_id, account) VALUES (?, ?)",
            [(grant_id, m) for m in sorted(members)],
        )
        self.db.executemany(
            "INSERT INTO grant_cameras (grant_id, camera_id) VALUES (?, ?)",
            [(grant_id, c) for c in sorted(cameras)],
        )

    def _get(self, grant_id: int) -> Grant:
        grants = self._load(self.db.execute("SELECT * FROM grants WHERE id = ?", (grant_id,)))
        if not grants:
            raise GrantNotFound(f"grant {grant_id} not found")
        return grants[0]

    def _load(self, cursor: sqlite3.Cursor) -> builtins.list[Grant]:
        grants = []
        for row in cursor.fetchall():
            members = self.db.execute(
                "SELECT account FROM grant_members WHERE grant_id = ?", (row["id"],)
            )
            cameras = self.db.execute(
                "SELECT camera_id FROM grant_cameras WHERE grant_id = ?", (row["id"],)
            )
            grants.append(
                Grant(
                    id=row["id"],
                    project=row["project"],
                    purpose=row["purpose"],
                    authorization_ref=row["authorization_ref"],
                    members=frozenset(r[0] for r in members),
                    cameras=frozenset(r[0] for r in cameras),
                    starts_at=_parse_stored(row["starts_at"]),
                    ends_at=_parse_stored(row["ends_at"]),
                    created_by=row["created_by"],
                    created_at=_parse_stored(row["created_at"]),
                    updated_at=_parse_stored(row["updated_at"]),
                    revoked_at=_parse_stored(row["revoked_at"]) if row["revoked_at"] else None,
                    revoked_by=row["revoked_by"],
                    revoke_reason=row["revoke_reason"],
                )
            )
        return grants


# -- validation helpers -------------------------------------------------------------


def _text(field: str, value: object, limit: int, *, single_line: bool = False) -> str:
    if not isinstance(value, str):
        raise GrantInvalid(field, "is required" if value is None else "must be text")
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
    field: str, values: object, noun: str, max_items: int, max_len: int
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
        item = item.strip()
        if not item:
            raise GrantInvalid(field, f"item {i} is empty")
        if len(item) > max_len:
            raise GrantInvalid(field, f"item {i} is longer than {max_len} characters")
        if any(ord(ch) < 32 for ch in item):
            raise GrantInvalid(field, f"item {i} must not contain control characters")
        if item in seen:
            raise GrantInvalid(field, f"{_clip(item)!r} is listed twice")
        seen.add(item)
    return frozenset(seen)


def _members(members: object) -> frozenset[str]:
    return _string_set("members", members, "account name", MEMBERS_MAX, ACCOUNT_MAX)


def _when(field: str, value: object) -> datetime:
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


def _stamp(dt: datetime) -> str:
    # Fixed width (always microseconds, always +00:00) so stored times sort as text.
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_stored(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _iso_z(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
