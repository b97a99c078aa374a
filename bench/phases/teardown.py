"""Teardown: the camera's RTSP session closing after the last viewer leaves, and revoke."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from log import log
from processes import Gateway, WorkerProc
from stage import LINGER, Stage
from stats import summary


async def run(stage: Stage) -> None:
    async with stage.gateway("teardown") as gw, stage.workers(gw, ["teardown"]) as (w,):
        closes = await rtsp_close_times(stage, w)
        revokes = await revoke_times(stage, gw, w)
    stage.results["teardown"] = {
        "linger_s": LINGER,
        "rtsp_closed_after_linger_s": summary(closes),
        "revoke_to_pc_closed_s": summary([r["closed_s"] for r in revokes if r["closed_s"]]),
        "revoke_raw": revokes,
    }


async def rtsp_close_times(stage: Stage, w: WorkerProc) -> list[float]:
    """A viewer joins and leaves: from its DELETE to the RTSP session closing, minus linger."""
    cam = stage.cameras["main"]
    closes = []
    for _ in range(stage.plan.teardown_reps):
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
    return closes


async def revoke_times(stage: Stage, gw: Gateway, w: WorkerProc) -> list[dict[str, Any]]:
    """An admin revokes a viewer's session: the answer, and when its peer connection closed."""
    revokes = []
    async with aiohttp.ClientSession() as http:
        admin = {"Authorization": f"Bearer {stage.admin}"}
        for _ in range(stage.plan.revoke_reps):
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
    return revokes
