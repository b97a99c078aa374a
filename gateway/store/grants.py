"""GrantStore: grants in the database, read afresh on every call.

Every read goes to the database (no cache), so a change written by another
process, or while this one was down, is honoured at once. Times are stored as
fixed-width ISO 8601 UTC text.
"""

from __future__ import annotations

import builtins
import dataclasses
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from gateway.access.authorizations import Authorization
from gateway.access.grants import (
    ACCOUNT_MAX,
    NOTHING_PENDING,
    PROJECT_MAX,
    PURPOSE_MAX,
    REASON_MAX,
    SELF_APPROVAL,
    Approval,
    Grant,
    GrantInvalid,
    PreviousAuthorization,
    RuleBroken,
    cameras_of,
    change_of,
    changed,
    check_window,
    each_field,
    members_of,
    moment,
    parse_stored,
    stamp,
    text_field,
)

from .authorizations import AuthorizationNotFound, AuthorizationStore
from .database import Connection
from .emergencies import EmergencyStore
from .masks import MaskStore


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
        self.districts: dict[str, str] = {}  # camera id -> district, for district scopes
        self.max_days = max_days
        self.clock = clock
        # The police's consents and emergency accesses, in the same database and
        # the same transactions as the grants they bound.
        self.authorizations = AuthorizationStore(db, lambda: self.clock())
        self.emergencies = EmergencyStore(db, lambda: self.clock())
        # Privacy masks set by administrators, and lifts of them for one grant.
        self.masks = MaskStore(db, lambda: self.clock())

    def set_camera_ids(
        self, camera_ids: Iterable[str], districts: dict[str, str] | None = None
    ) -> None:
        """The cameras a grant may name from now on: they follow the inventory."""
        self.camera_ids = frozenset(camera_ids)
        if districts is not None:
            self.districts = districts

    # -- writes: one BEGIN IMMEDIATE transaction each ------------------------------

    def create(
        self,
        *,
        project: str,
        purpose: str,
        members: Iterable[str],
        cameras: Iterable[str],
        starts_at: datetime | str,
        ends_at: datetime | str,
        created_by: str,
        authorization_id: int | None = None,
        authorization_ref: str | None = None,
        pending: bool = False,
    ) -> Grant:
        """A grant under a police authorization (by id, or by its reference: see
        `authorization_named`), inside its scope and validity. `pending`: it waits
        for a second person's approval (`approve`)."""
        checked = each_field(
            {
                "project": lambda: text_field(
                    "project", project, PROJECT_MAX, single_line=True, name=True
                ),
                "purpose": lambda: text_field("purpose", purpose, PURPOSE_MAX),
                "members": lambda: members_of(members),
                "cameras": lambda: self._cameras(cameras),
                "starts_at": lambda: moment("starts_at", starts_at),
                "ends_at": lambda: moment("ends_at", ends_at),
            }
        )
        project, purpose = checked["project"], checked["purpose"]
        member_set, camera_set = checked["members"], checked["cameras"]
        start, end = checked["starts_at"], checked["ends_at"]
        self._check_window(start, end)
        created_by = text_field("created_by", created_by, ACCOUNT_MAX, single_line=True)
        now = self.clock()
        approval = Approval("new", (created_by,), now) if pending else None
        with self._write():
            named = {"authorization_id": authorization_id, "authorization_ref": authorization_ref}
            authorization = self._authorization(self.authorization_named(named))
            self._check_fits(authorization, camera_set, start, end)
            cur = self.db.execute(
                "INSERT INTO grants (project, purpose, authorization_ref, starts_at, ends_at,"
                " created_by, created_at, updated_at, authorization_id, approval)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    project,
                    purpose,
                    authorization.reference,
                    stamp(start),
                    stamp(end),
                    created_by,
                    stamp(now),
                    stamp(now),
                    authorization.id,
                    approval.stored() if approval else None,
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
        needs_approval: bool = False,
        members: Iterable[str] | None = None,
        cameras: Iterable[str] | None = None,
        starts_at: datetime | str | None = None,
        ends_at: datetime | str | None = None,
        purpose: str | None = None,
        authorization_id: int | None = None,
        authorization_ref: str | None = None,
    ) -> tuple[Grant, Grant]:
        """Change the given fields; returns (before, after). Sets are replaced, not merged.

        The result must stay inside its police authorization (`authorization_id` moves
        it under another one; the old reference is kept). With `needs_approval`, a
        change that widens (more members or cameras, an earlier start, a later end,
        another authorization) waits for a second person: what narrows takes effect
        now, the rest is kept in the grant's `approval`. A grant still waiting for its
        first approval just changes, and whoever changed it cannot approve it.
        """
        # Who is accountable; the caller audits it.
        by = text_field("by", by, ACCOUNT_MAX, single_line=True)
        with self._write():
            if authorization_ref is not None:
                authorization_id = self.authorization_named(
                    {"authorization_ref": authorization_ref}
                )
            # Read inside the transaction so the checks see what we overwrite.
            before = self._get(grant_id)
            after = self._changed(
                before,
                by,
                members=members,
                cameras=cameras,
                starts_at=starts_at,
                ends_at=ends_at,
                purpose=purpose,
                authorization_id=authorization_id,
            )
            if after is before:
                return before, before
            waiting = before.approval
            if waiting is not None and waiting.kind == "new":
                after = dataclasses.replace(after, approval=waiting.by_also(by))
            elif needs_approval and before.widening(after):
                change = change_of(before, after)
                after = dataclasses.replace(
                    before.narrowed_toward(after),
                    approval=Approval("change", (by,), self.clock(), change),
                    updated_at=self.clock(),
                )
            self._write_grant(before, after, by)
            return before, self._get(grant_id)

    def approve(self, grant_id: int, *, by: str) -> tuple[Grant, Grant]:
        """A second person approves what waits: the grant opens, or its change takes
        effect (checked again against the grant and its authorization as they are now)."""
        by = text_field("by", by, ACCOUNT_MAX, single_line=True)
        with self._write():
            before = self._get(grant_id)
            waiting = before.approval
            if waiting is None or before.revoked_at is not None:
                raise RuleBroken(NOTHING_PENDING, "grant", "nothing waits for approval")
            if by in waiting.asked_by:
                raise RuleBroken(
                    SELF_APPROVAL, "grant", "who asked for or changed this cannot approve it"
                )
            after = before
            if waiting.kind == "change":
                after = self._changed(before, by, **waiting.change)
            else:
                self._check_fits(
                    self._authorization(before.authorization_id),
                    before.cameras,
                    before.starts_at,
                    before.ends_at,
                )
            now = self.clock()
            after = dataclasses.replace(
                after, approval=None, approved_by=by, approved_at=now, updated_at=now
            )
            self._write_grant(before, after, by)
            return before, self._get(grant_id)

    def decline(self, grant_id: int, *, by: str, reason: str) -> tuple[Grant, Grant]:
        """What waits is turned down: a new grant is revoked, a change dropped."""
        by = text_field("by", by, ACCOUNT_MAX, single_line=True)
        reason = text_field("reason", reason, REASON_MAX)
        with self._write():
            before = self._get(grant_id)
            if before.approval is None or before.revoked_at is not None:
                raise RuleBroken(NOTHING_PENDING, "grant", "nothing waits for approval")
            if before.approval.kind == "new":
                return before, self.revoke(grant_id, by=by, reason=reason)
            after = dataclasses.replace(before, approval=None, updated_at=self.clock())
            self._write_grant(before, after, by)
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

    def under(self, authorization_id: int) -> builtins.list[Grant]:
        """The grants an authorization covers, newest first."""
        with self._read():
            return self._load(
                self.db.execute(
                    "SELECT * FROM grants WHERE authorization_id = ? ORDER BY id DESC",
                    (authorization_id,),
                )
            )

    def unadopted(self) -> builtins.list[Grant]:
        """Grants made before authorizations were records (no authorization yet)."""
        with self._read():
            return self._load(
                self.db.execute("SELECT * FROM grants WHERE authorization_id IS NULL ORDER BY id")
            )

    def adopt(self, grant_id: int, authorization: Authorization) -> Grant:
        """Link an old grant to the authorization made from its reference."""
        self.db.execute(
            "UPDATE grants SET authorization_id = ? WHERE id = ? AND authorization_id IS NULL",
            (authorization.id, grant_id),
        )
        return self._get(grant_id)

    def _changed(self, before: Grant, by: str, **fields: Any) -> Grant:
        authorization_id = fields.pop("authorization_id", None)
        target = None
        if authorization_id is not None and authorization_id != before.authorization_id:
            target = self._authorization(authorization_id)
        after = changed(
            before,
            known_cameras=self.camera_ids,
            max_days=self.max_days,
            now=self.clock(),
            authorization=(target.id, target.reference) if target else None,
            by=by,
            **fields,
        )
        if after is not before:
            authorization = target or self._authorization(after.authorization_id)
            self._check_fits(authorization, after.cameras, after.starts_at, after.ends_at)
        return after

    def authorization_named(self, fields: dict[str, Any]) -> int:
        """The authorization a request names: `authorization_id`, or its reference
        `authorization_ref` (of several with one reference, the newest still in
        force). Pops both from `fields`."""
        authorization_id = fields.pop("authorization_id", None)
        reference = fields.pop("authorization_ref", None)
        if authorization_id is not None:
            if not isinstance(authorization_id, int) or isinstance(authorization_id, bool):
                raise GrantInvalid("authorization_id", "must be a police authorization's id")
            return authorization_id
        if reference is None:
            raise GrantInvalid("authorization_id", "name the police authorization")
        if not isinstance(reference, str) or not reference.strip():
            raise GrantInvalid("authorization_ref", "is required")
        now = self.clock()
        with self._read():
            found = self.authorizations.by_reference(reference.strip())
        current = [a for a in found if a.status(now) in ("confirmed", "unconfirmed")]
        if not (current or found):
            raise GrantInvalid(
                "authorization_ref",
                "no police authorization has this reference; a liaison records it first",
            )
        return (current or found)[0].id

    def _authorization(self, authorization_id: int | None) -> Authorization:
        try:
            if authorization_id is None:
                raise AuthorizationNotFound("none")
            return self.authorizations.get(authorization_id)
        except AuthorizationNotFound:
            raise GrantInvalid("authorization_id", "no such police authorization") from None

    def _check_fits(
        self, authorization: Authorization, cameras: frozenset[str], start: datetime, end: datetime
    ) -> None:
        if problem := authorization.outside(cameras, start, end, self.districts, self.clock()):
            raise problem

    def _write_grant(self, before: Grant, after: Grant, by: str) -> None:
        if after.authorization_ref != before.authorization_ref:
            replaced = after.previous_authorizations[-1]
            self.db.execute(
                "INSERT INTO grant_authorizations"
                " (grant_id, authorization_ref, replaced_at, replaced_by) VALUES (?, ?, ?, ?)",
                (before.id, replaced.authorization_ref, stamp(replaced.replaced_at), by),
            )
        self.db.execute(
            "UPDATE grants SET purpose = ?, authorization_ref = ?, authorization_id = ?,"
            " starts_at = ?, ends_at = ?, updated_at = ?, approval = ?, approved_by = ?,"
            " approved_at = ? WHERE id = ?",
            (
                after.purpose,
                after.authorization_ref,
                after.authorization_id,
                stamp(after.starts_at),
                stamp(after.ends_at),
                stamp(after.updated_at),
                after.approval.stored() if after.approval else None,
                after.approved_by,
                stamp(after.approved_at) if after.approved_at else None,
                before.id,
            ),
        )
        self._replace_sets(before.id, after.members, after.cameras)

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
        return [g for g in grants if g.status(now) in ("pending", "scheduled", "active")]

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
    reads a database made before grant_authorizations existed (schema version 1); a
    row without the columns of schema version 5 has no authorization or approval."""
    grants = []
    withdrawn: set[int] | None = None
    for row in rows:
        columns = row.keys()
        consent = "authorization_id" in columns
        if consent and withdrawn is None:
            withdrawn = {
                r[0]
                for r in cur.execute(
                    "SELECT id FROM authorizations WHERE state = 'withdrawn'"
                ).fetchall()
            }
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
                authorization_id=row["authorization_id"] if consent else None,
                approval=Approval.from_stored(row["approval"]) if consent else None,
                approved_by=row["approved_by"] if consent else None,
                approved_at=parse_stored(row["approved_at"])
                if consent and row["approved_at"]
                else None,
                withdrawn=consent and row["authorization_id"] in (withdrawn or set()),
            )
        )
    return grants
