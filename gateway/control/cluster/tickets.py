"""ClusterTickets: the event-stream tickets of every node, in the shared database.

A ticket is recorded as it is issued, with its account, and marked as it is used,
so an account's unused tickets are counted on every node at once (in one
transaction, under the account's lock) and a ticket opens one stream on any node.
"""

from __future__ import annotations

from datetime import datetime

from gateway.store import Store
from gateway.store import cluster as shared


class ClusterTickets:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def issue(self, nonce: str, account: str, until: datetime, limit: int) -> bool:
        issued: bool = await self.store.write(shared.issue_ticket(nonce, account, until, limit))
        return issued

    async def use(self, nonce: str) -> bool:
        used: bool = await self.store.write(shared.use_ticket(nonce))
        return used
