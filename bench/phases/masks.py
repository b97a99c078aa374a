"""Privacy masks (issue 23): what one masked 720p25 camera costs, and how late it is.

The main camera (720p25 High, 2 Mbit/s) is configured a second time as `masked`, with
two masks of a typical size (a window, solid; an entrance, pixelated): the gateway
decodes it once, paints the masks, and encodes it once for all of its viewers.

- CPU of the masked camera with 1, 10 and 50 viewers (aiortc, counting packets):
  the gateway's, its event loop's (the fan-out), and the rest (the pull, the decode,
  the masks and the encode, shared by every viewer);
- first frame for a masked camera: cold (the camera idle; the pull, the decoder and
  the encoder start) and warm (another viewer watches: the encode makes a keyframe
  for the joiner);
- latency added by the mask: a viewer of `masked` and one of `main` (passed
  through), each matched frame by frame against a plain RTSP client of the camera
  (bench/latency.py; the masked encode keeps the camera's keyframes, so keyframes
  pair the frames as for the passthrough path).
"""

from __future__ import annotations

import asyncio
from typing import Any

from latency import match_latency
from log import log
from processes import RtspProbe
from project import grant_cameras
from stage import ACCOUNT, LINGER, Stage
from stats import rounded, summary

from .transcode import ramp

# Two masks of a typical size, about 12 % and 5 % of the picture.
MASKS = (
    '{ label = "window", fill = "solid", '
    "polygon = [[0.55, 0.10], [0.90, 0.10], [0.90, 0.45], [0.55, 0.45]] }, "
    '{ label = "entrance", fill = "pixelate", '
    "polygon = [[0.05, 0.60], [0.30, 0.55], [0.32, 0.80], [0.05, 0.80]] }"
)


def masked_camera_toml(url: str, camera_id: str = "masked") -> str:
    """A [[cameras]] table for the main camera again, masked."""
    return (
        f'[[cameras]]\nid = "{camera_id}"\nname = "bench {camera_id}"\nlat = 25.04\n'
        f'lon = 121.56\nsource = "{url}"\nmasks = [{MASKS}]\n'
    )


async def run(stage: Stage) -> None:
    plan = stage.plan
    main = stage.cameras["main"]
    grant_cameras(stage.db_path, ["masked"], ACCOUNT)
    results: dict[str, Any] = {}
    levels = [1, 10] if plan.quick else [1, 10, 50]
    joins = 4 if plan.quick else 12
    probe = RtspProbe(main.url)
    await probe.start()
    try:
        async with (
            stage.gateway("masks", masked_camera_toml(main.url)) as gw,
            stage.workers(gw, ["decode", "latency", "count0", "count1"], camera="masked") as (
                dec,
                lat,
                *counts,
            ),
        ):
            log("masks: first frame, cold (the masked camera idle)")
            cold = []
            for _ in range(2 if plan.quick else 4):
                cold += (await dec.call("ttff", n=1, min_delay=0, max_delay=0, hold=0))["joins"]
                await dec.call("leave")
                await asyncio.sleep(LINGER + 1.5)  # the pull stops: the next join is cold
            results["first_frame_cold_ms"] = summary(
                [j["ttff_s"] for j in cold if j.get("ttff_s") is not None], 1000
            )

            log("masks: latency, a masked and a passed-through viewer against the camera")
            await lat.call("join", n=1, log=True, camera="masked", wait_frames=10)
            await lat.call("join", n=1, log=True, camera="main", wait_frames=10)
            await asyncio.sleep(plan.settle)
            since = probe.frames[-1][0] if probe.frames else 0.0
            await asyncio.sleep(plan.window)
            masked_log, main_log = (await lat.call("log", since=since))["viewers"]
            direct = [f for f in probe.frames if f[0] >= since - 1.0]
            masked, passed = match_latency(direct, masked_log), match_latency(direct, main_log)
            for m in (masked, passed):
                for key in ("_first", "_last", "_key", "_delta"):
                    m.pop(key, None)
            results["latency_masked"], results["latency_passthrough"] = masked, passed
            if masked.get("matched") and passed.get("matched"):
                results["latency_added_ms_p50"] = rounded(
                    masked["first_packet_ms"]["p50"] - passed["first_packet_ms"]["p50"], 1
                )
            await lat.call("leave", n=None)

            log(f"masks: first frame, warm ({joins} joins while one viewer watches)")
            await counts[0].call("join", n=1, wait_frames=10)
            warm = (await dec.call("ttff", n=joins, hold=0, timeout=10))["joins"]
            await dec.call("leave")
            results["first_frame_warm_ms"] = summary(
                [j["ttff_s"] for j in warm if j.get("ttff_s") is not None], 1000
            )
            results["first_frame_failed"] = sum(1 for j in cold + warm if j.get("ttff_s") is None)

            rows = await ramp(stage, gw, counts, main, levels, "masks", have=1)
            results["cpu"] = rows
            await asyncio.gather(*(w.call("leave") for w in counts))
    finally:
        await probe.stop()
    stage.results["masks"] = results
    log(
        f"  masks: first frame cold p50 {results['first_frame_cold_ms'].get('p50')} ms, "
        f"warm p50 {results['first_frame_warm_ms'].get('p50')} ms; latency added "
        f"{results.get('latency_added_ms_p50')} ms"
    )
