"""Offline verification of a gateway database (`gateway audit verify`): the audit
log's chain and anchor (audit.py), the tables the schema version promises, and that
every grant row equals what its last audited change recorded.

It opens the database read-only (a file, even on read-only media, or a PostgreSQL
URL) and reads in one snapshot, so a running gateway may keep writing meanwhile.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from . import postgres
from .audit import Cursor, audited_records, walk_chain
from .authorizations import load_authorizations
from .database import Connection, is_postgres, schema_version, table_names, where
from .emergencies import load_emergencies
from .grants import load_grants

T = TypeVar("T")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int  # rows found intact (before the first bad one)
    first_bad_seq: int | None = None
    problem: str | None = None
    # The file could not be read (missing, not a database, no permission, locked):
    # nothing was checked, so this says nothing about tampering.
    unreadable: bool = False
    grants_checked: int = 0  # grant rows found equal to their last audited change
    # Grants whose last audited change predates grant hashes: not comparable.
    grants_unchecked: int = 0
    # Police authorizations and emergency accesses found equal to theirs.
    records_checked: int = 0
    # The last row of the chain, which a printed report names: (seq, hash).
    head: tuple[int, str] | None = None


def _unreadable(problem: str) -> VerifyResult:
    return VerifyResult(ok=False, rows_checked=0, problem=problem, unreadable=True)


# What verify reads, by the schema version that made it (schema.MIGRATIONS); a
# gateway database without one of its tables was altered.
_TABLES = {
    1: ("audit", "audit_anchor", "grants", "grant_members", "grant_cameras"),
    2: ("grant_authorizations",),
    5: ("authorizations", "authorization_scope", "emergencies"),
}
# How long verify waits for a writer that locks readers out before it gives up.
VERIFY_BUSY_SECONDS = 2.0


def verify_connection(db: Connection) -> VerifyResult:
    """Verify the chain, the anchor and every grant row, in one read snapshot, so a
    concurrent writer cannot confuse it.

    A database error escapes: the caller decides whether that means "cannot read".
    """
    cur = db.cursor()
    cur.row_factory = sqlite3.Row
    own = not db.in_transaction
    try:
        if own:
            cur.execute("BEGIN")
        version = schema_version(db)
        problem = _schema_problem(table_names(db), version)
        if problem is not None:
            return problem
        chain = walk_chain(cur)
        if not chain.ok:
            return VerifyResult(False, chain.rows_checked, chain.first_bad_seq, chain.problem)
        head_row = cur.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        head = (head_row["seq"], head_row["hash"]) if head_row else None
        result = _check_grants(cur, chain.rows_checked, with_history=version >= 2)
        if result.ok and version >= 5:
            result = _check_consent(cur, result)
        return dataclasses.replace(result, head=head)
    finally:
        if own and db.in_transaction:
            db.execute("COMMIT")


def _schema_problem(tables: set[str], version: int) -> VerifyResult | None:
    if version == 0 and "audit" not in tables:
        return _unreadable("not a gateway database (no audit log in it)")
    expected = [t for since, names in _TABLES.items() if version >= since for t in names]
    missing = [table for table in expected if table not in tables]
    if not missing:
        return None
    return VerifyResult(False, 0, None, f"table {', '.join(missing)} is missing (schema changed?)")


def _check_grants(cur: Cursor, rows_checked: int, *, with_history: bool) -> VerifyResult:
    """Every grant row must equal what its last audited change recorded (its content
    hash): a grant added, edited or deleted outside the API does not."""
    rows = cur.execute("SELECT * FROM grants ORDER BY id").fetchall()
    grants = {g.id: g for g in load_grants(cur, rows, with_history=with_history)}
    problem, checked, unchecked = _compare(
        audited_records(cur, "grant"), grants, lambda g: f"grant {g.id} ({g.project!r})", "grant"
    )
    if problem:
        return VerifyResult(False, rows_checked, None, problem)
    return VerifyResult(True, rows_checked, grants_checked=checked, grants_unchecked=unchecked)


def _check_consent(cur: Cursor, so_far: VerifyResult) -> VerifyResult:
    """The same for police authorizations and emergency accesses."""
    rows = cur.execute("SELECT * FROM authorizations ORDER BY id").fetchall()
    authorizations = {a.id: a for a in load_authorizations(cur, rows)}
    emergencies = {
        e.id: e
        for e in load_emergencies(cur.execute("SELECT * FROM emergencies ORDER BY id").fetchall())
    }
    checked = 0
    for kind, records, name in (
        ("authorization", authorizations, lambda a: f"authorization {a.id} ({a.reference!r})"),
        ("emergency", emergencies, lambda e: f"emergency access {e.id}"),
    ):
        problem, found, _ = _compare(audited_records(cur, kind), records, name, kind)
        if problem:
            return dataclasses.replace(so_far, ok=False, problem=problem)
        checked += found
    return dataclasses.replace(so_far, records_checked=checked)


def _compare(
    audited: dict[int, tuple[int, str | None]],
    records: dict[int, Any],
    name: Any,
    kind: str,
) -> tuple[str | None, int, int]:
    """(the first problem, how many records matched, how many could not be compared)."""
    checked = unchecked = 0
    for record_id in sorted(set(audited) | set(records)):
        record = records.get(record_id)
        if record_id not in audited:
            return f"{name(record)} has no audited change (written outside the API?)", 0, 0
        seq, recorded = audited[record_id]
        if record is None:
            return (
                f"{kind} {record_id} was last audited in row {seq} but is gone"
                " (deleted outside the API?)",
                0,
                0,
            )
        if recorded is None:
            unchecked += 1
        elif record.content_hash() != recorded:
            return (
                f"{name(record)} differs from its last audited change in row {seq}"
                " (changed outside the API?)",
                0,
                0,
            )
        else:
            checked += 1
    return None, checked, unchecked


def verify_database(location: str) -> VerifyResult:
    """Verify the database at `location` (a file or a PostgreSQL URL), read-only, for
    `gateway audit verify`. With several nodes the cluster has one chain: this checks
    all of it. `unreadable` tells "could not check" (missing file, not a database,
    permission, locked) from "checked and found broken", so a copy that cannot be
    opened is not reported as tampered with."""
    _, result = read_and_verify(location, None)
    return result


def read_and_verify(
    location: str, job: Callable[[Cursor], T] | None
) -> tuple[T | None, VerifyResult]:
    """Run `job` on a read-only connection to `location`, then verify, both in one
    snapshot (the report reads its period and ends with the verification of the
    very chain it read). The job's result is None when the database is unreadable."""
    try:
        db = _open_read_only(location)
    except _Unreadable as exc:
        return None, _unreadable(str(exc))
    try:
        db.execute("BEGIN")
        try:
            found = job(db) if job is not None else None
            return found, verify_connection(db)
        finally:
            if db.in_transaction:
                db.execute("COMMIT")
    except postgres.psycopg.errors.UndefinedTable as exc:
        return None, VerifyResult(False, 0, None, f"{where(location)}: {exc} (schema changed?)")
    except postgres.psycopg.Error as exc:
        return None, _unreadable(f"{where(location)}: {str(exc).splitlines()[0]}")
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_ERROR":
            # Our fixed queries failed: a column or table is not what the gateway made.
            return None, VerifyResult(False, 0, None, f"{location}: {exc} (schema changed?)")
        return None, _unreadable(f"{location}: {exc}")
    finally:
        db.close()


