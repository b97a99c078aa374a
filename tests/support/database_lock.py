"""A real fault: a second process holding a SQLite database's write lock."""

from __future__ import annotations

import asyncio
import subprocess
import sys

LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


async def hold_write_lock(database: str, seconds: float) -> subprocess.Popen[str]:
    """Start a process that takes the write lock and keeps it `seconds`; returns once
    the lock is held (wait on the process for its release)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, database, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 10)
    assert line == "locked\n", line
    return holder
