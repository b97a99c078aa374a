"""Shutdown and restarts of a real gateway process, and an audit log that cannot be written."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest
from support.gateway import VIEWER, bearer, camera_entry, settings_for
from support.process import GatewayProcess
from support.viewer import Viewer

from gateway.app import HUBS, SESSIONS, STORE
from gateway.store.audit import verify_file

pytestmark = pytest.mark.slow


async def watch(gateway: GatewayProcess, http: aiohttp.ClientSession) -> Viewer:
    viewer = Viewer(gateway.url, "cam", headers=bearer())
    response = await viewer.connect(http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(3)
    return viewer


async def test_sigterm_ends_every_session_and_exits_0_within_5_s(tmp_path):
    gateway = GatewayProcess(tmp_path)
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as http:
            viewers = [await watch(gateway, http), await watch(gateway, http)]
            started = time.monotonic()
            gateway.signal(signal.SIGTERM)
            assert await asyncio.to_thread(gateway.wait, 10) == 0
            assert time.monotonic() - started < 5
            for viewer in viewers:
                await asyncio.wait_for(viewer.closed.wait(), 5)  # closed by the server
                await viewer.close()
    finally:
        gateway.stop()
    ends = [r for r in gateway.audit() if r["event"] == "session_end"]
    assert len(ends) == 2
    assert {r["detail"]["reason"] for r in ends} == {"gateway shutdown"}
    assert verify_file(str(gateway.database)).ok


async def test_sessions_left_open_by_sigkill_are_closed_out_at_restart(tmp_path):
    gateway = GatewayProcess(tmp_path)
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as http:
            viewer = await watch(gateway, http)
            gateway.signal(signal.SIGKILL)
            await asyncio.to_thread(gateway.wait, 10)
            await viewer.close()
        rows = gateway.audit()
        assert [r["event"] for r in rows if r["session_id"]] == ["session_start"]
        await gateway.start()  # the same database
        (end,) = [r for r in gateway.audit() if r["event"] == "session_end"]
        (start,) = [r for r in gateway.audit() if r["event"] == "session_start"]
        assert end["session_id"] == start["session_id"]
        assert end["detail"]["reason"] == "gateway restarted"
        assert end["account"] == VIEWER and end["camera_id"] == "cam"
    finally:
        gateway.stop()
    assert verify_file(str(gateway.database)).ok


async def test_a_full_disk_refuses_viewing_loudly(start_gateway, caplog):
    entry = camera_entry("cam", "demo:testsrc", demo_size="160x120", demo_fps=10)
    gateway = await start_gateway(settings_for([entry]))
    db = gateway.app[STORE].audit._db
    # SQLite's own "disk full": no page may be added to the file.
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    filler = gateway.app[STORE].audit
    try:
        for i in range(10_000):  # use up the free space left in the last pages
            filler.record("filler", detail="x" * 200, n=i)
    except Exception:
        pass
    viewer = gateway.viewer("cam")
    response = await viewer.connect(gateway.http)
    assert response.status == 503
    body = await response.json()
    assert body["code"] == "audit_unavailable" and "cannot be recorded" in body["error"]
    assert int(response.headers["Retry-After"]) >= 1
    assert "audit log cannot be written" in caplog.text
    assert len(gateway.app[SESSIONS]) == 0
    assert len(gateway.app[HUBS].get("cam").viewers) == 0
    await viewer.close()
