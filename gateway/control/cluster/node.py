"""ClusterNode: this gateway as one node of several that share a PostgreSQL database.

It puts together the cluster's parts, each with one job:
- SessionDirectory (directory.py): every node's live sessions, for the admin list,
  revocations and per-account limits;
- ClusterMessages (messages.py): PostgreSQL notices between nodes, revocations also straight
  to each node (peers.py), each applied once;
- Heartbeats (heartbeats.py): who is alive, and closing out the dead;
- CameraMoves (camera_moves.py): one pull per camera when a node comes back.

What the messages do here: a revocation of a session or an account ends it on the
node that holds it; a grant change makes every node sweep its sessions at once
(the sweep twice a second stays the safety net, for messages lost while a node
was away); an event published on any node reaches every node's event streams.

When the database cannot be reached, nothing here waits for it: sessions end at
their known windows (SessionRegistry), revocations made on this node apply from
memory (GrantOverlay) and go straight to the other nodes, new viewers are refused
(admission reads the grants), and records wait in the store's queue.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.config import ClusterSettings
from gateway.relay import CameraHubs
from gateway.signaling import Ending, SessionRegistry
from gateway.store import Store
from gateway.store import cluster as shared

from ..enforcer import GrantEnforcer
from ..events import EventBus
from ..tickets import TicketBook
from .background import Background
from .camera_moves import CameraMoves
from .directory import SessionDirectory
from .heartbeats import Heartbeats
from .messages import ClusterMessages

log = logging.getLogger(__name__)

NODE_LOST = Ending("node_lost", "this gateway node lost the cluster and was taken for dead")


class ClusterNode:
    def __init__(
        self,
        settings: ClusterSettings,
        address: str,
        store: Store,
        directory: SessionDirectory,
        messages: ClusterMessages,
        sessions: SessionRegistry,
        bus: EventBus,
        enforcer: GrantEnforcer,
        tickets: TicketBook,
        hubs: CameraHubs,
    ) -> None:
        self.node_id = settings.node_id
        self.store = store
        self.directory = directory
        self.messages = messages
        self.sessions = sessions
        self.bus = bus
        self.enforcer = enforcer
        self.tickets = tickets
        self.heartbeats = Heartbeats(
            store,
            settings.node_id,
            settings.node_timeout_seconds,
            address,
            look_around=self._look_around,
            on_taken_for_dead=self._taken_for_dead,
        )
        self.moves = CameraMoves(messages, sessions, bus)
        self._background = Background()
        directory.follow(sessions)
        hubs.on_state_change.append(self.moves.pull_changed)
        messages.on("event", self._event)
        messages.on("grant_changed", lambda _: self._sweep())
        messages.on("grant_revoked", self._grant_revoked, once=True)
        messages.on("end_session", self._end_session, once=True)
        messages.on("end_account", self._end_account, once=True)
        messages.on_reconnect.append(self._sweep)

    async def start(self) -> None:
        """Join the cluster; NodeConflict if another running node has this node's id."""
        await self.heartbeats.make_sure_alone()
        node, timeout = self.node_id, self.heartbeats.timeout
        key = (await self.store.read(shared.secret())).encode()

        # Sign tickets with the cluster's key; record their use where all nodes see it.
        async def first_use(nonce: str, expires: Any) -> bool:
            return bool(await self.store.write(shared.use_ticket(nonce, expires)))

        self.tickets.use_key(key, first_use)
        self.messages.peers.use_key(key)
        # This node's last run: its rows in the directory go (its sessions are closed
        # out in the audit log next, by the session accounting).
        await self.store.write(shared.forget_sessions(node))
        await self.heartbeats.join()
        self.messages.peers.addresses = await self.store.read(shared.addresses(timeout))
        self.messages.start_from(await self.store.read(shared.last_revocation()))
        self.heartbeats.start()

    async def stop(self) -> None:
        await self._background.cancel()
        await self.heartbeats.stop()
        await self.messages.stop()

    # --- what this node tells the others --------------------------------------------

    def revoke_session(self, row: dict[str, Any], ending: Ending, by: str) -> None:
        self.messages.revoke(
            {
                "type": "end_session",
                "node": row["node"],
                "session_id": row["id"],
                "code": ending.code,
                "reason": ending.reason,
                "by": by,  # the session's end record names who ended it
            }
        )

    def revoke_account(self, account: str, ending: Ending, by: str) -> None:
        self.messages.revoke(
            {
                "type": "end_account",
                "account": account,
                "code": ending.code,
                "reason": ending.reason,
                "by": by,
            }
        )

    def grant_changed(self, grant_id: int) -> None:
        self.messages.send({"type": "grant_changed", "grant_id": grant_id})

    def revoke_grant(self, grant_id: int) -> None:
        """Straight to the other nodes; the database's way is `grant_changed`, once the
        revocation is written. A revocation is for good, so a node may keep it."""
        self.messages.revoke({"type": "grant_revoked", "grant_id": grant_id}, by_database=False)

    def unlisted(self, session_id: str) -> dict[str, Any] | None:
        """A session of another node, named by its id alone (the directory cannot be
        read), if its node was heard of at the last heartbeat."""
        return self.directory.unlisted(session_id, set(self.messages.peers.addresses))

    # --- what this node hears -------------------------------------------------------

    def _event(self, message: dict[str, Any]) -> None:
        self.bus.deliver(
            str(message.get("kind")),
            message.get("data") or {},
            message.get("accounts") or [],
            viewer_data=message.get("viewer_data"),
        )

    def _sweep(self) -> None:
        self._background.spawn(self.enforcer.sweep())

    def _grant_revoked(self, message: dict[str, Any]) -> None:
        if isinstance(grant_id := message.get("grant_id"), int):
            self._background.spawn(self.enforcer.revoked_by_id(grant_id))

    def _end_session(self, message: dict[str, Any]) -> None:
        if message.get("node") == self.node_id:
            session_id = str(message.get("session_id"))
            self._background.spawn(self.sessions.end(session_id, _ending(message), _by(message)))

    def _end_account(self, message: dict[str, Any]) -> None:
        account = str(message.get("account"))
        self._background.spawn(self.sessions.end_account(account, _ending(message), _by(message)))

    async def _look_around(self) -> None:
        """At each heartbeat: missed revocations, and where the other nodes are now."""
        await self.messages.catch_up()
        timeout = self.heartbeats.timeout
        self.messages.peers.addresses = await self.store.read(shared.addresses(timeout))

    async def _taken_for_dead(self) -> None:
        await self.sessions.close(NODE_LOST)


def _ending(message: dict[str, Any]) -> Ending:
    return Ending(str(message.get("code")), str(message.get("reason")))


def _by(message: dict[str, Any]) -> str | None:
    by = message.get("by")
    return by if isinstance(by, str) else None
