"""The benchmark's phases, in the order a full run takes them, and running a list of them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from project import ROOT
from sampling import machine_info
from stage import LINGER, Stage

from . import (
    capacity,
    cluster,
    encodes,
    fanout,
    flood,
    many,
    masks,
    soak,
    spread,
    tablets,
    teardown,
    transcode,
    ttff,
    vp8,
)

PHASES: dict[str, Callable[[Stage], Awaitable[None]]] = {
    "ttff": ttff.run,
    "fanout": fanout.run,
    "teardown": teardown.run,
    "many": many.run,
    "transcode": transcode.run,
    "flood": flood.run,
    "vp8": vp8.run,
    "cluster": cluster.run,
    "capacity": capacity.run,
    "spread": spread.run,
    "tablets": tablets.run,
    "masks": masks.run,
    "encodes": encodes.run,
    "soak": soak.run,
}


async def run_phases(stage: Stage, phases: list[str]) -> None:
    stage.results["machine"] = machine_info()
    stage.results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    stage.results["quick"] = stage.plan.quick
    stage.results["setup"] = {
        "camera": "tests/support/rtsp_camera.py --codec h264 --profile high --width 1280 "
        "--height 720 --fps 25 --bitrate-kbps 2000 --gop-seconds 2 --pattern bars --filler",
        "linger_seconds": LINGER,
        "viewer_count_method": "RTP marker bits counted at the UDP socket, before SRTP",
    }
    stage.results["git"] = _git_head()
    if stage.gateway_rev:
        stage.results["git"]["gateway_rev"] = stage.gateway_rev
        stage.results["git"]["gateway_modified"] = False
    main = stage.cameras["main"]
    main.start()
    try:
        for phase in phases:
            t = time.monotonic()
            await PHASES[phase](stage)
            stage.results.setdefault("phase_seconds", {})[phase] = round(time.monotonic() - t)
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
