"""PeerLink: revocations and narrowed grants straight to the other nodes, over HTTP.

The cluster's messages travel through PostgreSQL (NOTIFY), so while it cannot be
reached a revocation made on one node would wait there, and a viewer on another
node would watch on until its window ended. Revocations therefore also go
directly to every other node, signed with the cluster's key: those heard of at the
last heartbeat in the database, and those heard from directly of late. Both ways
carry the same message with the same nonce; the receiver applies it once.

Every node also tells the others directly that it is there, every second
(`peer_heartbeat`, with its address): a node that hears another this way is not
cut off, whatever PostgreSQL says (Reach), and keeps it as a place to send
revocations while the database cannot say where it is.

Only messages that take access away travel this way, so a stale or replayed one
can end sessions, never start one; a message older than MAX_AGE_SECONDS, or
signed with another key, is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

PATH = "/cluster/messages"
SIGNATURE_HEADER = "X-Cluster-Signature"
SEND_SECONDS = 1.0  # a node that has not answered by then gets it by PostgreSQL, later
MAX_AGE_SECONDS = 30.0
# A node heard from directly stays a place to send revocations this long after.
DIRECT_SECONDS = 60.0


class BadPeerMessage(Exception):
    """Not signed with the cluster's key, too old, or not a message."""


class PeerLink:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        # The other live nodes as the database lists them: node -> base URL.
        self.addresses: dict[str, str] = {}
        # Nodes heard from directly: node -> (base URL, time.monotonic() when heard).
        self._direct: dict[str, tuple[str, float]] = {}
        self.heard_at = time.monotonic()  # another node was last heard from directly
        # What each node said of its load in its last peer_heartbeat, and when.
        self.loads: dict[str, tuple[dict[str, Any], float]] = {}
        self._key = b""
        self._http: aiohttp.ClientSession | None = None

    def use_key(self, key: bytes) -> None:
        self._key = key

    def _signature(self, body: bytes) -> str:
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def sign(self, text: str) -> str:
        """`text` signed with the cluster's key (a spread's ticket, a stream request)."""
        return self._signature(text.encode())

    def verify(self, text: str, signature: str) -> bool:
        return bool(self._key) and hmac.compare_digest(self.sign(text), signature)

    def heard(
        self, node: str, address: str | None = None, load: dict[str, Any] | None = None
    ) -> None:
        """`node` was heard from directly (a message from it, or its answer to one)."""
        if node == self.node_id:
            return
        now = time.monotonic()
        self.heard_at = now
        if load is not None:
            self.loads[node] = (load, now)
        if address is None:
            address = self._direct.get(node, ("", 0.0))[0] or self.addresses.get(node, "")
        if address:
            self._direct[node] = (address, now)

    def targets(self) -> dict[str, str]:
        """Every other node a message should reach: node -> base URL."""
        horizon = time.monotonic() - DIRECT_SECONDS
        self._direct = {n: v for n, v in self._direct.items() if v[1] > horizon}
        found = {node: url for node, (url, _) in self._direct.items()}
        found.update(self.addresses)
        found.pop(self.node_id, None)
        return found

    async def tell_all(self, message: dict[str, Any]) -> None:
        """Send to every other node at once; a node that cannot be reached is left to
        the database's way."""
        peers = self.targets()
        if not peers or not self._key:
            return
        body = json.dumps({**message, "sent_at": time.time()}).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: self._signature(body)}
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_SECONDS))
        results = await asyncio.gather(
            *(self._post(url, body, headers) for url in peers.values()), return_exceptions=True
        )
        quiet = message.get("type") == "peer_heartbeat"  # its failures say nothing new
        for (node, url), result in zip(peers.items(), results, strict=True):
            if not isinstance(result, BaseException):
                self.heard(node, url)
            elif not quiet:
                log.info("cluster: %s did not take a revocation directly (%r)", url, result)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        assert self._http is not None
        async with self._http.post(url + PATH, data=body, headers=headers) as reply:
            if reply.status != 204:
                raise RuntimeError(f"HTTP {reply.status}")

    def open(self, body: bytes, signature: str) -> dict[str, Any]:
        """The message in a request from another node; BadPeerMessage if it is not one."""
        if not self._key or not hmac.compare_digest(self._signature(body), signature):
            raise BadPeerMessage("not signed with the cluster's key")
        try:
            message = json.loads(body)
            age = time.time() - float(message["sent_at"])
        except (ValueError, TypeError, KeyError) as exc:
            raise BadPeerMessage("not a cluster message") from exc
        if abs(age) > MAX_AGE_SECONDS:
            raise BadPeerMessage("a cluster message older than 30 s")
        return message

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
