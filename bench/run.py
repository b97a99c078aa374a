"""The gateway benchmark (issue 5): `make bench`, or `.venv/bin/python bench/run.py [--quick]`.

It starts everything itself and stops it all afterwards, on loopback only:
- real GStreamer RTSP cameras (tests/camera/rtsp_camera.py, Debian's /usr/bin/python3);
- the gateway, as its own process (`python -m gateway --config <temp TOML>`);
- aiortc viewers in worker processes (bench/viewers.py), headless Debian Chromium
  (bench/chromium.py), and a plain RTSP client (bench/rtsp_probe.py).

It writes bench/results.json and bench/results.md (with --quick: bench/out/results-quick.*),
and prints the Markdown table. Gateway logs and py-spy profiles go to bench/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from latency import match_latency_many
from log import log
from processes import Gateway, RtspProbe, WorkerProc
from project import (
    BENCH,
    OUT,
    ROOT,
    RtspCamera,
    free_port,
    grant_cameras,
    make_camera,
    mint_token,
)
from pyspy import profile_gateway
from report import markdown, targets
from sampling import (
    cpu_seconds,
    cpu_split,
    machine_busy,
    machine_info,
    main_thread_cpu_seconds,
    proc_snapshot,
    rss_mb,
    top_others,
    wait_quiet,
)
from stats import rounded, summary

SECRET = "bench-secret-of-at-least-32-bytes-0123456789abcdef"
ACCOUNT = "bench-viewer"
CAMERA = dict(codec="h264", profile="high", width=1280, height=720, fps=25)
CAMERA.update(bitrate_kbps=2000, gop_seconds=2, pattern="bars", filler=True)
LINGER = 2.0
PROBE_VIEWERS = 5  # latency is sampled by this many viewers, each at its own fan-out position


# --- the benchmark -----------------------------------------------------------------


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

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 10, 6, [1, 20], 5.0, 3.0, 1, 2, 5, 1, [1, 10], None, 2)
        return cls(False, 30, 30, [1, 50, 100, 200], 12.0, 4.0, 3, 5, 20, 4, [1, 50], 100)


@dataclass
class Bench:
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
        self.many_ids = [f"many-{i:02d}" for i in range(self.plan.many_cameras)]
        self.many_url = {cid: procs[i % len(procs)].url for i, cid in enumerate(self.many_ids)}
        self.config = self.workdir / "bench.toml"
        self._write_config()
        grant_cameras(self.db_path, ["main", "hevc", *self.many_ids], ACCOUNT)

    def _write_config(self) -> None:
        def q(s: str) -> str:
            return json.dumps(s)

        cams = [("main", self.cameras["main"].url), ("hevc", self.cameras["hevc"].url)]
        cams += list(self.many_url.items())
        lines = [
            "[server]",
            'host = "127.0.0.1"',
            "port = 0",  # replaced per gateway start
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

    @contextlib.asynccontextmanager
    async def gateway(self, name: str):  # type: ignore[no-untyped-def]
        port = free_port()
        config = self.workdir / f"bench-{port}.toml"
        config.write_text(self._config_text.replace("port = 0", f"port = {port}"))
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

    # --- TTFF ------------------------------------------------------------------------

    async def run_ttff(self) -> None:
        plan = self.plan
        cam = self.cameras["main"]
        async with self.gateway("ttff") as gw, self.workers(gw, ["decode", "warm"]) as (dec, warm):
            log("TTFF: cold start (camera idle, first viewer)")
            cold = (await dec.call("ttff", n=1, min_delay=0, max_delay=0, hold=0.5))["joins"][0]
            self.results["ttff_cold_aiortc"] = cold
            await warm.call("join", n=1, wait_frames=10)
            log(f"TTFF: {plan.ttff_joins} aiortc joins (camera warm, random 0-2 s apart)")
            joins = (await dec.call("ttff", n=plan.ttff_joins, hold=0.5, timeout=10))["joins"]
            self.results["ttff_aiortc"] = self._ttff_summary(joins)
            log(f"TTFF: {plan.chromium_joins} Chromium joins")
            from chromium import chromium_ttff

            try:
                chrome = await chromium_ttff(
                    f"{gw.url}/whep/main", self.token, self.page_port, plan.chromium_joins
                )
                self.results["ttff_chromium"] = {
                    "browser": chrome["browser"],
                    **self._ttff_summary(chrome["joins"]),
                }
            except Exception as exc:  # e.g. no chromium: report, go on
                log(f"Chromium TTFF failed: {type(exc).__name__}: {exc}")
                self.results["ttff_chromium"] = {"error": f"{type(exc).__name__}: {exc}"}
            await warm.call("leave")
        assert cam.running

    @staticmethod
    def _ttff_summary(joins: list[dict[str, Any]]) -> dict[str, Any]:
        ok = [j for j in joins if j.get("ttff_s") is not None]
        fps_hold = [
            (j["frames_in_hold"] - j.get("frames_at_first", 1)) / j["hold_s"]
            for j in ok
            if "frames_in_hold" in j
        ]
        return {
            "joins": len(joins),
            "failed": len(joins) - len(ok),
            "ttff_ms": summary([j["ttff_s"] for j in ok], 1000),
            "live_picture_ms": summary([j["live_s"] for j in ok if j.get("live_s")], 1000),
            "decoder_warnings": sum(j.get("decoder_warnings", 0) for j in joins),
            "presented_in_first_0_5_s": summary(
                [j["presented_in_hold"] for j in ok if "presented_in_hold" in j]
            ),
            "answer_ms": summary([j["answer_s"] for j in ok], 1000),
            "connected_ms": summary([j["connected_s"] for j in ok if j.get("connected_s")], 1000),
            "fps_after_first_frame": summary(fps_hold),
            "media_ahead_ms_max": rounded(
                max((j.get("media_ahead_ms", 0) for j in ok), default=None)
            ),
            "errors": [j["error"] for j in joins if "error" in j][:3],
            "raw": joins,
        }

    # --- fan-out -------------------------------------------------------------------

    async def run_fanout(self) -> None:
        plan = self.plan
        names = ["probe", "decode"] + [f"count{i}" for i in range(plan.count_workers)]
        probe = RtspProbe(self.cameras["main"].url)
        await probe.start()
        levels: list[dict[str, Any]] = []
        self.results["fanout"] = levels
        try:
            async with self.gateway("fanout") as gw, self.workers(gw, names) as workers:
                lat_w, dec_w, *count_ws = workers
                have = {w.name: 0 for w in workers}
                idle_rss = rss_mb(gw.pid)
                idle_cpu0, t_idle0 = cpu_seconds(gw.pid), time.monotonic()
                await asyncio.sleep(2)
                idle_cpu = 100 * (cpu_seconds(gw.pid) - idle_cpu0) / (time.monotonic() - t_idle0)
                self.results["gateway_idle"] = {
                    "cpu_pct": rounded(idle_cpu, 2),
                    "rss_mb": rounded(idle_rss, 1),
                }
                for level in plan.levels:
                    log(f"fan-out: ramping to {level} viewers")
                    want = {
                        "probe": 1 if level < 10 else PROBE_VIEWERS,
                        "decode": 1 if level >= 2 else 0,
                    }
                    rest = level - sum(want.values())
                    for i, w in enumerate(count_ws):
                        want[w.name] = rest // len(count_ws) + (
                            1 if i < rest % len(count_ws) else 0
                        )
                    t_ramp = time.monotonic()
                    joins = await asyncio.gather(
                        *(
                            w.call(
                                "join",
                                n=want[w.name] - have[w.name],
                                kind="decode" if w is dec_w else "count",
                                log=w is lat_w,
                                batch=4,
                                pause=0.4,
                            )
                            for w in workers
                            if want[w.name] > have[w.name]
                        )
                    )
                    ramp_s = time.monotonic() - t_ramp
                    failed = sum(j["failed"] for j in joins)
                    errors = [e for j in joins for e in j["errors"]][:3]
                    for w in workers:
                        have[w.name] = max(have[w.name], want[w.name])
                    await asyncio.sleep(plan.settle)
                    result = await self._measure(gw, workers, probe, lat_w)
                    result.update(viewers=level, ramp_s=rounded(ramp_s, 1), join_failed=failed)
                    if errors:
                        result["join_errors"] = errors
                    levels.append(result)
                    log(
                        f"  {level} viewers: gateway {result['gateway_cpu_pct']:.1f}% CPU, "
                        f"{result['gateway_rss_mb']:.0f} MB, fps min/median "
                        f"{result['fps_min']}/{result['fps_median']}"
                    )
                    if level == plan.profile_at:
                        self.results["profile"] = await profile_gateway(gw.pid, level)
                log("fan-out: all viewers leave")
                await asyncio.gather(*(w.call("leave") for w in workers))
        finally:
            await probe.stop()
        self.results["camera_stream"] = self._camera_stream(probe.frames)

    async def _measure(
        self, gw: Gateway, workers: list[WorkerProc], probe: RtspProbe, lat_w: WorkerProc
    ) -> dict[str, Any]:
        window = self.plan.window
        pids = [w.pid for w in workers]
        cam_pid = self.cameras["main"]._proc.pid  # type: ignore[union-attr]
        waited = await wait_quiet({gw.pid, *pids, cam_pid, probe.pid, os.getpid()})
        s0 = await asyncio.gather(*(w.call("stats") for w in workers))
        snap0 = proc_snapshot()
        split0 = cpu_split(gw.pid)
        g0, m0, t0 = cpu_seconds(gw.pid), machine_busy(), time.monotonic()
        w0 = sum(cpu_seconds(p) for p in pids)
        c0 = cpu_seconds(cam_pid)
        p0 = cpu_seconds(probe.pid)
        await asyncio.sleep(window)
        g1, m1, t1 = cpu_seconds(gw.pid), machine_busy(), time.monotonic()
        split1 = cpu_split(gw.pid)
        w1 = sum(cpu_seconds(p) for p in pids)
        c1 = cpu_seconds(cam_pid)
        p1 = cpu_seconds(probe.pid)
        snap1 = proc_snapshot()
        s1 = await asyncio.gather(*(w.call("stats") for w in workers))
        rss = rss_mb(gw.pid)
        fps, decode_fps, lost, packets, states = [], [], 0, 0, Counter()
        counted = 0  # viewers that count packets (not the decoding or probe viewers)
        for a, b in zip(s0, s1, strict=True):
            dt = b["t"] - a["t"]
            for va, vb in zip(a["viewers"], b["viewers"], strict=False):
                rate = (vb["frames"] - va["frames"]) / dt
                fps.append(rate)
                states[vb["state"]] += 1
                if vb["kind"] == "decode":
                    decode_fps.append(rate)
                if vb["packets"] is not None:
                    lost += vb["lost"] - va["lost"]
                    packets += vb["packets"] - va["packets"]
                    counted += 1
        logs = (await lat_w.call("log", since=t0))["viewers"]
        direct = [f for f in probe.frames if f[0] >= t0 - 1.0]
        latency = match_latency_many(direct, [[f for f in lg if f[1] <= t1] for lg in logs])
        dt = t1 - t0
        # Every viewer gets the same packets; counting viewers give the rate.
        sent_per_s = packets / dt / counted * len(fps) if counted else 0.0
        per_packet = {  # gateway CPU seconds per packet sent, user and kernel
            part: rounded(1e6 * (split1[i] - split0[i]) / dt / sent_per_s, 1)
            if sent_per_s
            else None
            for i, part in enumerate(("user", "system"))
        }
        busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * 100 * (os.cpu_count() or 1)
        ours = (g1 - g0) + (w1 - w0) + (c1 - c0) + (p1 - p0)
        return {
            "window_s": rounded(dt, 1),
            "gateway_cpu_pct": round(100 * (g1 - g0) / dt, 1),
            "gateway_rss_mb": round(rss, 1),
            "gateway_system_cpu_pct": round(100 * (split1[1] - split0[1]) / dt, 1),
            "fps_min": rounded(min(fps), 2) if fps else None,
            "fps_median": rounded(statistics.median(fps), 2) if fps else None,
            "fps_decoding_viewer": rounded(decode_fps[0], 2) if decode_fps else None,
            "viewers_measured": len(fps),
            "viewers_below_20fps": sum(1 for f in fps if f < 20),
            "viewer_states": dict(states),
            "rtp_loss_pct": rounded(100 * lost / max(1, lost + packets), 3),
            "packets_sent_per_s": round(sent_per_s),
            "gateway_us_per_packet": per_packet,
            "latency": latency,
            "viewer_workers_cpu_pct": round(100 * (w1 - w0) / dt, 1),
            "camera_cpu_pct": round(100 * (c1 - c0) / dt, 1),
            "machine_busy_pct_of_one_core": round(busy, 1),
            # Whatever else ran on the machine meanwhile (kernel softirq, other jobs).
            "other_load_pct": round(busy - 100 * ours / dt, 1),
            "waited_for_quiet_s": waited,
            "other_top": top_others(
                snap0, snap1, {gw.pid, *pids, cam_pid, probe.pid, os.getpid()}, dt
            ),
        }

    @staticmethod
    def _camera_stream(frames: list[tuple[float, int, int, int]]) -> dict[str, Any]:
        if len(frames) < 50:
            return {}
        span = frames[-1][0] - frames[0][0]
        keys = [f[0] for f in frames if f[2]]
        gaps = [b - a for a, b in itertools.pairwise(keys)]
        return {
            "fps": rounded((len(frames) - 1) / span, 2),
            "kbps": rounded(sum(f[3] for f in frames) * 8 / span / 1000, 0),
            "avg_frame_bytes": int(statistics.mean(f[3] for f in frames)),
            "avg_keyframe_bytes": int(statistics.mean([f[3] for f in frames if f[2]] or [0])),
            "avg_delta_frame_bytes": int(statistics.mean(f[3] for f in frames if not f[2])),
            "keyframe_interval_s": rounded(statistics.median(gaps), 2) if gaps else None,
        }

    # --- teardown ------------------------------------------------------------------

    async def run_teardown(self) -> None:
        plan = self.plan
        cam = self.cameras["main"]
        closes, revokes = [], []
        async with self.gateway("teardown") as gw, self.workers(gw, ["teardown"]) as (w,):
            for _ in range(plan.teardown_reps):
                await w.call("join", n=1, wait_frames=10)
                await asyncio.sleep(1.0)
                if cam.connections != 1:
                    log(f"teardown: camera has {cam.connections} connections, expected 1")
                left = await w.call("leave")
                closed = await asyncio.to_thread(cam.wait_connections, 0, LINGER + 15)
                t_closed = time.monotonic()
                if closed:
                    closes.append(t_closed - left["last_delete_sent"] - LINGER)
                await asyncio.sleep(0.5)
            async with aiohttp.ClientSession() as http:
                admin = {"Authorization": f"Bearer {self.admin}"}
                for _ in range(plan.revoke_reps):
                    joined = await w.call("join", n=1, wait_frames=10)
                    session_url = joined["sessions"][0]
                    session_id = session_url.rsplit("/", 1)[1]
                    await asyncio.sleep(1.0)
                    t0 = time.monotonic()
                    async with http.post(
                        f"{gw.url}/api/sessions/{session_id}/revoke",
                        json={"reason": "benchmark"},
                        headers=admin,
                    ) as response:
                        status = response.status
                    t_answer = time.monotonic()
                    closed = await w.call("closed_at", session=session_url, timeout=10)
                    revokes.append(
                        {
                            "status": status,
                            "answer_s": t_answer - t0,
                            "closed_s": (closed["closed_at"] - t0) if closed["closed_at"] else None,
                        }
                    )
        self.results["teardown"] = {
            "linger_s": LINGER,
            "rtsp_closed_after_linger_s": summary(closes),
            "revoke_to_pc_closed_s": summary([r["closed_s"] for r in revokes if r["closed_s"]]),
            "revoke_raw": revokes,
        }

    # --- many cameras ----------------------------------------------------------------

    async def run_many(self) -> None:
        plan = self.plan
        for cam in self.many_procs:
            cam.start()
        try:
            n_workers = min(4, plan.many_cameras)
            async with (
                self.gateway("many") as gw,
                self.workers(gw, [f"many{i}" for i in range(n_workers)]) as workers,
            ):
                log(f"many cameras: {plan.many_cameras} cameras, one viewer each")
                for i, cid in enumerate(self.many_ids):
                    await workers[i % n_workers].call("join", n=1, camera=cid)
                await asyncio.sleep(plan.settle + 2)
                cam_pids = [c._proc.pid for c in self.many_procs]  # type: ignore[union-attr]
                await wait_quiet({gw.pid, os.getpid(), *(w.pid for w in workers), *cam_pids})
                s0 = await asyncio.gather(*(w.call("stats") for w in workers))
                g0, t0 = cpu_seconds(gw.pid), time.monotonic()
                cams0 = sum(cpu_seconds(c._proc.pid) for c in self.many_procs)  # type: ignore[union-attr]
                await asyncio.sleep(plan.window)
                g1, t1 = cpu_seconds(gw.pid), time.monotonic()
                cams1 = sum(cpu_seconds(c._proc.pid) for c in self.many_procs)  # type: ignore[union-attr]
                s1 = await asyncio.gather(*(w.call("stats") for w in workers))
                fps = [
                    (vb["frames"] - va["frames"]) / (b["t"] - a["t"])
                    for a, b in zip(s0, s1, strict=True)
                    for va, vb in zip(a["viewers"], b["viewers"], strict=False)
                ]
                self.results["many_cameras"] = {
                    "cameras": plan.many_cameras,
                    "camera_processes": len(self.many_procs),
                    "rtsp_connections": sum(c.connections for c in self.many_procs),
                    "gateway_cpu_pct": round(100 * (g1 - g0) / (t1 - t0), 1),
                    "gateway_rss_mb": round(rss_mb(gw.pid), 1),
                    "fps_min": rounded(min(fps), 2) if fps else None,
                    "fps_median": rounded(statistics.median(fps), 2) if fps else None,
                    "camera_processes_cpu_pct": round(100 * (cams1 - cams0) / (t1 - t0), 1),
                }
                await asyncio.gather(*(w.call("leave") for w in workers))
        finally:
            for cam in self.many_procs:
                cam.stop()

    # --- transcode -------------------------------------------------------------------

    async def run_transcode(self) -> None:
        plan = self.plan
        cam = self.cameras["hevc"]
        cam.start()
        rows = []
        try:
            async with (
                self.gateway("transcode") as gw,
                self.workers(gw, ["tc0", "tc1"], camera="hevc") as workers,
            ):
                have = 0
                for level in plan.transcode_levels:
                    log(f"transcode (H.265 camera): {level} viewers")
                    add = level - have
                    await asyncio.gather(
                        *(
                            w.call(
                                "join",
                                n=add // 2 + (add % 2 if i == 0 else 0),
                                batch=4,
                                wait_frames=15,
                            )
                            for i, w in enumerate(workers)
                            if add // 2 + (add % 2 if i == 0 else 0) > 0
                        )
                    )
                    have = level
                    await asyncio.sleep(plan.settle)
                    await wait_quiet(
                        {gw.pid, os.getpid(), cam._proc.pid, *(w.pid for w in workers)}  # type: ignore[union-attr]
                    )
                    s0 = await asyncio.gather(*(w.call("stats") for w in workers))
                    g0, t0, sys0 = cpu_seconds(gw.pid), time.monotonic(), cpu_split(gw.pid)[1]
                    main0 = main_thread_cpu_seconds(gw.pid)
                    await asyncio.sleep(plan.window)
                    g1, t1, sys1 = cpu_seconds(gw.pid), time.monotonic(), cpu_split(gw.pid)[1]
                    main1 = main_thread_cpu_seconds(gw.pid)
                    s1 = await asyncio.gather(*(w.call("stats") for w in workers))
                    pairs = [
                        (va, vb, b["t"] - a["t"])
                        for a, b in zip(s0, s1, strict=True)
                        for va, vb in zip(a["viewers"], b["viewers"], strict=False)
                    ]
                    fps = [(vb["frames"] - va["frames"]) / dt for va, vb, dt in pairs]
                    pps = [
                        (vb["packets"] - va["packets"]) / dt
                        for va, vb, dt in pairs
                        if vb["packets"] is not None
                    ]
                    rows.append(
                        {
                            "viewers": level,
                            "gateway_cpu_pct": round(100 * (g1 - g0) / (t1 - t0), 1),
                            "gateway_system_cpu_pct": round(100 * (sys1 - sys0) / (t1 - t0), 1),
                            "event_loop_cpu_pct": round(100 * (main1 - main0) / (t1 - t0), 1),
                            "packets_per_viewer_s": round(statistics.median(pps)) if pps else None,
                            "gateway_rss_mb": round(rss_mb(gw.pid), 1),
                            "fps_min": rounded(min(fps), 2) if fps else None,
                            "fps_median": rounded(statistics.median(fps), 2) if fps else None,
                        }
                    )
                    log(f"  {level} viewers: gateway {rows[-1]['gateway_cpu_pct']}% CPU")
                await asyncio.gather(*(w.call("leave") for w in workers))
                modes = [
                    m for m in ("transcode", "passthrough") if f"hevc: live, {m}" in gw.tail(10_000)
                ]
        finally:
            cam.stop()
        self.results["transcode"] = rows
        self.results["transcode_mode_seen"] = modes

    # --- all -------------------------------------------------------------------------

    async def run(self, phases: list[str]) -> None:
        self.results["machine"] = machine_info()
        self.results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["quick"] = self.plan.quick
        self.results["setup"] = {
            "camera": "tests/camera/rtsp_camera.py --codec h264 --profile high --width 1280 "
            "--height 720 --fps 25 --bitrate-kbps 2000 --gop-seconds 2 --pattern bars --filler",
            "linger_seconds": LINGER,
            "viewer_count_method": "RTP marker bits counted at the UDP socket, before SRTP",
        }
        self.results["git"] = _git_head()
        if self.gateway_rev:
            self.results["git"]["gateway_rev"] = self.gateway_rev
            self.results["git"]["gateway_modified"] = False
        main = self.cameras["main"]
        main.start()
        try:
            for phase in phases:
                t = time.monotonic()
                await getattr(self, f"run_{phase}")()
                self.results.setdefault("phase_seconds", {})[phase] = round(time.monotonic() - t)
        finally:
            main.stop()


def _git_head() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    try:
        return {
            "head": git("rev-parse", "--short", "HEAD").strip(),
            "gateway_modified": bool(git("status", "--porcelain", "gateway").strip()),
        }
    except OSError:
        return {}


PHASES = ["ttff", "fanout", "teardown", "many", "transcode"]


async def amain() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a ~3 minute smoke run")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma list of {PHASES}")
    parser.add_argument(
        "--gateway-rev",
        help="run the gateway of this git commit (exported to a temp dir) instead of the work tree",
    )
    parser.add_argument("--levels", help="fan-out viewer counts, e.g. 1,50,100,200")
    parser.add_argument(
        "--out", help="output prefix (default bench/results or bench/results-quick)"
    )
    args = parser.parse_args()
    plan = Plan.make(args.quick)
    if args.levels:
        plan.levels = [int(n) for n in args.levels.split(",")]
        if plan.profile_at not in plan.levels:
            plan.profile_at = None
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    out = (
        Path(args.out) if args.out else (OUT / "results-quick" if args.quick else BENCH / "results")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        bench = Bench(plan, Path(tmp), gateway_rev=args.gateway_rev)
        bench.results["setup_plan"] = plan.__dict__
        try:
            await bench.run(phases)
        except BaseException:
            for gw_log in sorted(Path(tmp).glob("gateway-*.log"))[-1:]:
                print(f"--- {gw_log.name} (tail) ---", file=sys.stderr)
                print(
                    "\n".join(gw_log.read_text(errors="replace").splitlines()[-40:]),
                    file=sys.stderr,
                )
            raise
        finally:
            r = bench.results
            r.setdefault("setup", {})["profile_at"] = plan.profile_at
            r.setdefault("machine", machine_info())
            r.setdefault("started_at", "?")
            r["duration_s"] = round(time.monotonic() - started)
            r["targets"] = targets(r)
            out.with_suffix(".json").write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n")
            text = markdown(r)
            out.with_suffix(".md").write_text(text)
    print(text)
    log(f"done in {r['duration_s']} s: {out.with_suffix('.json')}, {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(amain()))
