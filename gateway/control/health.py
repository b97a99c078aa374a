"""Health: liveness and readiness, answered from memory (never waiting on the database)."""

from __future__ import annotations

from typing import Any

from gateway.signaling import SessionRegistry
from gateway.store import Store

from .cluster import Reach


class Health:
    def __init__(self, store: Store, sessions: SessionRegistry, reach: Reach | None = None) -> None:
        self.store = store
        self.sessions = sessions
        self.reach = reach  # on a node of a cluster

    def live(self) -> dict[str, Any]:
        """The process answers."""
        return {"status": "ok", "sessions": len(self.sessions)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """The database answers, so access can be decided and recorded, and (on a node
        of a cluster) this node is not cut off from the others."""
        store, reach = self.store, self.reach
        isolated = reach is not None and reach.isolated
        if store.ready and not isolated:
            return True, {"status": "ready"}
        status: dict[str, Any] = {
            "status": "not ready",
            "database_readable": store.readable,
            "database_writable": store.writable,
            "records_pending": store.pending,
        }
        if reach is not None:
            # Cut off: neither the database nor another node heard for the grace.
            status["isolated"] = isolated
            status["silent_seconds"] = round(reach.silent_for(), 1)
        return False, status
