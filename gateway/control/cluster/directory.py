"""SessionDirectory: every node's live sessions, listed in the shared database.

A session is listed as it is admitted, before its offer is answered, and struck off
when it ends or is refused (SessionRegistry calls `list` and `strike_off`). The
listing is also the account's count: it lands only while the account holds fewer
than its limit on every node, counted and added in one transaction under the
account's lock, so two nodes admitting at the same instant cannot both pass. Every
node's admin list shows the sessions, and a revocation sent to any node finds them,
even those still being answered.
"""

from __future__ import annotations

from typing import Any

from gateway.store import Store
from gateway.store import cluster as shared


class SessionDirectory:
    def __init__(self, store: Store, node_id: str) -> None:
        self.store = store
        self.node_id = node_id

    async def list(self, row: dict[str, Any], limit: int) -> bool:
        """List a session being admitted; False if its account holds `limit` sessions
        across the cluster. StoreUnavailable if the database does not take it in time."""
        row = {**row, "node": self.node_id}
        listed: bool = await self.store.write(shared.list_session(row, limit))
        return listed

    def strike_off(self, session_id: str) -> None:
        """Queued after its listing, never dropped; not waited for."""
        self.store.submit(shared.remove_session(session_id))

    async def rows(self) -> list[dict[str, Any]]:
        """The other nodes' sessions, as listed."""
        node = self.node_id
        rows: list[dict[str, Any]] = await self.store.read(shared.sessions(not_on=node))
        return rows

    async def find(self, session_id: str) -> dict[str, Any] | None:
        row: dict[str, Any] | None = await self.store.read(shared.find_session(session_id))
        return row

    def unlisted(self, session_id: str, live_nodes: set[str]) -> dict[str, Any] | None:
        """A session of another node, named by its id alone (the directory cannot be
        read): what is known of it, if its node is one of `live_nodes`."""
        node = session_id.split(".", 1)[0]
        if node == self.node_id or node not in live_nodes:
            return None
        unknown = dict.fromkeys(("account", "camera_id", "grant_id", "project"))
        return {"id": session_id, "node": node, **unknown}
