"""Shutdown and restarts of a real gateway process, and an audit log that cannot be written."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest
from support.gateway import VIEWER, bearer
from support.process import GatewayProcess
from support.viewer import Viewer

from gateway.store.verify import verify_file

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
