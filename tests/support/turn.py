"""Debian's coturn as a real TURN server on loopback, for the tests and the bench.

It runs with coturn's REST API scheme (`--use-auth-secret --static-auth-secret`),
as the gateway expects, and `--allow-loopback-peers` so it relays to a gateway on
127.0.0.1. `max_bps` (bytes per second, per TURN session) makes a weak link.
Its log (`-v`) tells what it allocated and what it refused.
"""

from __future__ import annotations

import collections
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .camera import free_port

TURNSERVER = "/usr/bin/turnserver"
READY_TIMEOUT = 10.0
REALM = "cctv.test"


def _relay_ports() -> tuple[int, int]:
    """A window of relay ports of its own, away from other tests' servers."""
    low = random.randrange(50000, 64000, 200)
    return low, low + 199


class Coturn:
    def __init__(self, secret: str, *, max_bps: int | None = None, port: int | None = None):
        self.secret = secret
        self.max_bps = max_bps
        self.port = port or free_port()
        self.log: collections.deque[str] = collections.deque(maxlen=20000)
        self._proc: subprocess.Popen[str] | None = None
        self._dir: str | None = None
        self._lock = threading.Lock()

    @property
    def urls(self) -> dict[str, str]:
        return {
            "udp": f"turn:127.0.0.1:{self.port}?transport=udp",
            "tcp": f"turn:127.0.0.1:{self.port}?transport=tcp",
        }

    def start(self) -> Coturn:
        self._dir = tempfile.mkdtemp(prefix="coturn-")
        low, high = _relay_ports()
        cmd = [
            TURNSERVER,
            "-n",  # no configuration file
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            f"--min-port={low}",
            f"--max-port={high}",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            f"--realm={REALM}",
            "--log-file=stdout",
            "--simple-log",
            "-v",
            f"--pidfile={self._dir}/turnserver.pid",
            f"--userdb={self._dir}/turndb",
        ]
        if self.max_bps:
            cmd.append(f"--max-bps={self.max_bps}")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, args=(self._proc,), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._listening():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("coturn did not start:\n" + "\n".join(list(self.log)[-30:]))
            time.sleep(0.05)
        return self

    def _listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._lock:
                self.log.append(line.rstrip())

    def lines(self, text: str) -> list[str]:
        with self._lock:
            return [line for line in self.log if text in line]

    @property
    def allocations(self) -> int:
        """Relays allocated so far (successful TURN Allocate requests)."""
        return len(self.lines("ALLOCATE processed, success"))

    @property
    def refused(self) -> int:
        """Requests refused for their credentials (beyond the first, nonce-less ask)."""
        return len(self.lines("check_stun_auth: Cannot find credentials"))

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def available() -> bool:
    return Path(TURNSERVER).exists()
