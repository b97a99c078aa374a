"""ClusterNode: this gateway as one node of several that share a PostgreSQL database.

- **The directory.** Each session that starts here is listed in the database and
  struck off when it ends, so every node's admin list shows it, a revocation
  sent to any node finds it, and an account's limit counts it.
- **Messages** (NOTIFY, sent through the store's ordered writer, so a message about
  a change goes out after the change is committed):
  - a revocation of a session or an account reaches the node that holds it;
  - a grant change makes every node sweep its sessions at once. The sweep twice
    a second stays the safety net, for messages lost while a node was away;
  - an event published here reaches every node's event streams;
  - a camera's pull starting here tells the others (see `_pulled_elsewhere`).
- **Straight to the nodes.** Revocations (of a session, an account or a grant) also
  go directly to every other node over HTTP (PeerLink), so they take effect there
  at once while PostgreSQL cannot carry them. Each is applied once, whichever way
  comes first.
- **Heartbeats.** Each node renews its heartbeat every second. A node whose
  heartbeat is older than `node_timeout_seconds` is taken for dead: a surviving
  node closes out its sessions in the audit log and the directory (only that
  node's, inside one write transaction). A node that finds it was taken for dead
  (it froze, or lost the database longer than that) ends its sessions, since the
  audit log already says they ended, and joins again.

When the database cannot be reached, nothing here waits for it: sessions end at
their known windows (SessionRegistry), revocations made on this node apply from
memory (GrantOverlay), new viewers are refused (admission reads the grants), and
records wait in the store's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from gateway.config import ClusterSettings
from gateway.egress import Ending, ViewerSession
from gateway.relay import CameraHub, CameraHubs
from gateway.store import Store, StoreUnavailable
from gateway.store import cluster as shared

from .enforcer import GrantEnforcer
from .events import EventBus
from .peers import PeerLink
from .sessions import SessionRegistry
from .tickets import TicketBook

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
# Revocations are also looked up at every heartbeat, as far back as this: one whose
# notice a node missed (it was not listening) still reaches it.
CATCH_UP_SECONDS = 60.0
EVENT_SECONDS = 5.0  # an event that cannot be sent by then is dropped (records never are)
NODE_LOST = Ending("node_lost", "this gateway node lost the cluster and was taken for dead")


class NodeConflict(Exception):
    """Another running node uses this node's id."""


