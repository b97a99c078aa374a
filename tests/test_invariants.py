"""DESIGN.md invariants 3, 6, 7 and 8 under a sick database and lapsing sign-ins.

Written while covering the README's claims (issue 13), when the gateway broke them;
issue 10 made them hold (tests/test_sick_database.py covers the same ground with a
full tmpfs and a second process). See tests/README.md."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import threading
import time
from dataclasses import replace

import pytest
from support.gateway import VIEWER, camera_entry, settings_for, token
from support.viewer import Viewer
from support.waiting import event, until

from gateway.app import SESSIONS, SETTINGS, STORE
from gateway.store.audit import AuditWriteError

pytestmark = pytest.mark.slow  # documentation of gaps, ~15 s: not for the fast subset


def demo_cameras(*ids: str) -> list[dict]:
    return [camera_entry(i, "demo:testsrc", demo_size="160x120", demo_fps=10) for i in ids]


async def watch(gateway, headers: dict[str, str] | None = None) -> Viewer:
    viewer = Viewer(gateway.url, "cam-a", headers=headers or gateway.bearer())
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(3)
    return viewer


async def test_a_session_ends_with_its_grant_even_when_the_database_cannot_be_read(
    start_gateway,
):
    gateway = await start_gateway(settings_for(demo_cameras("cam-a")), grant=False)
    gateway.grant(starts_in=-1, lasts=3)
    viewer = await watch(gateway)
    path = gateway.app[SETTINGS].storage.database
    with sqlite3.connect(path) as other:  # unreadable from now on
        other.execute("ALTER TABLE grants RENAME TO grants_gone")
    try:
        # The grant ends within 3 s; the session must end within a second of that.
        await event(viewer.closed, 5, "the session to end with its grant")
    finally:
        await viewer.close()
        with sqlite3.connect(path) as other:
            other.execute("ALTER TABLE grants_gone RENAME TO grants")


async def test_a_locked_database_never_stalls_the_viewers_frames(start_gateway, tmp_path):
    database = str(tmp_path / "gw.sqlite3")
    gateway = await start_gateway(settings_for(demo_cameras("cam-a"), database=database))
    watcher = await watch(gateway)
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:  # another process's long write transaction
        db = sqlite3.connect(database, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(10)
        db.execute("ROLLBACK")
        db.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        started = time.monotonic()
        newcomer = Viewer(gateway.url, "cam-a", headers=gateway.bearer())
        asking = asyncio.ensure_future(newcomer.connect(gateway.http))  # writes an audit row
        await asyncio.sleep(3)  # the lock is held this long: that time is the point
        release.set()
        await asyncio.wait_for(asking, 10)
        ended = time.monotonic()
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    times = [started, *(t for t, _, _ in watcher.frames if started <= t <= ended), ended]
    gap = max(b - a for a, b in itertools.pairwise(times))
    await newcomer.close(gateway.http)
    await watcher.close(gateway.http)
    # 10 fps: a frame every 0.1 s; 0.5 s allows for a loaded machine, not for a wait.
    assert gap < 0.5, f"the watching viewer went {gap:.2f} s without a frame"


async def test_a_session_lives_no_longer_than_the_sign_in_that_opened_it(start_gateway):
    settings = settings_for(demo_cameras("cam-a"))
    settings = replace(settings, auth=replace(settings.auth, leeway_seconds=0))
    gateway = await start_gateway(settings)
    signed_in = {"Authorization": f"Bearer {token(VIEWER, ttl=2)}"}  # expires in 2 s
    viewer = await watch(gateway, signed_in)
    try:
        await event(viewer.closed, 4, "the session to end with its sign-in")
        assert len(gateway.app[SESSIONS]) == 0
    finally:
        await viewer.close()


async def test_a_session_end_that_cannot_be_written_yet_waits_and_lands(start_gateway):
    gateway = await start_gateway(settings_for(demo_cameras("cam-a")))
    viewer = await watch(gateway)
    audit = gateway.app[STORE].audit
    db = audit._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full"
    with contextlib.suppress(AuditWriteError):
        for i in range(10_000):  # use up the free space left in the last pages
            audit.record("filler", detail="x" * 200, n=i)
    await gateway.http.delete(viewer.session_url, headers=gateway.bearer())
    await event(viewer.closed, 5, "the session to end")  # access ends at once ...
    db.execute("PRAGMA max_page_count = 1000000")  # ... and space comes back
    try:  # the record waited, and lands
        await until(lambda: audit.query(event="session_end"), 5, "the session's end row")
    finally:
        await viewer.close()
