"""PeerLink: revocations straight to the other nodes of a cluster, over HTTP.

The cluster's messages travel through PostgreSQL (NOTIFY), so while it cannot be
reached a revocation made on one node would wait there, and a viewer on another
node would watch on until its window ended. Revocations therefore also go
directly to every node heard of at the last heartbeat (their addresses are in
the database, remembered here), signed with the cluster's key. Both ways carry
the same message with the same nonce; the receiver applies it once.

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


class BadPeerMessage(Exception):
    """Not signed with the cluster's key, too old, or not a message."""


class PeerLink:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.addresses: dict[str, str] = {}  # the other live nodes: node -> base URL
        self._key = b""
        self._http: aiohttp.ClientSession | None = None

    def use_key(self, key: bytes) -> None:
        self._key = key

    def _signature(self, body: bytes) -> str:
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    async def tell_all(self, message: dict[str, Any]) -> None:
        """Send to every other node at once; a node that cannot be reached is left to
        the database's way."""
        peers = [url for node, url in self.addresses.items() if node != self.node_id]
        if not peers or not self._key:
            return
        body = json.dumps({**message, "sent_at": time.time()}).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: self._signature(body)}
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_SECONDS))
        results = await asyncio.gather(
            *(self._post(url, body, headers) for url in peers), return_exceptions=True
        )
        for url, result in zip(peers, results, strict=True):
            if isinstance(result, BaseException):
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
