"""ClusterNode: this gateway as one node of several that share a PostgreSQL database.

It puts together the cluster's parts, each with one job:
- SessionDirectory (directory.py): every node's live sessions, for the admin list,
  revocations and per-account limits;
- ClusterMessages (messages.py): PostgreSQL notices between nodes, revocations also straight
  to each node (peers.py), each applied once;
- Heartbeats (heartbeats.py): who is alive, and closing out the dead;
- CameraMoves (camera_moves.py): one pull per camera when a node comes back;
- Reach (reach.py): a node cut off from the database and every other node for
  `isolation_grace_seconds` ends its sessions and admits nobody until it hears them.

What the messages do here: a revocation of a session or an account ends it on the
node that holds it, as do a police authorization withdrawn and an emergency access
ended early; a grant revoked or narrowed (a member or camera removed, a window
shortened) ends what it no longer allows on every node, also straight from node to
node; any grant change makes every node sweep its sessions at once (the sweep twice
a second stays the safety net, for messages lost while a node was away); an event
published on any node reaches every node's event streams.

When the database cannot be reached, nothing here waits for it: sessions end at
their known windows (SessionRegistry), revocations made on this node apply from
memory (GrantOverlay) and go straight to the other nodes, new viewers are refused
(admission reads the grants), and records wait in the store's queue. A node that
hears no other node either ends its sessions after the grace (Reach).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from gateway.access.grants import Grant
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
from .reach import Reach
from .tickets import ClusterTickets

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
        self.reach = Reach(settings.isolation_grace_seconds, address, store, messages, sessions)
        self._background = Background()
        hubs.on_state_change.append(self.moves.pull_changed)
        messages.on("event", self._event)
        messages.on("grant_changed", lambda _: self._sweep())
        messages.on("grant_revoked", self._grant_revoked, once=True)
        messages.on("grant_narrowed", self._grant_narrowed, once=True)
        messages.on("authorization_withdrawn", self._authorization_withdrawn, once=True)
        messages.on("emergency_ended", self._emergency_ended, once=True)
        messages.on("end_session", self._end_session, once=True)
        messages.on("end_account", self._end_account, once=True)
        messages.on_reconnect.append(self._sweep)

    async def start(self) -> None:
        """Join the cluster; NodeConflict if another running node has this node's id."""
        await self.heartbeats.make_sure_alone()
        node, timeout = self.node_id, self.heartbeats.timeout
        key = (await self.store.read(shared.secret())).encode()

        # Sign tickets with the cluster's key; record them where all nodes see them.
        self.tickets.use_key(key, ClusterTickets(self.store))
        self.messages.peers.use_key(key)
        # This node's last run: its rows in the directory go (its sessions are closed
        # out in the audit log next, by the session accounting).
        await self.store.write(shared.forget_sessions(node))
        await self.heartbeats.join()
        self.messages.peers.addresses = await self.store.read(shared.addresses(timeout))
        self.messages.start_from(await self.store.read(shared.last_revocation()))
        self.heartbeats.start()
        self.reach.start()

    async def stop(self) -> None:
        await self.reach.stop()
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

    def narrow_grant(self, grant: Grant) -> None:
        """A change that takes access away (a member or camera removed, a window
        shortened), straight to the other nodes as a revocation is: it reaches their
        sessions while PostgreSQL is away. The database's way is `grant_changed`,
        once it is written; meanwhile each node narrows the grant it knows by it."""
        wire = {
            "id": grant.id,
            "members": sorted(grant.members),
            "cameras": sorted(grant.cameras),
            "starts_at": grant.starts_at.isoformat(),
            "ends_at": grant.ends_at.isoformat(),
            "updated_at": grant.updated_at.isoformat(),
        }
        self.messages.revoke({"type": "grant_narrowed", "grant": wire}, by_database=False)

    def revoke_grant(self, grant_id: int) -> None:
        """Straight to the other nodes; the database's way is `grant_changed`, once the
        revocation is written. A revocation is for good, so a node may keep it."""
        self.messages.revoke({"type": "grant_revoked", "grant_id": grant_id}, by_database=False)

    def withdraw_authorization(self, authorization_id: int) -> None:
        """The police withdrew their consent: every node ends the sessions under it,
        as a revocation (straight to each node, and kept in the database)."""
        self.messages.revoke(
            {"type": "authorization_withdrawn", "authorization_id": authorization_id}
        )

    def end_emergency(self, emergency_id: int) -> None:
        """An emergency access ended early: every node ends its sessions."""
        self.messages.revoke({"type": "emergency_ended", "emergency_id": emergency_id})

    def unlisted(self, session_id: str) -> dict[str, Any] | None:
        """A session of another node, named by its id alone (the directory cannot be
        read), if its node was heard of: listed at the last heartbeat, or heard from
        directly since (right after the database came back, the listing may have
        missed a node whose heartbeat had not landed yet)."""
        return self.directory.unlisted(session_id, set(self.messages.peers.targets()))

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

    def _grant_narrowed(self, message: dict[str, Any]) -> None:
        if (grant := _heard_grant(message.get("grant"))) is not None:
            self._background.spawn(self.enforcer.heard(grant))

    def _authorization_withdrawn(self, message: dict[str, Any]) -> None:
        if isinstance(authorization_id := message.get("authorization_id"), int):
            self._background.spawn(self.enforcer.withdrawn_by_id(authorization_id))

    def _emergency_ended(self, message: dict[str, Any]) -> None:
        if isinstance(emergency_id := message.get("emergency_id"), int):
            self._background.spawn(self.enforcer.emergency_ended_by_id(emergency_id))

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


def _heard_grant(wire: Any) -> Grant | None:
    """A grant as another node says it now is: only what decides access (the rest is
    never read from it: it can only narrow the grant this node knows)."""
    try:
        updated, starts, ends = (
            datetime.fromisoformat(wire[k]) for k in ("updated_at", "starts_at", "ends_at")
        )
        if None in (updated.tzinfo, starts.tzinfo, ends.tzinfo):
            raise ValueError("times without a zone")
        return Grant(
            id=int(wire["id"]),
            project="",
            purpose="",
            authorization_ref="",
            members=frozenset(str(m) for m in wire["members"]),
            cameras=frozenset(str(c) for c in wire["cameras"]),
            starts_at=starts,
            ends_at=ends,
            created_by="",
            created_at=updated,
            updated_at=updated,
        )
    except (KeyError, TypeError, ValueError):
        log.warning("cluster: a grant_narrowed message that is not one was ignored")
        return None


def _ending(message: dict[str, Any]) -> Ending:
    return Ending(str(message.get("code")), str(message.get("reason")))


def _by(message: dict[str, Any]) -> str | None:
    by = message.get("by")
    return by if isinstance(by, str) else None
