"""The processes the benchmark starts and stops: the gateway, viewer workers, the RTSP probe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from project import BENCH, OUT, ROOT

PY = sys.executable


class Gateway:
    """`python -m gateway --config <TOML>` from `src`; its output goes to a log file."""

    def __init__(self, workdir: Path, config: Path, port: int, name: str, src: Path = ROOT) -> None:
        self.src = src
        self.name = name
        self.config = config
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"gateway-{int(time.time() * 1000)}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PY, "-m", "gateway", "--config", str(self.config)],
            cwd=self.src,
            env={**os.environ, "PYTHONPATH": str(self.src)},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        self.proc.kill()  # nothing is left running when it fails to start
        self.proc.wait()
        raise RuntimeError(f"gateway did not start; log:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            for _ in range(150):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                proc.kill()
                proc.wait()
        self._log.close()
        with contextlib.suppress(OSError):
            OUT.mkdir(exist_ok=True)
            (OUT / f"gateway-{self.name}.log").write_bytes(self.log_path.read_bytes())


class WorkerProc:
    """A bench/viewers.py process, driven by JSON lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, gateway_url: str, camera: str, token: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            PY,
            str(BENCH / "viewers.py"),
            *(["--priority"] if self.name == "probe" else []),
            "--gateway",
            gateway_url,
            "--camera",
            camera,
            "--token",
            token,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line.startswith(b'{"ready"'):
            raise RuntimeError(f"worker {self.name} did not start: {line!r}")
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            future = self._waiting.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RuntimeError(f"worker {self.name} exited"))

    async def call(self, cmd: str, _timeout: float = 300, **kwargs: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        self.proc.stdin.write(
            (json.dumps({"cmd": cmd, "id": self._next, **kwargs}) + "\n").encode()
        )
        await self.proc.stdin.drain()
        result = await asyncio.wait_for(future, _timeout)
        if "error" in result and len(result) <= 2:
            raise RuntimeError(f"worker {self.name} {cmd}: {result['error']}")
        return result

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.write(b'{"cmd": "quit", "id": 0}\n')
            await proc.stdin.drain()
        try:
            await asyncio.wait_for(proc.wait(), 25)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()


class RtspProbe:
    """bench/rtsp_probe.py: frames as a plain RTSP client sees them, straight from the camera."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[tuple[float, int, int, int]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            PY,
            str(BENCH / "rtsp_probe.py"),
            self.url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        if not line.startswith(b"READY"):
            raise RuntimeError("RTSP probe did not start")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            t, pts, key, size = line.split()
            self.frames.append((float(t), int(pts), int(key), int(size)))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
