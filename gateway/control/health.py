"""Health: liveness and readiness, answered from memory (never waiting on the database)."""

from __future__ import annotations

from typing import Any

from gateway.signaling import SessionRegistry
from gateway.store import Store

from .cluster import ClusterNode


class Health:
    def __init__(
        self, store: Store, sessions: SessionRegistry, cluster: ClusterNode | None = None
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.cluster = cluster  # on a node of a cluster

    def live(self) -> dict[str, Any]:
        """The process answers."""
        return {"status": "ok", "sessions": len(self.sessions)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """The database answers, so access can be decided and recorded, and (on a node
        of a cluster) this node is not cut off from the others, and its heartbeat is
        current (a node thawed after a freeze past the node timeout may have been
        taken for dead: an offer admitted then would be ended when it finds out)."""
        store, cluster = self.store, self.cluster
        isolated = cluster is not None and cluster.reach.isolated
        current = cluster is None or cluster.heartbeats.current
        if store.ready and not isolated and current:
            return True, {"status": "ready"}
        status: dict[str, Any] = {
            "status": "not ready",
            "database_readable": store.readable,
            "database_writable": store.writable,
            "records_pending": store.pending,
        }
        if cluster is not None:
            # Cut off: neither the database nor another node heard for the grace.
            status["isolated"] = isolated
            status["silent_seconds"] = round(cluster.reach.silent_for(), 1)
            status["heartbeat_current"] = current
        return False, status
