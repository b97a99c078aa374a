"""Time to first frame: a cold start, then aiortc and Chromium joins while the camera is warm."""

from __future__ import annotations

from typing import Any

from chromium import chromium_ttff
from log import log
from stage import Stage
from stats import rounded, summary


async def run(stage: Stage) -> None:
    plan = stage.plan
    cam = stage.cameras["main"]
    async with stage.gateway("ttff") as gw, stage.workers(gw, ["decode", "warm"]) as (dec, warm):
        log("TTFF: cold start (camera idle, first viewer)")
        cold = (await dec.call("ttff", n=1, min_delay=0, max_delay=0, hold=0.5))["joins"][0]
        stage.results["ttff_cold_aiortc"] = cold
        await warm.call("join", n=1, wait_frames=10)
        log(f"TTFF: {plan.ttff_joins} aiortc joins (camera warm, random 0-2 s apart)")
        joins = (await dec.call("ttff", n=plan.ttff_joins, hold=0.5, timeout=10))["joins"]
        stage.results["ttff_aiortc"] = ttff_summary(joins)
        log(f"TTFF: {plan.chromium_joins} Chromium joins")
        try:
            chrome = await chromium_ttff(
                f"{gw.url}/whep/main", stage.token, stage.page_port, plan.chromium_joins
            )
            stage.results["ttff_chromium"] = {
                "browser": chrome["browser"],
                **ttff_summary(chrome["joins"]),
            }
        except Exception as exc:  # e.g. no chromium: report, go on
            log(f"Chromium TTFF failed: {type(exc).__name__}: {exc}")
            stage.results["ttff_chromium"] = {"error": f"{type(exc).__name__}: {exc}"}
        await warm.call("leave")
    assert cam.running


def ttff_summary(joins: list[dict[str, Any]]) -> dict[str, Any]:
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
        "media_ahead_ms_max": rounded(max((j.get("media_ahead_ms", 0) for j in ok), default=None)),
        "errors": [j["error"] for j in joins if "error" in j][:3],
        "raw": joins,
    }
