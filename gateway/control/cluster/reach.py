"""Reach: whether this node still hears its cluster, and what it does when it does not.

A revocation made on another node reaches this one through PostgreSQL (its
notices, the revocations kept there, the grants read again twice a second) or
straight from that node (PeerLink). A node that has heard neither the database
nor any other node for `isolation_grace_seconds` cannot know what was revoked
meanwhile: it is cut off (a switch port, a partition). It then ends its sessions
(`node_isolated`; their end rows wait in the store's queue and land when the
database is back), admits nobody, and says so on /readyz, until it hears the
database or another node again. So a revocation reaches a viewer within a second
on any node that can be reached, and within the grace on one that cannot.

It also tells the other nodes directly, every second, that this node is there, so
they hear it while the database cannot say so. A node frozen longer than the grace
(SIGSTOP, a stalled VM) has heard nothing meanwhile either: it ends its sessions
as soon as it runs again, unless what it hears first is the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.signaling import Ending, SessionRegistry
from gateway.store import Store

from .background import Background
from .messages import ClusterMessages

log = logging.getLogger(__name__)

NODE_ISOLATED = Ending(
    "node_isolated", "this gateway node lost its cluster (the database and every other node)"
)
CHECK_SECONDS = 0.25
BEAT_SECONDS = 1.0


class Reach:
    def __init__(
        self,
        grace: float,
        address: str,
        store: Store,
        messages: ClusterMessages,
        sessions: SessionRegistry,
    ) -> None:
        self.grace = grace
        self.address = address
        self.store = store
        self.messages = messages
        self.sessions = sessions
        self.isolated = False
        self._background = Background()

    def silent_for(self) -> float:
        """Seconds since this node last heard the database or another node."""
        heard = max(self.store.answered_at, self.messages.peers.heard_at)
        return time.monotonic() - heard

    def start(self) -> None:
        self._background.spawn(self._watch())
        self._background.spawn(self._beat())

    async def stop(self) -> None:
        await self._background.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            silent = self.silent_for()
            if not self.isolated and silent > self.grace:
                await self._cut_off(silent)
            elif self.isolated and silent < self.grace:
                self._heard_again()

    async def _cut_off(self, silent: float) -> None:
        self.isolated = True
        self.sessions.refusing = NODE_ISOLATED
        log.error(
            "this node has heard neither the database nor another node for %.1f s:"
            " ending its %d sessions and admitting nobody until it does",
            silent,
            len(self.sessions),
        )
        await self.sessions.close(NODE_ISOLATED)

    def _heard_again(self) -> None:
        self.isolated = False
        self.sessions.refusing = None
        log.warning("this node hears its cluster again; admitting viewers")

    async def _beat(self) -> None:
        while True:
            started = time.monotonic()
            await self.messages.beat(self.address)
            await asyncio.sleep(max(0.0, BEAT_SECONDS - (time.monotonic() - started)))
