"""SessionDirectory: every node's live sessions, listed in the shared database.

Each session that starts here is listed and struck off when it ends, so every
node's admin list shows it, a revocation sent to any node finds it, and an
account's limit counts it (SessionRegistry asks `count` and `rows`).
"""

from __future__ import annotations

from typing import Any

from gateway.signaling import SessionRegistry, ViewerSession
from gateway.store import Store
from gateway.store import cluster as shared


class SessionDirectory:
    def __init__(self, store: Store, node_id: str) -> None:
        self.store = store
        self.node_id = node_id

    async def count(self, account: str) -> int:
        """The account's sessions on the other nodes."""
        node = self.node_id
        return int(await self.store.read(shared.count_sessions(account, not_on=node)))

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

    def follow(self, sessions: SessionRegistry) -> None:
        """List this node's sessions as they start and strike them off as they end."""

        async def listed(session: ViewerSession) -> None:
            row = {**sessions.to_json(session), "node": self.node_id}
            # Queued after the session's start record, never dropped; not waited for.
            self.store.submit(shared.add_session(row))

        def struck_off(session: ViewerSession) -> None:
            session_id = session.id
            self.store.submit(shared.remove_session(session_id))

        sessions.on_start.append(listed)
        sessions.on_end.append(struck_off)
