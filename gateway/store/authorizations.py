"""AuthorizationStore: the police's consents, read afresh on every call, and the
adoption of old grants' free-text references as unconfirmed authorizations."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from gateway.access.authorizations import Authorization, AuthorizationFields, purpose_class
from gateway.access.grants import (
    ACCOUNT_MAX,
    REASON_MAX,
    GrantInvalid,
    parse_stored,
    stamp,
    text_field,
)

from .database import Connection


class AuthorizationNotFound(LookupError):
    pass


class AuthorizationStore:
    """Runs inside the caller's transaction (GrantStore's `_write`/`_read`)."""

    def __init__(self, db: Connection, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def create(self, fields: AuthorizationFields, *, by: str, confirmed: bool) -> Authorization:
        """Recorded by a liaison (`confirmed`), or entered by an administrator on a
        liaison's behalf (unconfirmed until a liaison confirms it)."""
        now = stamp(self.clock())
        cur = self.db.execute(
            "INSERT INTO authorizations (reference, starts_at, ends_at, purpose_class, note,"
            " entered_by, entered_at, state, on_behalf_of, confirmed_by, confirmed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                fields.reference,
                stamp(fields.starts_at),
                stamp(fields.ends_at),
                fields.purpose_class,
                fields.note,
                by,
                now,
                "confirmed" if confirmed else "unconfirmed",
                fields.on_behalf_of,
                by if confirmed else None,
                now if confirmed else None,
            ),
        )
        authorization_id = cur.fetchone()[0]
        self._scope(authorization_id, fields.cameras, fields.districts)
        return self.get(authorization_id)

    def confirm(self, authorization_id: int, *, by: str, purpose: object = None) -> Authorization:
        """A liaison confirms what an administrator entered (an adopted one needs its
        purpose class stated now)."""
        before = self.get(authorization_id)
        if before.state != "unconfirmed":
            raise GrantInvalid("authorization", f"is {before.state}, not unconfirmed")
        chosen = before.purpose_class if purpose is None else purpose_class(purpose)
        if chosen is None:
            chosen = purpose_class(purpose)  # raises: an adopted one must state it
        self.db.execute(
            "UPDATE authorizations SET state = 'confirmed', confirmed_by = ?, confirmed_at = ?,"
            " purpose_class = ? WHERE id = ?",
            (by, stamp(self.clock()), chosen, authorization_id),
        )
        return self.get(authorization_id)

    def withdraw(self, authorization_id: int, *, by: str, reason: str) -> Authorization:
        reason = text_field("reason", reason, REASON_MAX)
        by = text_field("by", by, ACCOUNT_MAX, single_line=True)
        if self.get(authorization_id).state == "withdrawn":
            raise GrantInvalid("authorization", "already withdrawn")
        self.db.execute(
            "UPDATE authorizations SET state = 'withdrawn', withdrawn_by = ?, withdrawn_at = ?,"
            " withdraw_reason = ? WHERE id = ?",
            (by, stamp(self.clock()), reason, authorization_id),
        )
        return self.get(authorization_id)

    def get(self, authorization_id: int) -> Authorization:
        found = self._load(
            self.db.execute("SELECT * FROM authorizations WHERE id = ?", (authorization_id,))
        )
        if not found:
            raise AuthorizationNotFound(f"authorization {authorization_id} not found")
        return found[0]

    def find(self, authorization_id: int) -> Authorization | None:
        try:
            return self.get(authorization_id)
        except AuthorizationNotFound:
            return None

    def by_reference(self, reference: str) -> builtins.list[Authorization]:
        return self._load(
            self.db.execute(
                "SELECT * FROM authorizations WHERE reference = ? ORDER BY id DESC", (reference,)
            )
        )

    def list(self) -> builtins.list[Authorization]:
        return self._load(self.db.execute("SELECT * FROM authorizations ORDER BY id DESC"))

    def withdrawn_ids(self, ids: Iterable[int]) -> set[int]:
        wanted = set(ids)
        if not wanted:
            return set()
        rows = self.db.execute("SELECT id FROM authorizations WHERE state = 'withdrawn'").fetchall()
        return {row[0] for row in rows} & wanted

    def _scope(
        self, authorization_id: int, cameras: Iterable[str], districts: Iterable[str]
    ) -> None:
        self.db.executemany(
            "INSERT INTO authorization_scope (authorization_id, kind, name) VALUES (?, ?, ?)",
            [(authorization_id, "camera", c) for c in sorted(cameras)]
            + [(authorization_id, "district", d) for d in sorted(districts)],
        )

    def _load(self, cursor: Any) -> builtins.list[Authorization]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return load_authorizations(cur, cursor.fetchall())


def load_authorizations(cur: Any, rows: Iterable[Any]) -> list[Authorization]:
    """Authorizations from their rows, with their scope read through `cur`."""
    found = []
    for row in rows:
        scope = cur.execute(
            "SELECT kind, name FROM authorization_scope WHERE authorization_id = ?", (row["id"],)
        ).fetchall()
        found.append(
            Authorization(
                id=row["id"],
                reference=row["reference"],
                cameras=frozenset(r[1] for r in scope if r[0] == "camera"),
                districts=frozenset(r[1] for r in scope if r[0] == "district"),
                starts_at=parse_stored(row["starts_at"]),
                ends_at=parse_stored(row["ends_at"]),
                purpose_class=row["purpose_class"],
                note=row["note"],
                entered_by=row["entered_by"],
                entered_at=parse_stored(row["entered_at"]),
                state=row["state"],
                on_behalf_of=row["on_behalf_of"],
                confirmed_by=row["confirmed_by"],
                confirmed_at=_moment(row["confirmed_at"]),
                withdrawn_by=row["withdrawn_by"],
                withdrawn_at=_moment(row["withdrawn_at"]),
                withdraw_reason=row["withdraw_reason"],
            )
        )
    return found


def _moment(text: str | None) -> datetime | None:
    return parse_stored(text) if text else None


def adoption_plan(grants: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """For grants without an authorization (made before authorizations were records):
    per reference, the authorization to adopt: the cameras and the span of every
    grant that ran under it."""
    plan: dict[str, dict[str, Any]] = {}
    for grant in grants:
        entry = plan.setdefault(
            grant.authorization_ref,
            {
                "cameras": set(),
                "starts_at": grant.starts_at,
                "ends_at": grant.ends_at,
                "grants": [],
            },
        )
        entry["cameras"] |= grant.cameras
        entry["starts_at"] = min(entry["starts_at"], grant.starts_at)
        entry["ends_at"] = max(entry["ends_at"], grant.ends_at)
        entry["grants"].append(grant)
    return plan


def adopted(reference: str, entry: dict[str, Any], now: datetime) -> AuthorizationFields:
    return AuthorizationFields(
        reference=reference,
        cameras=frozenset(entry["cameras"]),
        districts=frozenset(),
        starts_at=entry["starts_at"],
        ends_at=entry["ends_at"],
        purpose_class=None,  # not known: a liaison states it when confirming
        note=f"adopted on {now.date().isoformat()} from grants' reference",
        on_behalf_of=None,
    )
