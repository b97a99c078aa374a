"""The gateway's database: grants and the audit log. Never video.

Two dialects, one interface (sqlite3's connection: `execute` with `?`
placeholders, explicit BEGIN/COMMIT, rows by name), so GrantStore and AuditLog
are written once:
- a SQLite file, the embedded default for one node. Opened in WAL mode so readers
  (the admin console, `gateway audit verify`) never block the writer. The schema
  is versioned with `PRAGMA user_version`; each entry of MIGRATIONS moves it up by
  one, in a transaction.
- a `postgresql://` URL, for several nodes (postgres.py, with its own migrations,
  which also hold the cluster's tables).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TypeAlias

import psycopg

from . import postgres
from .postgres import PgConnection, PgError, describe

Connection: TypeAlias = sqlite3.Connection | PgConnection
# What a failing database raises, whichever it is.
DB_ERRORS = (sqlite3.Error, psycopg.Error)

MIGRATIONS: list[str] = [
    # 1: grants, their members and cameras, and the hash-chained audit log.
    """
    CREATE TABLE grants (
        id INTEGER PRIMARY KEY,
        project TEXT NOT NULL,
        purpose TEXT NOT NULL,
        authorization_ref TEXT NOT NULL,
        starts_at TEXT NOT NULL,          -- ISO 8601, UTC
        ends_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT,
        revoke_reason TEXT
    );
    CREATE TABLE grant_members (
        grant_id INTEGER NOT NULL REFERENCES grants(id),
        account TEXT NOT NULL,
        PRIMARY KEY (grant_id, account)
    );
    CREATE INDEX grant_members_account ON grant_members(account);
    CREATE TABLE grant_cameras (
        grant_id INTEGER NOT NULL REFERENCES grants(id),
        camera_id TEXT NOT NULL,
        PRIMARY KEY (grant_id, camera_id)
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,          -- gapless, in order of writing
        at TEXT NOT NULL,                 -- ISO 8601, UTC
        event TEXT NOT NULL,
        account TEXT,
        camera_id TEXT,
        grant_id INTEGER,
        project TEXT,
        remote TEXT,
        session_id TEXT,
        detail TEXT NOT NULL,             -- JSON object
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL                -- sha256(prev_hash || canonical row content)
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_account ON audit(account);
    CREATE INDEX audit_camera ON audit(camera_id);
    CREATE INDEX audit_project ON audit(project);
    -- Where the chain starts after old rows were pruned (at most one row).
    CREATE TABLE audit_anchor (
        seq INTEGER NOT NULL,             -- the last pruned row
        hash TEXT NOT NULL
    );
    -- Append-only. Pruning is the one sanctioned delete; it drops rows through
    -- audit_pruning, which it fills inside its own transaction.
    CREATE TABLE audit_pruning (through_seq INTEGER NOT NULL);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    WHEN NOT EXISTS (SELECT 1 FROM audit_pruning WHERE OLD.seq <= through_seq)
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 2: the authorization references a grant ran under before its current one
    # (a window may grow only under a new reference; the old one is kept here).
    """
    CREATE TABLE grant_authorizations (
        id INTEGER PRIMARY KEY,           -- order of replacement
        grant_id INTEGER NOT NULL REFERENCES grants(id),
        authorization_ref TEXT NOT NULL,  -- the reference that was replaced
        replaced_at TEXT NOT NULL,        -- ISO 8601, UTC
        replaced_by TEXT NOT NULL         -- the administrator who gave the new one
    );
    CREATE INDEX grant_authorizations_grant ON grant_authorizations(grant_id);
    """,
]


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
    if version > len(MIGRATIONS):
        raise DatabaseError(
            f"schema version {version} is newer than this gateway ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
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
