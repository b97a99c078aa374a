"""ClusterMessages: what one node tells the others, and hears from them.

Messages go out with NOTIFY, through the store's ordered writer, so a message about
a change goes out after the change is committed; every node LISTENs (the Listener,
a thread of its own). Revocations also go straight to every other node over HTTP
(PeerLink), so they take effect there while PostgreSQL cannot carry them, and are
kept in the database for a node that missed their notice (`catch_up`). Each
revocation is applied once, whichever way comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from gateway.store import Store
from gateway.store import cluster as shared

from ..refusals import Denied
from .background import Background
from .peers import BadPeerMessage, PeerLink

# Revocations are also looked up at every heartbeat, as far back as this: one whose
# notice a node missed (it was not listening) still reaches it.
CATCH_UP_SECONDS = 60.0
EVENT_SECONDS = 5.0  # an event that cannot be sent by then is dropped (records never are)

Handler = Callable[[dict[str, Any]], None]


class ClusterMessages:
    def __init__(self, store: Store, node_id: str, peers: PeerLink) -> None:
        self.store = store
        self.node_id = node_id
        self.peers = peers
        self.listening = False
        self._handlers: dict[str, Handler] = {}
        self._once: set[str] = set()  # the kinds that are revocations: applied once
        # Revocations sent before this node started are not its business; those
        # applied since are remembered so that none is applied twice.
        self._revocations_from = 0
        self._applied: dict[int | str, float] = {}  # revocation ids and nonces
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: shared.Listener | None = None
        self._background = Background()
        # Told when this node starts listening again: what it missed meanwhile.
        self.on_reconnect: list[Callable[[], None]] = []
        self.load: Callable[[], dict[str, Any]] = dict  # said in each peer_heartbeat

    def on(self, kind: str, handler: Handler, *, once: bool = False) -> None:
        """Call `handler` with each message of `kind` from another node; `once`: a
        revocation, applied once however many ways it comes."""
        self._handlers[kind] = handler
        if once:
            self._once.add(kind)

    # --- out ------------------------------------------------------------------------

    def send(self, message: dict[str, Any], *, keep: bool = True) -> None:
        """To every other node, after what is queued before it has been written.
        `keep`: never dropped; else dropped when it cannot go soon."""
        job = shared.send({**message, "from": self.node_id})
        if keep:
            self.store.submit(job)
            return
        self._background.spawn(self.store.write(job, EVENT_SECONDS))

    def revoke(self, message: dict[str, Any], *, by_database: bool = True) -> None:
        """A revocation: straight to the other nodes now, and (`by_database`) kept in
        the database for a node that misses its notice."""
        message = {**message, "from": self.node_id, "nonce": secrets.token_hex(12)}
        self._background.spawn(self.peers.tell_all(message))
        if by_database:
            self.store.submit(shared.send_revocation(message))

    async def beat(self, address: str) -> None:
        """Tell every other node directly that this node is there, where, and how
        loaded (`load`: what spreading weighs, control/cluster/spreading.py)."""
        await self.peers.tell_all(
            {
                "type": "peer_heartbeat",
                "from": self.node_id,
                "address": address,
                "load": self.load(),
            }
        )

    def forward_event(
        self,
        kind: str,
        data: dict[str, Any],
        accounts: list[str],
        viewer_data: dict[str, Any] | None,
    ) -> None:
        """An event published here, for every other node's event streams."""
        event = {"kind": kind, "data": data, "accounts": accounts, "viewer_data": viewer_data}
        self.send({"type": "event", **event}, keep=False)

    # --- in -------------------------------------------------------------------------

    def from_peer(self, body: bytes, signature: str) -> None:
        """A message another node sent straight here; Denied unless it is signed with
        the cluster's key and fresh."""
        try:
            message = self.peers.open(body, signature)
        except BadPeerMessage as exc:
            raise Denied("not_a_cluster_message", str(exc)) from None
        sender, address, load = message.get("from"), message.get("address"), message.get("load")
        if isinstance(sender, str):
            self.peers.heard(
                sender,
                address if isinstance(address, str) else None,
                load if isinstance(load, dict) else None,
            )
        self.receive(message)

    def receive(self, message: dict[str, Any]) -> None:
        if message.get("from") == self.node_id:
            return
        kind = str(message.get("type"))
        handler = self._handlers.get(kind)
        if handler is None or (kind in self._once and not self._first_time(message)):
            return
        handler(message)

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

    async def catch_up(self) -> None:
        """Revocations whose notices this node missed (they are applied once)."""
        after = self._revocations_from
        missed = await self.store.read(shared.revocations_since(after, CATCH_UP_SECONDS))
        for message in missed:
            self.receive(message)

    # --- the listener ---------------------------------------------------------------

    def start_from(self, last_revocation: int) -> None:
        """Listen, taking only revocations after `last_revocation` (those before were
        made before this node started)."""
        self._revocations_from = last_revocation
        self._loop = asyncio.get_running_loop()
        self._listener = shared.Listener(
            self.store.path,
            deliver=lambda message: self._call_soon(self.receive, message),
            on_connect=lambda: self._call_soon(self._listening, True),
            on_disconnect=lambda: self._call_soon(self._listening, False),
        )
        self._listener.start()

    async def stop(self) -> None:
        await self._background.cancel()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
        await self.peers.close()

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        """From the listener's thread over to the event loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(callback, *args)

    def _listening(self, up: bool) -> None:
        if up and not self.listening:
            # Notices sent while this node was not listening are lost: look afresh.
            for reconnected in self.on_reconnect:
                reconnected()
            self._background.spawn(self.catch_up())
        self.listening = up
