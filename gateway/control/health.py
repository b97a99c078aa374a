"""Health: liveness and readiness, answered from memory (never waiting on the database)."""

from __future__ import annotations

from typing import Any

from gateway.signaling import SessionRegistry
from gateway.store import Store


class Health:
    def __init__(self, store: Store, sessions: SessionRegistry) -> None:
        self.store = store
        self.sessions = sessions

    def live(self) -> dict[str, Any]:
        """The process answers."""
        return {"status": "ok", "sessions": len(self.sessions)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """The database answers, so access can be decided and recorded."""
        store = self.store
        if store.ready:
            return True, {"status": "ready"}
        return False, {
            "status": "not ready",
            "database_readable": store.readable,
            "database_writable": store.writable,
            "records_pending": store.pending,
        }
