"""PostgreSQL, for several gateway nodes: the same GrantStore and AuditLog as on SQLite.

psycopg 3, synchronous, in the Store's own reader and writer threads (never on the
event loop, like SQLite). PgConnection speaks the part of sqlite3's connection
interface that the store uses, so the SQL is written once:
- `?` placeholders become `%s`;
- `BEGIN IMMEDIATE` (SQLite: one writer at a time) becomes BEGIN plus a
  transaction-scoped advisory lock that every node's writer takes. Writes are
  serialized across the cluster as they are within one SQLite file, which is what
  keeps the audit log one hash chain: an append reads the last row and adds the
  next, and no other node can append in between;
- a plain `BEGIN` (a read of several tables) is a REPEATABLE READ snapshot;
- rows answer to `row["name"]` and `row[0]`, like sqlite3.Row.

The schema (schema.py) is versioned in `gateway_schema`; migrations run at start-up
under a session advisory lock, so nodes that start together migrate once, one after
another.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq

from . import schema

# Advisory lock keys (any 64-bit numbers, the same on every node).
WRITE_LOCK = 0x63637476_00000001  # "cctv" 1: one writer at a time, cluster-wide
MIGRATE_LOCK = 0x63637476_00000002  # schema migrations
NODE_LOCK_BASE = 0x63637476_00010000  # + a node's number: closing out that node's sessions

CONNECT_SECONDS = 3
# A transaction left open by a node that froze does not hold the write lock for ever.
TIMEOUTS = {"idle_in_transaction_session_timeout": 10000}
# The store's running threads: a statement or a lock wait never holds one for long
# (the writer retries; a read fails closed). Start-up work (migration, pruning, closing
# out) and `audit verify` may take longer over a large audit log, and go without.
BRIEF = {"statement_timeout": 5000, "lock_timeout": 4000}


class PgError(Exception):
    """PostgreSQL cannot be used; the message names the server, never the password."""


def describe(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "postgresql://(unparsable URL)"
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _mask(text: str, url: str) -> str:
    password = _password(url)
    return text.replace(password, "***") if password else text


class Row:
    """One result row: by column name or by position, like sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _rows(cursor: psycopg.Cursor[Any]) -> Any:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(index, values)


@lru_cache(maxsize=512)
def _translate(sql: str, with_params: bool) -> tuple[str, ...]:
    statement = sql.strip().rstrip(";").strip()
    if statement.upper() == "BEGIN IMMEDIATE":
        return ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
    if statement.upper() == "BEGIN":
        return ("BEGIN ISOLATION LEVEL REPEATABLE READ",)
    if not with_params:
        return (sql,)
    return (sql.replace("%", "%%").replace("?", "%s"),)


class PgCursor:
    """A cursor with sqlite3's manners: execute returns the cursor; rows are Rows."""

    row_factory: Any = None  # set by code written for sqlite3; rows are always Rows
    lastrowid = None

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        statements = _translate(sql, bool(params))
        for statement in statements[:-1]:
            self._cursor.execute(statement)
        self._cursor.execute(statements[-1], list(params) if params else None)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> PgCursor:
        rows = list(rows)
        if rows:
            (statement,) = _translate(sql, True)
            self._cursor.executemany(statement, rows)
        return self

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class PgConnection:
    """A psycopg connection in autocommit mode, with sqlite3's interface (above):
    transactions are explicit BEGIN/COMMIT, as the store's SQLite connections are."""

    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any], url: str) -> None:
        self.raw = raw
        self.url = url

    def cursor(self) -> PgCursor:
        return PgCursor(self.raw.cursor(row_factory=_rows))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        return self.cursor().execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> PgCursor:
        return self.cursor().executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        """The connection is gone (server stopped, network): open a new one."""
        return self.raw.closed or self.raw.broken

    def notify(self, channel: str, payload: str) -> None:
        """Send on `channel`; inside a transaction it goes out when that commits."""
        self.raw.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def close(self) -> None:
        self.raw.close()


def connect(
    url: str,
    *,
    migrate_schema: bool = True,
    read_only: bool = False,
    brief: bool = False,
    name: str = "cctv-gateway",
) -> PgConnection:
    """Connect (and migrate, unless told not to); PgError names the server, never
    the password. `brief`: statements and lock waits are cut short (BRIEF)."""
    limits = {**TIMEOUTS, **(BRIEF if brief else {})}
    options = " ".join(f"-c {name}={value}" for name, value in limits.items())
    if read_only:
        options += " -c default_transaction_read_only=on"
    try:
        raw = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_SECONDS,
            options=options,
            application_name=name,  # what pg_stat_activity shows
            # A server that vanished (power, network) is noticed in seconds.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            tcp_user_timeout=6000,
        )
    except psycopg.Error as exc:
        raise PgError(f"{describe(url)}: {_reason(exc, url)}") from None
    except Exception as exc:  # e.g. a malformed URL, refused by libpq
        raise PgError(f"{describe(url)}: {_mask(str(exc), url).splitlines()[0]}") from None
    db = PgConnection(raw, url)
    if migrate_schema:
        try:
            migrate(db)
        except (psycopg.Error, PgError) as exc:
            db.close()
            raise PgError(f"{describe(url)}: {_reason(exc, url)}") from None
    return db


def _reason(exc: BaseException, url: str) -> str:
    lines = [line.strip() for line in _mask(str(exc), url).splitlines() if line.strip()]
    return "; ".join(lines[:2]) or type(exc).__name__


def migrate(db: PgConnection) -> None:
    """Bring the schema up to date, one node at a time (the others wait for the lock)."""
    db.raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
    try:
        db.raw.execute("CREATE TABLE IF NOT EXISTS gateway_schema (version INTEGER NOT NULL)")
        version = schema_version(db)
        latest = schema.latest(schema.POSTGRESQL)
        if version > latest:
            raise PgError(f"schema version {version} is newer than this gateway ({latest})")
        for number, script in schema.pending(schema.POSTGRESQL, version):
            with db.raw.transaction():
                db.raw.execute(script)
                db.raw.execute("DELETE FROM gateway_schema")
                db.raw.execute("INSERT INTO gateway_schema (version) VALUES (%s)", (number,))
        # The key that signs event-stream tickets, made once for the whole cluster.
        db.raw.execute(
            "INSERT INTO cluster_secret (id, secret) VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
            (secrets.token_hex(32),),
        )
    finally:
        db.raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))


def schema_version(db: PgConnection) -> int:
    exists = db.raw.execute("SELECT to_regclass('gateway_schema') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = db.raw.execute("SELECT max(version) FROM gateway_schema").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def table_names(db: PgConnection) -> set[str]:
    rows = db.raw.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    ).fetchall()
    return {row[0] for row in rows}
