"""GrantStore: grants in the database, read afresh on every call.

Every read goes to the database (no cache), so a change written by another
process, or while this one was down, is honoured at once. Times are stored as
fixed-width ISO 8601 UTC text.
"""

from __future__ import annotations

import builtins
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from gateway.access.grants import (
    ACCOUNT_MAX,
    AUTHORIZATION_REF_MAX,
    PROJECT_MAX,
    PURPOSE_MAX,
    REASON_MAX,
    Grant,
    GrantInvalid,
    PreviousAuthorization,
    cameras_of,
    changed,
    check_window,
    members_of,
    moment,
    parse_stored,
    stamp,
    text_field,
)

from .database import Connection


class GrantNotFound(LookupError):
    pass


class GrantStore:
    def __init__(
        self,
        db: Connection,
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

    def set_camera_ids(self, camera_ids: Iterable[str]) -> None:
        """The cameras a grant may name from now on: they follow the inventory."""
        self.camera_ids = frozenset(camera_ids)

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
        project = text_field("project", project, PROJECT_MAX, single_line=True, name=True)
        purpose = text_field("purpose", purpose, PURPOSE_MAX)
        authorization_ref = text_field(
            "authorization_ref", authorization_ref, AUTHORIZATION_REF_MAX, single_line=True
        )
        member_set = members_of(members)
        camera_set = self._cameras(cameras)
        start = moment("starts_at", starts_at)
        end = moment("ends_at", ends_at)
        self._check_window(start, end)
        created_by = text_field("created_by", created_by, ACCOUNT_MAX, single_line=True)
        now = stamp(self.clock())
        with self._write():
            cur = self.db.execute(
                "INSERT INTO grants (project, purpose, authorization_ref, starts_at, ends_at,"
                " created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    project,
                    purpose,
                    authorization_ref,
                    stamp(start),
                    stamp(end),
                    created_by,
                    now,
                    now,
                ),
            )
            grant_id = cur.fetchone()[0]
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
        authorization_ref: str | None = None,
    ) -> tuple[Grant, Grant]:
        """Change the given fields; returns (before, after). Sets are replaced, not merged.

        A window that grows (starts earlier or ends later, which includes reviving an
        ended grant) needs a new `authorization_ref` in the same call. A replaced
        reference is kept in the grant's `previous_authorizations`.
        """
        # Who is accountable; the caller audits it.
        by = text_field("by", by, ACCOUNT_MAX, single_line=True)
        with self._write():
            # Read inside the transaction so the window check sees what we overwrite.
            before = self._get(grant_id)
            after = changed(
                before,
                known_cameras=self.camera_ids,
                max_days=self.max_days,
                now=self.clock(),
                members=members,
                cameras=cameras,
                starts_at=starts_at,
                ends_at=ends_at,
                purpose=purpose,
                authorization_ref=authorization_ref,
                by=by,
            )
            if after is before:
                return before, before
            if after.authorization_ref != before.authorization_ref:
                replaced = after.previous_authorizations[-1]
                self.db.execute(
                    "INSERT INTO grant_authorizations"
                    " (grant_id, authorization_ref, replaced_at, replaced_by) VALUES (?, ?, ?, ?)",
                    (grant_id, replaced.authorization_ref, stamp(replaced.replaced_at), by),
                )
            self.db.execute(
                "UPDATE grants SET purpose = ?, authorization_ref = ?, starts_at = ?, ends_at = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    after.purpose,
                    after.authorization_ref,
                    stamp(after.starts_at),
                    stamp(after.ends_at),
                    stamp(after.updated_at),
                    grant_id,
                ),
            )
            self._replace_sets(grant_id, after.members, after.cameras)
            return before, self._get(grant_id)

    def revoke(self, grant_id: int, *, by: str, reason: str) -> Grant:
        by = text_field("by", by, ACCOUNT_MAX, single_line=True)
        reason = text_field("reason", reason, REASON_MAX)
        with self._write():
            if self._get(grant_id).revoked_at is not None:
                raise GrantInvalid("grant", "already revoked")
            self.db.execute(
                "UPDATE grants SET revoked_at = ?, revoked_by = ?, revoke_reason = ?,"
                " updated_at = ? WHERE id = ?",
                (now := stamp(self.clock()), by, reason, now, grant_id),
            )
            return self._get(grant_id)

    # -- reads: always from the database ------------------------------------------

    def get(self, grant_id: int) -> Grant:
        with self._read():
            return self._get(grant_id)

    def find(self, grant_id: int) -> Grant | None:
        """The grant, or None if there is no such grant."""
        try:
            return self.get(grant_id)
        except GrantNotFound:
            return None

    def find_many(self, grant_ids: Iterable[int]) -> dict[int, Grant]:
        """The grants with these ids that exist, read in one snapshot (which also
        proves the grants can be read at all)."""
        with self._read():
            self.db.execute("SELECT 1 FROM grants LIMIT 1").fetchall()
            found = {}
            for grant_id in grant_ids:
                with suppress(GrantNotFound):
                    found[grant_id] = self._get(grant_id)
            return found

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

    def naming(self, account: str, camera_id: str) -> builtins.list[Grant]:
        """Every grant that names both `account` and `camera_id`, whatever its status."""
        with self._read():
            return self._load(
                self.db.execute(
                    "SELECT g.* FROM grants g"
                    " JOIN grant_members m ON m.grant_id = g.id"
                    " JOIN grant_cameras c ON c.grant_id = g.id"
                    " WHERE m.account = ? AND c.camera_id = ? ORDER BY g.id DESC",
                    (account, camera_id),
                )
            )

    # -- internals -----------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        # Inside the store's batch transaction, a savepoint: both land or neither.
        nested = self.db.in_transaction
        self.db.execute("SAVEPOINT grant_write" if nested else "BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:
                if nested:
                    self.db.execute("ROLLBACK TO grant_write")
                    self.db.execute("RELEASE grant_write")
                else:
                    self.db.execute("ROLLBACK")
            raise
        self.db.execute("RELEASE grant_write" if nested else "COMMIT")

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
        return cameras_of(cameras, self.camera_ids)

    def _check_window(self, start: datetime, end: datetime) -> None:
        check_window(start, end, self.max_days)

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

    def _load(self, cursor: Any) -> builtins.list[Grant]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return load_grants(cur, cursor.fetchall())


def load_grants(cur: Any, rows: Iterable[Any], *, with_history: bool = True) -> list[Grant]:
    """Grants from their `grants` rows, with members, cameras and earlier references
    read through `cur` (a cursor whose rows answer by name). `with_history=False`
    reads a database made before grant_authorizations existed (schema version 1)."""
    grants = []
    for row in rows:
        grant_id = row["id"]
        members = cur.execute(
            "SELECT account FROM grant_members WHERE grant_id = ?", (grant_id,)
        ).fetchall()
        cameras = cur.execute(
            "SELECT camera_id FROM grant_cameras WHERE grant_id = ?", (grant_id,)
        ).fetchall()
        previous = (
            cur.execute(
                "SELECT authorization_ref, replaced_at, replaced_by FROM grant_authorizations"
                " WHERE grant_id = ? ORDER BY id",
                (grant_id,),
            ).fetchall()
            if with_history
            else []
        )
        grants.append(
            Grant(
                id=grant_id,
                project=row["project"],
                purpose=row["purpose"],
                authorization_ref=row["authorization_ref"],
                members=frozenset(r[0] for r in members),
                cameras=frozenset(r[0] for r in cameras),
                starts_at=parse_stored(row["starts_at"]),
                ends_at=parse_stored(row["ends_at"]),
                created_by=row["created_by"],
                created_at=parse_stored(row["created_at"]),
                updated_at=parse_stored(row["updated_at"]),
                revoked_at=parse_stored(row["revoked_at"]) if row["revoked_at"] else None,
                revoked_by=row["revoked_by"],
                revoke_reason=row["revoke_reason"],
                previous_authorizations=tuple(
                    PreviousAuthorization(r[0], parse_stored(r[1]), r[2]) for r in previous
                ),
            )
        )
    return grants
