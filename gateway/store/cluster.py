"""What several nodes share in PostgreSQL besides grants and the audit log: each node's
heartbeat, the directory of live sessions, used event-stream tickets, and messages.

Each function here gives a job for the Store (`read`, `write`, `submit`, or
`at_start`): `store.write(heartbeat(node, incarnation))` runs it in the Store's
writer thread on that thread's connection, never on the event loop, so the rest of
the gateway holds no connection and writes no SQL. The Listener reads in a thread
of its own. Messages go out with NOTIFY on one channel and reach every node that
LISTENs, the sender included (it ignores its own).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg

from .audit import AuditLog
from .grants import GrantStore
from .postgres import PgConnection, PgError, connect
from .store import Job

log = logging.getLogger(__name__)

CHANNEL = "cctv_gateway"
# NOTIFY payloads must stay under 8000 bytes; a longer message waits in a table and
# the notice carries its id.
NOTIFY_LIMIT = 7000
MESSAGE_KEEP_SECONDS = 60
REVOCATION_KEEP_SECONDS = 600
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0)

_DIRECTORY_COLUMNS = ("id", "node", "account", "camera_id", "grant_id", "project", "remote")

P = ParamSpec("P")
T = TypeVar("T")


def job(work: Callable[Concatenate[PgConnection, P], T]) -> Callable[P, Job[T]]:
    """`work(db, ...)` becomes a maker of Store jobs: `work(...)` is a job, run with
    the connection of whichever Store thread takes it."""

    @functools.wraps(work)
    def make(*args: P.args, **kwargs: P.kwargs) -> Job[T]:
        def run(grants: GrantStore, _: AuditLog) -> T:
            return work(grants.db, *args, **kwargs)

        return run

    return make


# --- nodes ----------------------------------------------------------------------


@job
def register(db: PgConnection, node: str, incarnation: str, address: str) -> None:
    """This node is up (again), as a new incarnation, reached at `address`."""
    db.execute(
        "INSERT INTO cluster_nodes (node, incarnation, started_at, heartbeat_at, address)"
        " VALUES (?, ?, now(), now(), ?) ON CONFLICT (node) DO UPDATE"
        " SET incarnation = EXCLUDED.incarnation, started_at = now(), heartbeat_at = now(),"
        " address = EXCLUDED.address",
        (node, incarnation, address),
    )


@job
def addresses(db: PgConnection, timeout_seconds: float) -> dict[str, str]:
    """The nodes heard from within `timeout_seconds`, and where they are reached."""
    rows = db.execute(
        "SELECT node, address FROM cluster_nodes WHERE address IS NOT NULL"
        " AND heartbeat_at > now() - make_interval(secs => ?)",
        (timeout_seconds,),
    ).fetchall()
    return {node: address for node, address in rows}


@job
def last_heartbeat(db: PgConnection, node: str) -> tuple[str, datetime] | None:
    """The incarnation and last heartbeat of `node`, if it is registered."""
    row = db.execute(
        "SELECT incarnation, heartbeat_at FROM cluster_nodes WHERE node = ?", (node,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


@job
def heartbeat(db: PgConnection, node: str, incarnation: str) -> bool:
    """Renew this node's heartbeat; False if another node has declared it lost."""
    updated = db.execute(
        "UPDATE cluster_nodes SET heartbeat_at = now() WHERE node = ? AND incarnation = ?",
        (node, incarnation),
    ).rowcount
    db.execute(
        "DELETE FROM cluster_messages WHERE sent_at < now() - make_interval(secs => ?)",
        (MESSAGE_KEEP_SECONDS,),
    )
    db.execute(
        "DELETE FROM cluster_revocations WHERE sent_at < now() - make_interval(secs => ?)",
        (REVOCATION_KEEP_SECONDS,),
    )
    return updated == 1


