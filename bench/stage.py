"""What every phase runs on: the plan, the cameras, the gateway's config and grant.

A phase starts its own gateway (`Stage.gateway`) and viewer workers (`Stage.workers`),
so each phase's log and figures are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes import Gateway, WorkerProc
from project import ROOT, RtspCamera, free_port, grant_cameras, make_camera, mint_token

SECRET = "bench-secret-of-at-least-32-bytes-0123456789abcdef"
ACCOUNT = "bench-viewer"
CAMERA = dict(codec="h264", profile="high", width=1280, height=720, fps=25)
CAMERA.update(bitrate_kbps=2000, gop_seconds=2, pattern="bars", filler=True)
LINGER = 2.0


@dataclass
class Plan:
    quick: bool
    ttff_joins: int
    chromium_joins: int
    levels: list[int]
    window: float
    settle: float
    teardown_reps: int
    revoke_reps: int
    many_cameras: int
    many_camera_procs: int
    transcode_levels: list[int]
    profile_at: int | None
    count_workers: int = 4
    vp8_h264_viewers: int = 50  # H.264 viewers watching alongside the VP8 ones
    # The capacity phase: each node in a cgroup capped at this % of one core (a quota per
    # node stands in for "a core per node" on 2 cores), cameras added `capacity_step` at a
    # time (one at a time near the node's quota) up to `capacity_max`, each step held
    # over `capacity_window` seconds.
    node_cpu_quota_pct: float = 12.0
    capacity_max: int = 40
    capacity_step: int = 2
    capacity_window: float = 8.0
    # The spread phase: viewers of one camera added `spread_step` at a time (fewer near
    # a node's quota), up to `spread_max`; the quota and window are the capacity phase's.
    spread_step: int = 10
    spread_max: int = 400
    # The two nodes' `[cluster] spread_cpu_percent`: the owner spreads past this share
    # of its quota; the capped node dropped frames only at its quota (docs/performance.md).
    spread_cpu_percent: float = 85.0
    spread_one_node: int = 0  # one node's figure from an earlier run: its ramp is skipped
    per_viewer_viewers: int = 20  # the cluster phase: a node's CPU per viewer, direct vs HAProxy
    soak_seconds: float = 630.0  # the soak phase: viewers join and leave this long

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                True, 10, 6, [1, 20], 5.0, 3.0, 1, 2, 5, 1, [1, 10], None, 2, 10,
                capacity_step=4, capacity_window=4.0, per_viewer_viewers=5, soak_seconds=75.0,
            )  # fmt: skip
        return cls(False, 30, 30, [1, 50, 100, 200], 12.0, 4.0, 3, 5, 20, 4, [1, 50], 200)


@dataclass
class Stage:
    plan: Plan
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, RtspCamera] = field(default_factory=dict)

    gateway_rev: str | None = None

    def __post_init__(self) -> None:
        self.gateway_src = ROOT
        if self.gateway_rev:
            # The gateway of that commit, exported read-only from git: the work tree is untouched.
            self.gateway_src = self.workdir / "src"
            self.gateway_src.mkdir()
            archive = subprocess.run(
                ["git", "archive", self.gateway_rev, "gateway", "web"],
                cwd=ROOT, capture_output=True, check=True,
            ).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(self.gateway_src)], input=archive, check=True)
        self.token = mint_token(SECRET, ACCOUNT)
        self.admin = mint_token(SECRET, "bench-admin", is_admin=True)
        self.page_port = free_port()
        self.db_path = self.workdir / "gateway.sqlite3"
        # The cameras the gateway knows. They are only started when a phase needs them
        # (the gateway pulls a camera only while it has viewers).
        self.cameras["main"] = make_camera(mount="main", **CAMERA)
        # The transcode phase keeps the moving ball: the gateway decodes and re-encodes it.
        hevc = {**CAMERA, "codec": "h265", "pattern": None, "filler": False}
        self.cameras["hevc"] = make_camera(mount="hevc", **hevc)
        procs = [make_camera(mount="many", **CAMERA) for _ in range(self.plan.many_camera_procs)]
        self.many_procs = procs
        # The capacity phase adds cameras past the many phase's; the first are the same.
        count = max(self.plan.many_cameras, self.plan.capacity_max)
        self.camera_ids = [f"many-{i:02d}" for i in range(count)]
        self.many_ids = self.camera_ids[: self.plan.many_cameras]
        self.many_url = {cid: procs[i % len(procs)].url for i, cid in enumerate(self.camera_ids)}
        self.config = self.workdir / "bench.toml"
        self._write_config()
        grant_cameras(self.db_path, ["main", "hevc", *self.camera_ids], ACCOUNT)

    def _write_config(self) -> None:
        def q(s: str) -> str:
            return json.dumps(s)

        cams = [("main", self.cameras["main"].url), ("hevc", self.cameras["hevc"].url)]
        cams += list(self.many_url.items())
        lines = [
            "[server]",
            'host = "127.0.0.1"',
            "port = 0",  # replaced per gateway start
            # The flood phase's clients say where they come from, as HAProxy would; its
            # guessers and drippers come from other loopback addresses, as themselves.
            'trusted_proxies = ["127.0.0.1/32"]',
            "[limits]",
            "max_sessions_per_account = 2000",  # one bench account opens every viewer
            "[auth]",
            f"secret = {q(SECRET)}",
            "[storage]",
            f"database = {q(str(self.db_path))}",
            "[cors]",
            f"origins = [{q(f'http://127.0.0.1:{self.page_port}')}]",
            "[relay]",
            f"linger_seconds = {LINGER}",
            "start_timeout_seconds = 10.0",
            "max_viewers = 2000",
            "max_viewers_per_camera = 1000",
        ]
        for cid, url in cams:
            lines += [
                "[[cameras]]",
                f"id = {q(cid)}",
                f"name = {q('bench ' + cid)}",
                "lat = 25.04",
                "lon = 121.56",
                f"source = {q(url)}",
            ]
        self._config_text = "\n".join(lines) + "\n"

    def config_text(self) -> str:
        """The gateways' settings (TOML), with `port = 0` for each start to replace."""
        return self._config_text

    @contextlib.asynccontextmanager
    async def gateway(self, name: str, extra_toml: str = ""):  # type: ignore[no-untyped-def]
        """A gateway of its own for a phase; `extra_toml` adds tables (e.g. [turn])."""
        port = free_port()
        config = self.workdir / f"bench-{port}.toml"
        config.write_text(self._config_text.replace("port = 0", f"port = {port}") + extra_toml)
        gw = Gateway(self.workdir, config, port, name, self.gateway_src)
        await gw.start()
        try:
            yield gw
        finally:
            await gw.stop()

    @contextlib.asynccontextmanager
    async def workers(self, gw: Gateway, names: list[str], camera: str = "main"):  # type: ignore[no-untyped-def]
        procs = [WorkerProc(n) for n in names]
        try:
            await asyncio.gather(*(p.start(gw.url, camera, self.token) for p in procs))
            yield procs
        finally:
            await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
