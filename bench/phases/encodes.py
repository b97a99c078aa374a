"""Shared encodes stay flat (issue 25): each shared encode with 1 and with 50 viewers.

An encode shared by every viewer should cost the same for 1 as for 50. Each kind runs
in a gateway of its own, with 1 and then 50 aiortc viewers (counting packets):
- passthrough: the main camera's own H.264, the reference: what sending one stream
  to 49 more viewers costs, with no encode at all;
- transcode: the H.265 camera, decoded and encoded once to H.264 (source.py);
- vp8: the main camera's VP8 rendition (viewers that offer no H.264);
- low: the main camera's lighter picture (`?rendition=low`, 640x360 at 15 fps);
- masked: the main camera with two privacy masks (decoded, masked, encoded once).

Each level reports the gateway's CPU, its event loop's (the fan-out to viewers: SRTP,
sockets, RTCP) and the rest (the pull and the shared decode and encode, in their own
threads). A gateway older than the masks (`--gateway-rev`) reports no masked row.
"""

from __future__ import annotations

import asyncio
from typing import Any

from log import log
from project import grant_cameras
from stage import ACCOUNT, Stage
from stats import rounded

from .masks import masked_camera_toml
from .transcode import ramp

# kind: (camera path the viewers open, join options)
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "passthrough": ("main", {}),
    "transcode": ("hevc", {}),
    "vp8": ("main", {"codec": "vp8"}),
    "low": ("main?rendition=low", {}),
    "masked": ("masked", {}),
}


async def run(stage: Stage) -> None:
    plan = stage.plan
    top = 10 if plan.quick else 50
    results: dict[str, Any] = {"levels": [1, top]}
    for kind, (camera, options) in KINDS.items():
        source = stage.cameras["hevc" if kind == "transcode" else "main"]
        if kind == "transcode":
            source.start()
        try:
            results[kind] = await _kind(stage, kind, camera, options, top)
        except Exception as exc:  # e.g. a gateway of an older commit without masks
            log(f"encodes: {kind} failed: {type(exc).__name__}: {exc}")
            results[kind] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        finally:
            if kind == "transcode":
                source.stop()
    stage.results["encodes"] = results


async def _kind(
    stage: Stage, kind: str, camera: str, options: dict[str, Any], top: int
) -> dict[str, Any]:
    extra = masked_camera_toml(stage.cameras["main"].url) if kind == "masked" else ""
    if kind == "masked":
        grant_cameras(stage.db_path, ["masked"], ACCOUNT)
    source = stage.cameras["hevc" if kind == "transcode" else "main"]
    async with (
        stage.gateway(f"encodes-{kind}", extra) as gw,
        stage.workers(gw, ["e0", "e1"], camera=camera) as workers,
    ):
        rows = await ramp(stage, gw, workers, source, [1, top], kind, camera=camera, **options)
        await asyncio.gather(*(w.call("leave") for w in workers))
    one, many = rows
    return {
        "rows": rows,
        "total_growth_pct": _growth(one["gateway_cpu_pct"], many["gateway_cpu_pct"]),
        "outside_loop_growth_pct": _growth(
            one["outside_loop_cpu_pct"], many["outside_loop_cpu_pct"]
        ),
        # What each viewer past the first adds to the event loop: the fan-out.
        "loop_pct_per_added_viewer": rounded(
            (many["event_loop_cpu_pct"] - one["event_loop_cpu_pct"]) / (top - 1), 3
        ),
    }


def _growth(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0:
        return None
    return rounded(100 * (b - a) / a, 1)
