"""The gateway's database: grants and the audit log. Never video.

Two dialects, one interface (sqlite3's connection: `execute` with `?`
placeholders, explicit BEGIN/COMMIT, rows by name), so GrantStore and AuditLog
are written once, and one schema (schema.py):
- a SQLite file, the embedded default for one node. Opened in WAL mode so readers
  (the admin console, `gateway audit verify`) never block the writer. The schema
  version is `PRAGMA user_version`; each migration moves it up in a transaction.
- a `postgresql://` URL, for several nodes (postgres.py; its schema also holds the
  cluster's tables).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TypeAlias

import psycopg

from . import postgres, schema
from .postgres import PgConnection, PgError, describe

Connection: TypeAlias = sqlite3.Connection | PgConnection
# What a failing database raises, whichever it is.
DB_ERRORS = (sqlite3.Error, psycopg.Error)


class DatabaseError(Exception):
    """The database cannot be used; the message names the file or server (never a
    password) and the problem."""


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def where(location: str | Path) -> str:
    """The database, as it may be shown: a file name, or the URL without its password."""
    return describe(str(location)) if is_postgres(location) else str(location)


def open_database(
    location: str | Path, *, busy_timeout_ms: int = 5000, migrate_schema: bool = True
) -> Connection:
    """Open (creating if needed) and migrate the database: a file, or a PostgreSQL URL.

    The gateway's reader and writer threads wait for a lock only briefly and retry
    themselves, so a lock held elsewhere never holds a thread for long.
    """
    if is_postgres(location):
        try:
            # The store's threads open theirs with a brief lock wait: brief statements.
            brief = busy_timeout_ms < 5000
            return postgres.connect(str(location), migrate_schema=migrate_schema, brief=brief)
        except PgError as exc:
            raise DatabaseError(str(exc)) from None
    return open_sqlite(location, busy_timeout_ms=busy_timeout_ms, migrate_schema=migrate_schema)


def open_sqlite(
    path: str | Path, *, busy_timeout_ms: int = 5000, migrate_schema: bool = True
) -> sqlite3.Connection:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Explicit transactions only; the connection is used by one thread at a time.
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if migrate_schema:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        if migrate_schema:
            migrate(db)
    except (sqlite3.Error, OSError) as exc:
        raise DatabaseError(f"{path}: {exc}") from None
    return db


def schema_version(db: Connection) -> int:
    """How far the schema was migrated (the same numbers for grants and the audit
    log in both dialects; PostgreSQL adds the cluster's tables after them)."""
    if isinstance(db, PgConnection):
        return postgres.schema_version(db)
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def table_names(db: Connection) -> set[str]:
    if isinstance(db, PgConnection):
        return postgres.table_names(db)
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    latest = schema.latest(schema.SQLITE)
    if version > latest:
        raise DatabaseError(f"schema version {version} is newer than this gateway ({latest})")
    for number, script in schema.pending(schema.SQLITE, version):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements; triggers keep their inner semicolons."""
    statements, current = [], ""
    for line in script.splitlines():
        line = line.split("--", 1)[0].rstrip()
        if not line:
            continue
        current += line + "\n"
        if current.rstrip().endswith(";") and sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    return statements
