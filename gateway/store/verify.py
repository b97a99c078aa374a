"""Offline verification of a gateway database (`gateway audit verify`): the audit
log's chain and anchor (audit.py), the tables the schema version promises, and that
every grant row equals what its last audited change recorded.

It opens the database read-only (a file, even on read-only media, or a PostgreSQL
URL) and reads in one snapshot, so a running gateway may keep writing meanwhile.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from . import postgres
from .audit import Cursor, audited_grants, walk_chain
from .database import Connection, is_postgres, schema_version, table_names, where
from .grants import load_grants


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


def _unreadable(problem: str) -> VerifyResult:
    return VerifyResult(ok=False, rows_checked=0, problem=problem, unreadable=True)


# What verify reads, by the schema version that made it (schema.MIGRATIONS); a
# gateway database without one of its tables was altered.
_TABLES = {
    1: ("audit", "audit_anchor", "grants", "grant_members", "grant_cameras"),
    2: ("grant_authorizations",),
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
        return _check_grants(cur, chain.rows_checked, with_history=version >= 2)
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
    audited = audited_grants(cur)
    rows = cur.execute("SELECT * FROM grants ORDER BY id").fetchall()
    grants = {g.id: g for g in load_grants(cur, rows, with_history=with_history)}
    checked = unchecked = 0
    for grant_id in sorted(set(audited) | set(grants)):
        grant = grants.get(grant_id)
        problem = None
        if grant_id not in audited:
            assert grant is not None
            problem = "has no audited change (written outside the API?)"
        else:
            seq, recorded = audited[grant_id]
            if grant is None:
                problem = f"was last audited in row {seq} but is gone (deleted outside the API?)"
            elif recorded is None:
                unchecked += 1
            elif grant.content_hash() != recorded:
                problem = (
                    f"differs from its last audited change in row {seq} (changed outside the API?)"
                )
            else:
                checked += 1
        if problem:
            name = f"grant {grant_id}" + (f" ({grant.project!r})" if grant else "")
            return VerifyResult(False, rows_checked, None, f"{name} {problem}")
    return VerifyResult(True, rows_checked, grants_checked=checked, grants_unchecked=unchecked)


def verify_database(location: str) -> VerifyResult:
    """Verify the database at `location` (a file or a PostgreSQL URL), read-only, for
    `gateway audit verify`. With several nodes the cluster has one chain: this checks
    all of it."""
    if not is_postgres(location):
        return verify_file(location)
    try:
        db = postgres.connect(location, migrate_schema=False, read_only=True)
    except postgres.PgError as exc:
        return _unreadable(str(exc))
    try:
        return verify_connection(db)
    except postgres.psycopg.errors.UndefinedTable as exc:
        return VerifyResult(False, 0, None, f"{where(location)}: {exc} (schema changed?)")
    except postgres.psycopg.Error as exc:
        return _unreadable(f"{where(location)}: {str(exc).splitlines()[0]}")
    finally:
        db.close()


def verify_file(path: str) -> VerifyResult:
    """Verify the database file at `path`, opened read-only (for `gateway audit verify`).

    `unreadable` tells "could not check" (missing file, not a database, permission,
    locked) from "checked and found broken", so a copy that cannot be opened is not
    reported as tampered with.
    """
    if not Path(path).is_file():
        return _unreadable(f"{path}: no such file")
    # Quote: a "?" or "#" in the path would otherwise end the file name in the URI.
    uri = f"file:{quote(path)}?mode=ro"
    try:
        try:
            db = _connect(uri)
        except sqlite3.OperationalError as exc:
            # A WAL database on read-only media (a copy, a snapshot) cannot get its
            # -shm file. With no WAL content beside it the file alone is complete and
            # cannot change, which is what SQLite's `immutable` means.
            if getattr(exc, "sqlite_errorname", "") != "SQLITE_CANTOPEN" or _has_wal(path):
                raise
            db = _connect(uri + "&immutable=1")
    except sqlite3.Error as exc:
        return _unreadable(f"{path}: {exc}")
    try:
        return verify_connection(db)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_ERROR":
            # Our fixed queries failed: a column or table is not what the gateway made.
            return VerifyResult(False, 0, None, f"{path}: {exc} (schema changed?)")
        return _unreadable(f"{path}: {exc}")
    finally:
        db.close()


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
