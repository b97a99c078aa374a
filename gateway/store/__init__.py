"""What the gateway remembers: grants and the audit log, behind one interface.

SQLite is the embedded default (one file, WAL); a `postgresql://` URL serves several
nodes (database.py, postgres.py). Never video: nothing else is written.

- store.py: `Store`, the database off the event loop (a reader and a writer thread,
  writes queued in order);
- grants.py: `GrantStore`, grants read afresh on every call;
- audit.py: `AuditLog`, the hash-chained audit log: appending, pruning, queries, CSV;
- verify.py: `gateway audit verify`, a whole database checked offline;
- schema.py: the migrations, written once, and what differs between the dialects;
- database.py: opening a database of either dialect (SQLite here);
- postgres.py: PostgreSQL behind sqlite3's interface;
- cluster.py: what several nodes share in PostgreSQL (heartbeats, the directory of
  live sessions, messages), as jobs for the Store: nothing outside store/ holds a
  connection or writes SQL.
"""

from .audit import AuditLog
from .database import DatabaseError
from .grants import GrantStore
from .store import Store, StoreUnavailable, WritePending

__all__ = [
    "AuditLog",
    "DatabaseError",
    "GrantStore",
    "Store",
    "StoreUnavailable",
    "WritePending",
]
