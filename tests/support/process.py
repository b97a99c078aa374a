"""`python -m gateway --config FILE` in its own process, as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.store.audit import GRANT_CREATED, AuditLog
from gateway.store.database import open_database
from gateway.store.grants import GrantStore

from .camera import free_port
from .gateway import SECRET, VIEWER, audit_grant, authorize, camera_entry

ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT = 15.0


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def demo_camera(camera_id: str = "cam") -> dict[str, Any]:
    return camera_entry(camera_id, "demo:testsrc", demo_size="160x120", demo_fps=10)


class GatewayProcess:
    """A gateway process on `folder`'s config and database, VIEWER granted every camera.

    Its stdout and stderr are read as they come (`stdout`, `stderr`: lists of lines),
    so a chatty gateway never blocks on a full pipe.
    """

    def __init__(
        self,
        folder: Path,
        cameras: list[dict[str, Any]] | None = None,
        *,
        tables: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        grant: bool = True,
    ) -> None:
        self.port = free_port()
        self.database = folder / "gw.sqlite3"
        self.config = folder / "gw.toml"
        self.env = env or {}
        cameras = cameras or [demo_camera()]
        sections: dict[str, dict[str, Any]] = {
            "auth": {"secret": SECRET},
            "storage": {"database": str(self.database)},
            "server": {"port": self.port},
        }
        for name, table in (tables or {}).items():  # added to, or added
            sections[name] = {**sections.get(name, {}), **table}
        text = ""
        for name, table in sections.items():
            text += f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
        for camera in cameras:
            text += "[[cameras]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in camera.items())
        self.config.write_text(text, encoding="utf-8")
        if grant:
            now = datetime.now(UTC)
            db = open_database(self.database)
            grants = GrantStore(db, [c["id"] for c in cameras], 14)
            made = grants.create(
                project="程序測試",
                purpose="test",
                authorization_id=authorize(grants, reference="REF-1", audit=AuditLog(db)).id,
                members=[VIEWER],
                cameras=[c["id"] for c in cameras],
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=1),
                created_by="admin-1",
            )
            audit_grant(AuditLog(db), GRANT_CREATED, made)  # so `audit verify` accepts it
            db.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.proc = proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.config)],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stream, lines in ((proc.stdout, self.stdout), (proc.stderr, self.stderr)):
            threading.Thread(target=_drain, args=(stream, lines), daemon=True).start()
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"gateway did not start; stderr:\n{''.join(self.stderr)[-3000:]}")

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


def _drain(stream: Any, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)
