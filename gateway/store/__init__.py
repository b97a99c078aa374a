"""What the gateway remembers: grants and the audit log, behind one interface.

SQLite is the embedded default (one file, WAL). Never video: nothing else is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .audit import AuditLog
from .database import DatabaseError, open_database
from .grants import GrantStore

__all__ = ["AuditLog", "DatabaseError", "GrantStore", "Store"]


class Store:
    """The grants and the audit log of one database."""

    def __init__(self, path: str, camera_ids: Iterable[str], max_grant_days: float) -> None:
        self._db = open_database(path)
        self.grants = GrantStore(self._db, camera_ids, max_grant_days)
        self.audit = AuditLog(self._db)

    def ping(self) -> bool:
        """The database answers a read (readiness)."""
        try:
            self._db.execute("SELECT count(*) FROM grants").fetchone()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        self._db.close()
