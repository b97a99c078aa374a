"""MaskStore: the privacy masks administrators set, and lifts of them for one grant,
read afresh on every call. Runs inside the caller's transaction (the Store's jobs)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.access.grants import parse_stored, stamp
from gateway.access.mask_lifts import MaskLift

from .database import Connection


class LiftNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StoredMasks:
    """A camera's masks as an administrator last set them (JSON values), and why."""

    camera_id: str
    masks: list[dict[str, Any]]
    changed_by: str
    changed_at: datetime
    reason: str


class MaskStore:
    def __init__(self, db: Connection, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    # --- a camera's masks -------------------------------------------------------------

    def put(self, camera_id: str, masks: list[dict[str, Any]], *, by: str, reason: str) -> None:
        text = json.dumps(masks, ensure_ascii=False, separators=(",", ":"))
        self.db.execute(
            "INSERT INTO camera_masks (camera_id, masks, changed_by, changed_at, reason)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (camera_id) DO UPDATE SET"
            " masks = excluded.masks, changed_by = excluded.changed_by,"
            " changed_at = excluded.changed_at, reason = excluded.reason",
            (camera_id, text, by, stamp(self.clock()), reason),
        )

    def get(self, camera_id: str) -> StoredMasks | None:
        found = self._masks("SELECT * FROM camera_masks WHERE camera_id = ?", (camera_id,))
        return found[0] if found else None

    def every(self) -> list[StoredMasks]:
        return self._masks("SELECT * FROM camera_masks ORDER BY camera_id", ())

    def _masks(self, sql: str, params: tuple[Any, ...]) -> list[StoredMasks]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return [
            StoredMasks(
                camera_id=row["camera_id"],
                masks=json.loads(row["masks"]),
                changed_by=row["changed_by"],
                changed_at=parse_stored(row["changed_at"]),
                reason=row["reason"],
            )
            for row in cur.execute(sql, params).fetchall()
        ]

    # --- lifts ------------------------------------------------------------------------

    def ask_lift(
        self, *, grant_id: int, camera_id: str, reason: str, seconds: int, by: str
    ) -> MaskLift:
        cur = self.db.execute(
            "INSERT INTO mask_lifts (grant_id, camera_id, reason, seconds, asked_by, asked_at,"
            " state) VALUES (?, ?, ?, ?, ?, ?, 'requested') RETURNING id",
            (grant_id, camera_id, reason, seconds, by, stamp(self.clock())),
        )
        return self.lift(cur.fetchone()[0])

    def approve_lift(self, lift_id: int, *, by: str) -> MaskLift:
        now = self.clock()
        until = now + timedelta(seconds=self.lift(lift_id).seconds)
        self.db.execute(
            "UPDATE mask_lifts SET state = 'approved', decided_by = ?, decided_at = ?,"
            " lifted_until = ? WHERE id = ? AND state = 'requested'",
            (by, stamp(now), stamp(until), lift_id),
        )
        return self.lift(lift_id)

    def decline_lift(self, lift_id: int, *, by: str, reason: str) -> MaskLift:
        self.db.execute(
            "UPDATE mask_lifts SET state = 'declined', decided_by = ?, decided_at = ?,"
            " decline_reason = ? WHERE id = ? AND state = 'requested'",
            (by, stamp(self.clock()), reason, lift_id),
        )
        return self.lift(lift_id)

    def end_lift(self, lift_id: int, *, by: str, reason: str) -> MaskLift:
        """Ended early (its masks back before its time)."""
        self.db.execute(
            "UPDATE mask_lifts SET ended_at = ?, ended_by = ?, end_reason = ?"
            " WHERE id = ? AND ended_at IS NULL",
            (stamp(self.clock()), by, reason, lift_id),
        )
        return self.lift(lift_id)

    def end_due(self) -> list[MaskLift]:
        """Approved lifts whose time has run out and whose end is not recorded yet:
        marked ended now, and returned (each once, whichever node asks first)."""
        now = stamp(self.clock())
        due = self._lifts(
            "SELECT * FROM mask_lifts WHERE state = 'approved' AND ended_at IS NULL"
            " AND lifted_until <= ? ORDER BY id",
            (now,),
        )
        for lift in due:
            self.db.execute("UPDATE mask_lifts SET ended_at = ? WHERE id = ?", (now, lift.id))
        return [self.lift(lift.id) for lift in due]

    def lift(self, lift_id: int) -> MaskLift:
        found = self._lifts("SELECT * FROM mask_lifts WHERE id = ?", (lift_id,))
        if not found:
            raise LiftNotFound(f"mask lift {lift_id} not found")
        return found[0]

    def in_force(self) -> list[MaskLift]:
        """Approved lifts whose time has not run out."""
        return self._lifts(
            "SELECT * FROM mask_lifts WHERE state = 'approved' AND ended_at IS NULL"
            " AND lifted_until > ? ORDER BY id",
            (stamp(self.clock()),),
        )

    def listing(self, *, limit: int = 200) -> list[MaskLift]:
        """Newest first: every one still waiting or in force, and the latest others."""
        return self._lifts(
            "SELECT * FROM mask_lifts WHERE state = 'requested' OR ended_at IS NULL"
            " OR id IN (SELECT id FROM mask_lifts ORDER BY id DESC LIMIT ?) ORDER BY id DESC",
            (limit,),
        )

    def during(self, since: datetime, until: datetime) -> list[MaskLift]:
        """Oldest first, the lifts of a period (the governance report): asked in it, or
        asked before it and still waiting, in force or decided in it."""
        low, high = stamp(since), stamp(until)
        return self._lifts(
            "SELECT * FROM mask_lifts WHERE asked_at < ? AND (asked_at >= ?"
            " OR state = 'requested'"
            " OR (state = 'approved' AND COALESCE(ended_at, lifted_until) >= ?)"
            " OR (state = 'declined' AND decided_at >= ?)) ORDER BY id",
            (high, low, low, low),
        )

    def _lifts(self, sql: str, params: Iterable[Any]) -> list[MaskLift]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return [
            MaskLift(
                id=row["id"],
                grant_id=row["grant_id"],
                camera_id=row["camera_id"],
                reason=row["reason"],
                seconds=row["seconds"],
                asked_by=row["asked_by"],
                asked_at=parse_stored(row["asked_at"]),
                state=row["state"],
                decided_by=row["decided_by"],
                decided_at=_moment(row["decided_at"]),
                decline_reason=row["decline_reason"],
                until=_moment(row["lifted_until"]),
                ended_at=_moment(row["ended_at"]),
                ended_by=row["ended_by"],
                end_reason=row["end_reason"],
            )
            for row in cur.execute(sql, tuple(params)).fetchall()
        ]


def _moment(text: str | None) -> datetime | None:
    return parse_stored(text) if text else None