class ClusterNode:
    def __init__(
        self,
        settings: ClusterSettings,
        store: Store,
        sessions: SessionRegistry,
        bus: EventBus,
        enforcer: GrantEnforcer,
        tickets: TicketBook,
        hubs: CameraHubs,
        address: str,
    ) -> None:
        self.node_id = settings.node_id
        self.address = address
        self.peers = PeerLink(settings.node_id)
        self.timeout = settings.node_timeout_seconds
        self.store = store
        self.sessions = sessions
        self.bus = bus
        self.enforcer = enforcer
        self.tickets = tickets
        self.hubs = hubs
        self._pulling: set[str] = set()  # cameras this node pulls now
        self.incarnation = secrets.token_hex(8)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: shared.Listener | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Since when this node's heartbeats land (None: they do not now). Only a
        # node that has itself been heard for a while may take another for dead.
        self._heard_since: float | None = None
        # Revocations sent before this node started are not its business; those
        # applied since are remembered so that none is applied twice.
        self._revocations_from = 0
        self._applied: dict[int | str, float] = {}  # revocation ids and nonces
        self.listening = False
        self._looking: asyncio.Future[Any] | None = None  # the heartbeat's reads

    # --- wiring ---------------------------------------------------------------------

    async def make_sure_alone(self) -> None:
        """Before this node touches anything of its id: no other running node may use
        it (its heartbeat would still move). A crashed run's heartbeat stands still."""
        node = self.node_id
        before = self.store.at_start(shared.last_heartbeat(node))
        if before is None:
            return
        await asyncio.sleep(HEARTBEAT_SECONDS * 2.5)
        if self.store.at_start(shared.last_heartbeat(node)) != before:
            raise NodeConflict(
                f"[cluster] node_id {node!r} is in use by another running gateway node;"
                " give each node its own"
            )

    def attach(self) -> None:
        """Hook into the session registry and the event bus (at start-up)."""
        self.sessions.on_start.append(self._listed)
        self.sessions.on_end.append(self._struck_off)
        self.sessions.count_elsewhere = self.count_elsewhere
        self.sessions.list_elsewhere = self.sessions_elsewhere
        self.bus.forward = self._forward_event
        self.hubs.on_state_change.append(self._pull_changed)
        node = self.node_id

        # Sign tickets with the cluster's key; record their use where all nodes see it.
        async def first_use(nonce: str, expires: Any) -> bool:
            return bool(await self.store.write(shared.use_ticket(nonce, expires)))

        at_start = self.store.at_start  # the start-up connection, before anything is served
        key = at_start(shared.secret()).encode()
        self.tickets.use_key(key, first_use)
        self.peers.use_key(key)
        # This node's last run: its sessions were closed out in the audit log (the
        # lifecycle does that first); its rows in the directory go too.
        at_start(shared.forget_sessions(node))
        at_start(shared.register(node, self.incarnation, self.address))
        self.peers.addresses = at_start(shared.addresses(self.timeout))
        self._revocations_from = at_start(shared.last_revocation())

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._heard_since = time.monotonic()
        self._listener = shared.Listener(
            self.store.path,
            deliver=self._from_listener,
            on_connect=lambda: self._call_soon(self._listening, True),
            on_disconnect=lambda: self._call_soon(self._listening, False),
        )
        self._listener.start()
        self._spawn(self._heartbeats())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
        await self.peers.close()
        self.store.submit(shared.leave(self.node_id, self.incarnation))

    # --- the directory ----------------------------------------------------------------

    async def count_elsewhere(self, account: str) -> int:
        node = self.node_id
        return int(await self.store.read(shared.count_sessions(account, not_on=node)))

    async def sessions_elsewhere(self) -> list[dict[str, Any]]:
        node = self.node_id
        rows: list[dict[str, Any]] = await self.store.read(shared.sessions(not_on=node))
        return rows

    async def find(self, session_id: str) -> dict[str, Any] | None:
        row: dict[str, Any] | None = await self.store.read(shared.find_session(session_id))
        return row

    async def _listed(self, session: ViewerSession) -> None:
        row = {**self.sessions.to_json(session), "node": self.node_id}
        # Queued after the session's start record, never dropped; not waited for.
        self.store.submit(shared.add_session(row))

    def _struck_off(self, session: ViewerSession) -> None:
        session_id = session.id
        self.store.submit(shared.remove_session(session_id))

    # --- messages out -------------------------------------------------------------------

    def send(self, message: dict[str, Any], *, keep: bool = True, revocation: bool = False) -> None:
        """To every other node, after what is queued before it has been written.
        `keep`: never dropped; else dropped when it cannot go soon. A `revocation` is
        also kept in the database for nodes that miss its notice, and sent straight
        to the other nodes (once applied, whichever way comes first)."""
        message = {**message, "from": self.node_id}
        if revocation:
            message["nonce"] = secrets.token_hex(12)
            self._spawn(self.peers.tell_all(message))

        job = (shared.send_revocation if revocation else shared.send)(message)
        if keep:
            self.store.submit(job)
            return
        task = asyncio.ensure_future(self.store.write(job, EVENT_SECONDS))
        task.add_done_callback(_quietly)

    def revoke_session(self, row: dict[str, Any], ending: Ending, by: str) -> None:
        self.send(
            {
                "type": "end_session",
                "node": row["node"],
                "session_id": row["id"],
                "code": ending.code,
                "reason": ending.reason,
                "by": by,  # the session's end record names who ended it
            },
            revocation=True,
        )

    def revoke_account(self, account: str, ending: Ending, by: str) -> None:
        self.send(
            {
                "type": "end_account",
                "account": account,
                "code": ending.code,
                "reason": ending.reason,
                "by": by,
            },
            revocation=True,
        )

    def grant_changed(self, grant_id: int) -> None:
        self.send({"type": "grant_changed", "grant_id": grant_id})

    def revoke_grant(self, grant_id: int) -> None:
        """Straight to the other nodes; the database's way is `grant_changed`, once the
        revocation is written. A revocation is for good, so a node may keep it."""
        message = {"type": "grant_revoked", "grant_id": grant_id, "from": self.node_id}
        self._spawn(self.peers.tell_all({**message, "nonce": secrets.token_hex(12)}))

    def unlisted(self, session_id: str) -> dict[str, Any] | None:
        """A session of another node, named by its id alone (the directory cannot be
        read): what is known of it, if its node was heard of at the last heartbeat."""
        node = session_id.split(".", 1)[0]
        if node == self.node_id or node not in self.peers.addresses:
            return None
        unknown = dict.fromkeys(("account", "camera_id", "grant_id", "project"))
        return {"id": session_id, "node": node, **unknown}

    def _forward_event(
        self,
        kind: str,
        data: dict[str, Any],
        accounts: list[str],
        viewer_data: dict[str, Any] | None,
    ) -> None:
        event = {"kind": kind, "data": data, "accounts": accounts, "viewer_data": viewer_data}
        self.send({"type": "event", **event}, keep=False)

    def _pull_changed(self, hub: CameraHub) -> None:
        """A camera's pull starting here (idle to anything else) is news to the others."""
        if hub.state == "idle":
            self._pulling.discard(hub.id)
        elif hub.id not in self._pulling:
            self._pulling.add(hub.id)
            self.send({"type": "camera_pulled", "camera_id": hub.id}, keep=False)

    # --- messages in --------------------------------------------------------------------

    def from_peer(self, message: dict[str, Any]) -> None:
        """A message another node sent straight here (already checked by PeerLink)."""
        self._received(message)

    def _from_listener(self, message: dict[str, Any]) -> None:
        """In the listener's thread: over to the event loop."""
        self._call_soon(self._received, message)

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(callback, *args)

    def _received(self, message: dict[str, Any]) -> None:
        if message.get("from") == self.node_id:
            return
        kind = message.get("type")
        if kind == "event":
            self.bus.deliver(
                str(message.get("kind")),
                message.get("data") or {},
                message.get("accounts") or [],
                viewer_data=message.get("viewer_data"),
            )
        elif kind == "grant_changed":
            self._spawn(self.enforcer.sweep())
        elif kind == "camera_pulled":
            self._pulled_elsewhere(str(message.get("camera_id")), str(message.get("from")))
        elif not self._first_time(message):
            return
        elif kind == "grant_revoked" and isinstance(message.get("grant_id"), int):
            grant_id = message["grant_id"]
            self.enforcer.overlay.revoked_ids.add(grant_id)  # for good, as the grant is
            self._spawn(self.enforcer.end_revoked(grant_id))
        elif kind == "end_session" and message.get("node") == self.node_id:
            ending, by = Ending(str(message.get("code")), str(message.get("reason"))), _by(message)
            self._spawn(self.sessions.end(str(message.get("session_id")), ending, by))
        elif kind == "end_account":
            ending, by = Ending(str(message.get("code")), str(message.get("reason"))), _by(message)
            mine = [s for s in self.sessions if s.account == message.get("account")]
            self._spawn(self.sessions.end_many(mine, ending, by))

    def _pulled_elsewhere(self, camera_id: str, node: str) -> None:
        """Another node started pulling a camera that this node's viewers watch. The
        balancer sends a camera's new viewers to one node; this node came to hold the
        camera while that one was away (or was reached directly). Its viewers are
        asked to move: the player opens a session through the balancer and ends this
        one once the new one shows its picture, so the tile never goes black, and this
        node's pull ends with its last viewer. Nobody is cut off: a player that does
        not move keeps its session, and the camera stays pulled here for it."""
        moving = [s for s in self.sessions if s.camera_id == camera_id]
        if not moving:
            return
        log.info(
            "camera %s is now pulled by node %s; asking its %d viewers here to move",
            camera_id,
            node,
            len(moving),
            extra={"camera_id": camera_id},
        )
        for session in moving:
            self.bus.publish(
                "session_moving",
                {"session_id": session.id, "camera_id": camera_id, "node": node},
                accounts=[session.account],
            )

    def _first_time(self, message: dict[str, Any]) -> bool:
        """A revocation is applied once, whether its notice, the catch-up or the
        sender itself brings it (by its id in the database, and by its nonce)."""
        revocation, nonce = message.get("revocation"), message.get("nonce")
        seen = [k for k in (revocation, nonce) if isinstance(k, int | str)]
        if not seen:
            return True
        if isinstance(revocation, int) and revocation <= self._revocations_from:
            return False
        if any(k in self._applied for k in seen):
            return False
        now = time.monotonic()
        self._applied = {r: t for r, t in self._applied.items() if now - t < 2 * CATCH_UP_SECONDS}
        self._applied.update(dict.fromkeys(seen, now))
        return True

    async def _catch_up(self) -> None:
        """Revocations whose notices this node missed (they are applied once)."""
        after = self._revocations_from
        missed = await self.store.read(shared.revocations_since(after, CATCH_UP_SECONDS))
        for message in missed:
            self._received(message)

    async def _look_around(self) -> None:
        """At each heartbeat: missed revocations, and where the other nodes are now."""
        await self._catch_up()
        timeout = self.timeout
        self.peers.addresses = await self.store.read(shared.addresses(timeout))

    def _listening(self, up: bool) -> None:
        if up and not self.listening:
            # Notices sent while this node was not listening are lost: look afresh.
            self._spawn(self.enforcer.sweep())
            self._spawn(self._catch_up())
        self.listening = up

    # --- heartbeats and lost nodes ------------------------------------------------------

    async def _heartbeats(self) -> None:
        node, timeout = self.node_id, self.timeout
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            incarnation = self.incarnation
            try:
                alive = await self.store.write(
                    shared.heartbeat(node, incarnation),
                    timeout=HEARTBEAT_SECONDS,
                )
            except StoreUnavailable:
                self._heard_since = None
                continue
            except Exception:
                log.exception("cluster heartbeat failed")
                self._heard_since = None
                continue
            if not alive:
                await self._taken_for_dead()
                continue
            # Not waited for: the next heartbeat must not wait on these reads.
            if self._looking is None or self._looking.done():
                self._looking = self._spawn(self._look_around())
            now = time.monotonic()
            if self._heard_since is None:
                self._heard_since = now
            if now - self._heard_since < 2 * timeout:
                continue  # the others' heartbeats may be catching up too
            try:
                closed = await self.store.write(
                    shared.close_out_lost_nodes(node, timeout),
                    timeout=HEARTBEAT_SECONDS * 2,
                )
            except StoreUnavailable:
                continue
            for lost, count in closed.items():
                log.warning(
                    "gateway node %s stopped answering; closed out its %d sessions", lost, count
                )

    async def _taken_for_dead(self) -> None:
        log.error(
            "this node was taken for dead by the cluster (no heartbeat for %g s);"
            " ending its sessions and joining again",
            self.timeout,
        )
        await self.sessions.end_many(list(self.sessions), NODE_LOST)
        self.incarnation = secrets.token_hex(8)
        node, incarnation = self.node_id, self.incarnation
        with contextlib.suppress(StoreUnavailable):
            address = self.address
            await self.store.write(shared.register(node, incarnation, address))
        self._heard_since = None

    def _spawn(self, work: Any) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_quietly)
        return task


def _by(message: dict[str, Any]) -> str | None:
    by = message.get("by")
    return by if isinstance(by, str) else None


def _quietly(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, StoreUnavailable):
        log.error("cluster task failed: %r", exc)
