"""Heartbeats: each node renews its heartbeat every second, and notices the dead.

A node whose heartbeat is older than `node_timeout_seconds` is taken for dead: a
surviving node closes out its sessions in the audit log and the directory (only
that node's, inside one write transaction). A node that finds it was taken for
dead (it froze, or lost the database longer than that) is told (`on_taken_for_dead`:
it ends its sessions, since the audit log already says they ended) and joins again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.store import Store, StoreUnavailable
from gateway.store import cluster as shared

from .background import Background

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0


class NodeConflict(Exception):
    """Another running node uses this node's id."""


class Heartbeats:
    def __init__(
        self,
        store: Store,
        node_id: str,
        timeout: float,
        address: str,
        look_around: Callable[[], Awaitable[None]],
        on_taken_for_dead: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.timeout = timeout
        self.address = address
        self.incarnation = secrets.token_hex(8)
        # Since when this node's heartbeats land (None: they do not now). Only a
        # node that has itself been heard for a while may take another for dead.
        self._heard_since: float | None = None
        # When this node's heartbeat last landed: older than `timeout`, another node
        # may have taken it for dead (it froze, or its writes failed) and closed out
        # its sessions; it is not ready until one lands again (`current`).
        self.landed_at: float | None = None
        self._looking: asyncio.Future[Any] | None = None
        self._background = Background()
        self.look_around = look_around  # after each heartbeat that lands, not waited for
        self.on_taken_for_dead = on_taken_for_dead

    async def make_sure_alone(self) -> None:
        """Before this node touches anything of its id: no other running node may use
        it (its heartbeat would still move). A crashed run's heartbeat stands still."""
        node = self.node_id
        before = await self.store.read(shared.last_heartbeat(node))
        if before is None:
            return
        await asyncio.sleep(HEARTBEAT_SECONDS * 2.5)
        if await self.store.read(shared.last_heartbeat(node)) != before:
            raise NodeConflict(
                f"[cluster] node_id {node!r} is in use by another running gateway node;"
                " give each node its own"
            )

    async def join(self) -> None:
        """Register this node (its address, for the others' PeerLinks)."""
        node, incarnation, address = self.node_id, self.incarnation, self.address
        await self.store.write(shared.register(node, incarnation, address))

    def start(self) -> None:
        self._heard_since = self.landed_at = time.monotonic()
        self._background.spawn(self._run())

    async def stop(self) -> None:
        await self._background.cancel()
        node, incarnation = self.node_id, self.incarnation
        # A clean stop: nobody need take this node for dead.
        self.store.submit(shared.leave(node, incarnation))

    async def _run(self) -> None:
        node, timeout = self.node_id, self.timeout
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                alive = await self.store.write(
                    shared.heartbeat(node, self.incarnation),
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
            self.landed_at = time.monotonic()
            # Not waited for: the next heartbeat must not wait on these reads.
            if self._looking is None or self._looking.done():
                self._looking = self._background.spawn(self.look_around())
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

    @property
    def current(self) -> bool:
        """No other node can have taken this one for dead: its heartbeat landed
        within the timeout (after a freeze, not until the next one lands)."""
        landed = self.landed_at
        return landed is not None and time.monotonic() - landed < self.timeout

    async def _taken_for_dead(self) -> None:
        log.error(
            "this node was taken for dead by the cluster (no heartbeat for %g s);"
            " ending its sessions and joining again",
            self.timeout,
        )
        await self.on_taken_for_dead()
        self.incarnation = secrets.token_hex(8)
        with contextlib.suppress(StoreUnavailable):
            await self.join()
        self._heard_since = None
