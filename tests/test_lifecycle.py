"""Shutdown and restarts of a real gateway process, and an audit log that cannot be written."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from support.camera import free_port
from support.gateway import SECRET, VIEWER, audit_grant, bearer
from support.viewer import Viewer

from gateway.store.audit import GRANT_CREATED, AuditLog, verify_file
from gateway.store.database import open_database
from gateway.store.grants import GrantStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


class GatewayProcess:
    """`python -m gateway` on a demo camera, with VIEWER granted, in its own process."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.database = tmp_path / "gw.sqlite3"
        self.config = tmp_path / "gw.toml"
        self.config.write_text(
            f'[auth]\nsecret = "{SECRET}"\n'
            f'[storage]\ndatabase = "{self.database}"\n'
            f"[server]\nport = {self.port}\n"
            '[[cameras]]\nid = "cam"\nname = "市府"\nlat = 25.0\nlon = 121.5\n'
            'source = "demo:testsrc"\ndemo_size = "160x120"\ndemo_fps = 10\n',
            encoding="utf-8",
        )
        now = datetime.now(UTC)
        db = open_database(self.database)
        grant = GrantStore(db, ["cam"], 14).create(
            project="重啟測試",
            purpose="test",
            authorization_ref="REF-1",
            members=[VIEWER],
            cameras=["cam"],
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1),
            created_by="admin-1",
        )
        audit_grant(AuditLog(db), GRANT_CREATED, grant)
        db.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("gateway did not start")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def audit(self) -> list[dict]:
        return AuditLog(open_database(self.database)).query()


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
