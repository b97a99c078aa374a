"""EmergencyStore: emergency accesses and their reviews, read afresh on every call."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from gateway.access.emergency import Emergency
from gateway.access.grants import GrantInvalid, parse_stored, stamp

from .database import Connection


class EmergencyNotFound(LookupError):
    pass


class EmergencyStore:
    """Runs inside the caller's transaction (GrantStore's `_write`/`_read`)."""

    def __init__(self, db: Connection, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def create(
        self, *, account: str, camera_id: str, danger: str, minutes: int, remote: str
    ) -> Emergency:
        now = self.clock()
        cur = self.db.execute(
            "INSERT INTO emergencies (account, camera_id, danger, remote, starts_at, ends_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (
                account,
                camera_id,
                danger,
                remote,
                stamp(now),
                stamp(now + timedelta(minutes=minutes)),
            ),
        )
        return self.get(cur.fetchone()[0])

    def end(self, emergency_id: int, *, by: str, reason: str) -> Emergency:
        before = self.get(emergency_id)
        if before.status(self.clock()) == "ended":
            raise GrantInvalid("emergency", "has already ended")
        self.db.execute(
            "UPDATE emergencies SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ?",
            (stamp(self.clock()), by, reason, emergency_id),
        )
        return self.get(emergency_id)

    def review(self, emergency_id: int, *, by: str, justified: bool, note: str) -> Emergency:
        self.get(emergency_id)
        self.db.execute(
            "UPDATE emergencies SET justified = ?, reviewed_by = ?, reviewed_at = ?,"
            " review_note = ? WHERE id = ?",
            (1 if justified else 0, by, stamp(self.clock()), note, emergency_id),
        )
        return self.get(emergency_id)

    def get(self, emergency_id: int) -> Emergency:
        found = self._load("SELECT * FROM emergencies WHERE id = ?", (emergency_id,))
        if not found:
            raise EmergencyNotFound(f"emergency access {emergency_id} not found")
        return found[0]

    def find_many(self, ids: Iterable[int]) -> dict[int, Emergency]:
        found = {}
        for emergency_id in set(ids):
            rows = self._load("SELECT * FROM emergencies WHERE id = ?", (emergency_id,))
            if rows:
                found[emergency_id] = rows[0]
        return found

    def active_for(self, account: str) -> builtins.list[Emergency]:
        now = self.clock()
        rows = self._load(
            "SELECT * FROM emergencies WHERE account = ? AND ended_at IS NULL AND ends_at > ?"
            " ORDER BY id DESC",
            (account, stamp(now)),
        )
        return [e for e in rows if e.status(now) == "active"]

    def latest(self, account: str, camera_id: str, limit: int = 5) -> builtins.list[Emergency]:
        """The account's latest emergency accesses of one camera, active or not."""
        return self._load(
            "SELECT * FROM emergencies WHERE account = ? AND camera_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (account, camera_id, limit),
        )

    def list(self, *, limit: int = 500) -> builtins.list[Emergency]:
        """Newest first: every unreviewed one, and the latest others."""
        return self._load(
            "SELECT * FROM emergencies WHERE justified IS NULL OR id IN"
            " (SELECT id FROM emergencies ORDER BY id DESC LIMIT ?) ORDER BY id DESC",
            (limit,),
        )

    def _load(self, sql: str, params: tuple[Any, ...]) -> builtins.list[Emergency]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return load_emergencies(cur.execute(sql, params).fetchall())


def load_emergencies(rows: Iterable[Any]) -> list[Emergency]:
    return [
        Emergency(
            id=row["id"],
            account=row["account"],
            camera_id=row["camera_id"],
            danger=row["danger"],
            starts_at=parse_stored(row["starts_at"]),
            ends_at=parse_stored(row["ends_at"]),
            remote=row["remote"],
            ended_at=_moment(row["ended_at"]),
            ended_by=row["ended_by"],
            end_reason=row["end_reason"],
            justified=None if row["justified"] is None else bool(row["justified"]),
            reviewed_by=row["reviewed_by"],
            reviewed_at=_moment(row["reviewed_at"]),
            review_note=row["review_note"],
        )
        for row in rows
    ]


def _moment(text: str | None) -> datetime | None:
    return parse_stored(text) if text else None