@job
def close_out_lost_nodes(db: PgConnection, me: str, timeout_seconds: float) -> dict[str, int]:
    """Close out, in the audit log and the directory, the sessions of every node whose
    heartbeat is older than `timeout_seconds`; node -> sessions closed out.

    Each node is handled in one write transaction (the cluster-wide write lock), and
    its staleness is checked again inside it: a node that restarted meanwhile, or
    that another survivor already handled, is left alone.
    """
    stale = db.execute(
        "SELECT node FROM cluster_nodes WHERE node <> ?"
        " AND heartbeat_at < now() - make_interval(secs => ?)",
        (me, timeout_seconds),
    ).fetchall()
    audit = AuditLog(db)  # on this connection: the close-out joins each transaction
    closed = {}
    for (node,) in stale:
        db.execute("BEGIN IMMEDIATE")
        try:
            still = db.execute(
                "SELECT 1 FROM cluster_nodes WHERE node = ?"
                " AND heartbeat_at < now() - make_interval(secs => ?)",
                (node, timeout_seconds),
            ).fetchone()
            if still:
                closed[node] = audit.close_out_sessions(
                    f"{node}.", reason=f"gateway node {node} lost", code="node_lost"
                )
                db.execute("DELETE FROM live_sessions WHERE node = ?", (node,))
                db.execute("DELETE FROM cluster_nodes WHERE node = ?", (node,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return closed


@job
def leave(db: PgConnection, node: str, incarnation: str) -> None:
    """A clean stop: nobody need take this node for dead."""
    db.execute("DELETE FROM cluster_nodes WHERE node = ? AND incarnation = ?", (node, incarnation))


@job
def forget_sessions(db: PgConnection, node: str) -> None:
    """At a node's start: the sessions its last run left in the directory are gone."""
    db.execute("DELETE FROM live_sessions WHERE node = ?", (node,))


# --- the directory of live sessions -----------------------------------------------


@job
def add_session(db: PgConnection, session: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO live_sessions (id, node, account, camera_id, grant_id, project, remote,"
        " started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (*(session[c] for c in _DIRECTORY_COLUMNS), session["started_at"]),
    )


@job
def remove_session(db: PgConnection, session_id: str) -> None:
    db.execute("DELETE FROM live_sessions WHERE id = ?", (session_id,))


@job
def sessions(db: PgConnection, *, not_on: str | None = None) -> list[dict[str, Any]]:
    """Live sessions, oldest first; `not_on` leaves out one node's."""
    sql = "SELECT * FROM live_sessions"
    params: tuple[Any, ...] = ()
    if not_on is not None:
        sql += " WHERE node <> ?"
        params = (not_on,)
    rows = db.execute(sql + " ORDER BY started_at, id", params).fetchall()
    return [dict(zip(row.keys(), row, strict=True)) for row in rows]


@job
def find_session(db: PgConnection, session_id: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM live_sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else dict(zip(row.keys(), row, strict=True))


@job
def count_sessions(db: PgConnection, account: str, *, not_on: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM live_sessions WHERE account = ? AND node <> ?", (account, not_on)
    ).fetchone()
    return int(row[0]) if row else 0


# --- event-stream tickets ---------------------------------------------------------


@job
def secret(db: PgConnection) -> str:
    """The key every node signs and checks event-stream tickets with (made at migration)."""
    row = db.execute("SELECT secret FROM cluster_secret WHERE id = 1").fetchone()
    if row is None:
        raise PgError("the cluster's ticket key is missing (cluster_secret)")
    return str(row[0])


@job
def use_ticket(db: PgConnection, nonce: str, expires_at: datetime) -> bool:
    """Mark a ticket used; False if it already was (on any node)."""
    db.execute("DELETE FROM used_tickets WHERE expires_at < now()")
    inserted = db.execute(
        "INSERT INTO used_tickets (nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (nonce, expires_at),
    ).rowcount
    return inserted == 1


# --- messages ---------------------------------------------------------------------


@job
def send(db: PgConnection, message: dict[str, Any]) -> None:
    """NOTIFY every node (inside a transaction, when that commits)."""
    _notify(db, message)


@job
def send_revocation(db: PgConnection, message: dict[str, Any]) -> None:
    """A revocation is kept as well as sent (with its id): a node that was not
    listening when it went out finds it with `revocations_since`."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    row = db.execute(
        "INSERT INTO cluster_revocations (message) VALUES (?) RETURNING id", (text,)
    ).fetchone()
    _notify(db, {**message, "revocation": row[0]})


def _notify(db: PgConnection, message: dict[str, Any]) -> None:
    payload = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)
    if len(payload.encode()) > NOTIFY_LIMIT:
        row = db.execute(
            "INSERT INTO cluster_messages (payload) VALUES (?) RETURNING id", (payload,)
        ).fetchone()
        payload = json.dumps({"ref": row[0]})
    db.notify(CHANNEL, payload)


@job
def last_revocation(db: PgConnection) -> int:
    row = db.execute("SELECT max(id) FROM cluster_revocations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


@job
def revocations_since(db: PgConnection, after_id: int, seconds: float) -> list[dict[str, Any]]:
    """Revocations after `after_id` sent in the last `seconds`, oldest first."""
    rows = db.execute(
        "SELECT id, message FROM cluster_revocations WHERE id > ?"
        " AND sent_at > now() - make_interval(secs => ?) ORDER BY id",
        (after_id, seconds),
    ).fetchall()
    return [{**json.loads(message), "revocation": rid} for rid, message in rows]


class Listener:
    """A thread that LISTENs on its own connection and hands each message to
    `deliver` (called in this thread: it must hand over to the event loop itself).
    It reconnects by itself; `on_connect` is called after each (re)connection, since
    messages sent while it was away are lost (the grant sweep is the safety net)."""

    def __init__(
        self,
        url: str,
        deliver: Callable[[dict[str, Any]], None],
        on_connect: Callable[[], None],
        on_disconnect: Callable[[], None],
    ) -> None:
        self._url = url
        self._deliver = deliver
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-listener", daemon=True)
        self._db: PgConnection | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._db = connect(
                    self._url, migrate_schema=False, brief=True, name="cctv-gateway listener"
                )
                self._db.raw.execute(f"LISTEN {CHANNEL}")
                failures = 0
                self._on_connect()
                while not self._stop.is_set():
                    for notice in self._db.raw.notifies(timeout=0.5):
                        self._handle(notice.payload)
            except (psycopg.Error, PgError) as exc:
                if failures == 0:
                    log.warning("cluster messages interrupted (%s); reconnecting", _short(exc))
                    self._on_disconnect()
                time.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
                failures += 1
            finally:
                if self._db is not None:
                    with contextlib.suppress(psycopg.Error):
                        self._db.close()
                    self._db = None

    def _handle(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if isinstance(message, dict) and set(message) == {"ref"}:
                assert self._db is not None
                row = self._db.execute(
                    "SELECT payload FROM cluster_messages WHERE id = ?", (message["ref"],)
                ).fetchone()
                if row is None:
                    return
                message = json.loads(row[0])
        except (ValueError, TypeError):
            log.warning("cluster message that is not JSON ignored")
            return
        if isinstance(message, dict):
            self._deliver(message)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