def verify_file(path: str) -> VerifyResult:
    """Verify the database file at `path`, opened read-only."""
    return verify_database(path)


class _Unreadable(Exception):
    pass


def _open_read_only(location: str) -> Connection:
    if is_postgres(location):
        try:
            return postgres.connect(location, migrate_schema=False, read_only=True)
        except postgres.PgError as exc:
            raise _Unreadable(str(exc)) from None
    path = location
    if not Path(path).is_file():
        raise _Unreadable(f"{path}: no such file")
    # Quote: a "?" or "#" in the path would otherwise end the file name in the URI.
    uri = f"file:{quote(path)}?mode=ro"
    try:
        try:
            return _connect(uri)
        except sqlite3.OperationalError as exc:
            # A WAL database on read-only media (a copy, a snapshot) cannot get its
            # -shm file. With no WAL content beside it the file alone is complete and
            # cannot change, which is what SQLite's `immutable` means.
            if getattr(exc, "sqlite_errorname", "") != "SQLITE_CANTOPEN" or _has_wal(path):
                raise
            return _connect(uri + "&immutable=1")
    except sqlite3.Error as exc:
        raise _Unreadable(f"{path}: {exc}") from None


def _connect(uri: str) -> sqlite3.Connection:
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=VERIFY_BUSY_SECONDS)
    db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # open it now, not later
    return db


def _has_wal(path: str) -> bool:
    wal = Path(path + "-wal")
    try:
        return wal.stat().st_size > 0
    except FileNotFoundError:
        return False
