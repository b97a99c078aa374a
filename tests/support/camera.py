"""Real RTSP test cameras (support/rtsp_camera.py, GStreamer) for the tests and the bench.

The camera script needs Debian's /usr/bin/python3 (gi bindings); this module runs in the venv.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtsp_camera.py")
READY_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def camera_args(
    *,
    codec: str | None = None,
    profile: str | None = None,
    bframes: int | None = None,
    width: int | None = None,
    height: int | None = None,
    fps: int | None = None,
    bitrate_kbps: int | None = None,
    gop_seconds: int | None = None,
    user: str | None = None,
    password: str | None = None,
    auth_method: str | None = None,
    inband_params: bool = True,
    pattern: str | None = None,
    colorimetry: str | None = None,
    filler: bool = False,
    seekable: bool = False,
) -> list[str]:
    """Map keyword options to rtsp_camera.py flags (None = script default)."""
    values = {
        "codec": codec,
        "profile": profile,
        "bframes": bframes,
        "width": width,
        "height": height,
        "fps": fps,
        "bitrate-kbps": bitrate_kbps,
        "gop-seconds": gop_seconds,
        "user": user,
        "password": password,
        "auth-method": auth_method,
        "pattern": pattern,
        "colorimetry": colorimetry,
    }
    args = [f"--{k}={v}" for k, v in values.items() if v is not None]
    if not inband_params:
        args.append("--no-inband-params")
    if filler:
        args.append("--filler")
    if seekable:  # a new client's PLAY restarts the stream's clock for every client
        args.append("--seekable")
    return args


@dataclass
class RtspCamera:
    port: int
    mount: str = "cam"
    args: list[str] = field(default_factory=list)
    url: str = ""
    _proc: subprocess.Popen[str] | None = field(default=None, repr=False)
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _open: int = field(default=0, repr=False)
    _total: int = field(default=0, repr=False)
    _stderr: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=200), repr=False
    )

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("camera already running")
        cmd = [SYSTEM_PYTHON, SCRIPT, f"--port={self.port}", f"--mount={self.mount}", *self.args]
        self._stderr.clear()
        with self._lock:
            self._open = 0  # connections of a previous (killed) process are gone
        self._proc = proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        ready = threading.Event()
        threading.Thread(target=self._read_stdout, args=(proc, ready), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc,), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._terminate(signal.SIGKILL)
                time.sleep(0.1)  # let the stderr thread drain
                raise RuntimeError(
                    f"RTSP camera on port {self.port} did not become ready "
                    f"(exit={proc.returncode}):\n" + "".join(self._stderr)
                )

    def _read_stdout(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = line.strip()
            if event.startswith("READY"):
                ready.set()
            elif event in ("CLIENT_CONNECTED", "CLIENT_CLOSED"):
                with self._lock:
                    if proc is not self._proc:
                        continue
                    if event == "CLIENT_CONNECTED":
                        self._open += 1
                        self._total += 1
                    else:
                        self._open -= 1
                    self._lock.notify_all()

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line)

    def _terminate(self, sig: int, grace: float = 3.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s."""
        self._terminate(signal.SIGTERM)
        with self._lock:
            self._open = 0
            self._lock.notify_all()

    def kill(self) -> None:
        """SIGKILL: simulate a camera crash."""
        self._terminate(signal.SIGKILL)
        with self._lock:
            self._open = 0
            self._lock.notify_all()

    def restart(self, **options) -> None:
        """Stop if running, then start again on the same port (with new options if given)."""
        self.stop()
        if options:
            self.args = camera_args(**options)
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the connection stays open but no packet arrives (a stalled camera)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def connections(self) -> int:
        """RTSP client connections currently open on the running process."""
        with self._lock:
            return self._open

    @property
    def total_connections(self) -> int:
        """CLIENT_CONNECTED events seen since the first start."""
        with self._lock:
            return self._total

    def wait_connections(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until exactly n connections are open; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._open == n, timeout)


def make_camera(mount: str = "cam", port: int | None = None, **options) -> RtspCamera:
    """Build (not start) a camera; options as in camera_args()."""
    port = port or free_port()
    auth = ""
    if options.get("user") is not None:
        user = urllib.parse.quote(options["user"], safe="")
        password = urllib.parse.quote(options.get("password") or "", safe="")
        auth = f"{user}:{password}@"
    return RtspCamera(
        port=port,
        mount=mount,
        args=camera_args(**options),
        url=f"rtsp://{auth}127.0.0.1:{port}/{mount}",
    )


@contextmanager
def rtsp_camera(**options) -> Iterator[RtspCamera]:
    """A started camera, stopped on exit. Options: mount, port and camera_args() keywords."""
    cam = make_camera(**options)
    cam.start()
    try:
        yield cam
    finally:
        cam.stop()
