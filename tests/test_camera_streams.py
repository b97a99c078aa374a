"""What a camera's stream makes the relay do: pass it through, rebase its clock, or
re-encode it for one pull, keeping its colours."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from support.gateway import camera_entry, settings_for
from support.rtp import RtpRecorder, digest
from support.rtsp_client import read_access_units

from gateway.app import HUBS
from gateway.relay import source

SMALL = {"width": 320, "height": 240}


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def watch(gateway, recorder: bool = False):
    viewer = gateway.viewer("cam")
    recording = RtpRecorder(viewer) if recorder else None
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(10)
    return viewer, recording


def messages(caplog, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.message]


async def test_a_second_client_restarting_the_clock_keeps_passthrough(
    make_rtsp_camera, start_gateway, caplog
):
    caplog.set_level(logging.INFO, logger="gateway.relay")
    camera = make_rtsp_camera(seekable=True, **SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    hub = gateway.app[HUBS].get("cam")
    viewer, recorder = await watch(gateway, recorder=True)
    assert hub.info.mode == "passthrough"

    # Another client plays the same shared mount: the camera restarts its clock for all.
    reference = await asyncio.to_thread(read_access_units, camera.url, 3.0)
    assert await viewer.wait_frames(10, timeout=5), "the viewer froze after the clock jump"
    assert messages(caplog, logging.INFO, "clock jumped back"), "no jump: the test shows nothing"
    assert hub.info.mode == "passthrough"
    assert camera.total_connections == 2, "the gateway reconnected"

    # Byte for byte what the other client got, in order, with nothing missing.
    received = [digest(units) for units in recorder.access_units()]
    expected = [digest(units) for units in reference]
    assert len(expected) > 50 and expected[0] in received
    start = received.index(expected[0])
    assert received[start : start + len(expected)] == expected
    # The viewer's timeline went on forward across the jump.
    stamps = [p.timestamp for p in recorder.media]
    assert all((b - a) % (1 << 32) < 1 << 31 for a, b in itertools.pairwise(stamps))
    await viewer.close(gateway.http)


async def test_b_slices_make_one_pull_a_re_encode(
    make_rtsp_camera, start_gateway, caplog, monkeypatch
):
    # A camera whose SPS keeps quiet about its B-frames: only its slices tell.
    monkeypatch.setattr(source, "declares_b_frames", lambda ctx: False)
    caplog.set_level(logging.INFO, logger="gateway.relay")
    camera = make_rtsp_camera(bframes=2, **SMALL)
    gateway = await start_gateway(
        settings_for([camera_entry("cam", camera.url)], linger_seconds=0.2)
    )
    hub = gateway.app[HUBS].get("cam")
    viewer, _ = await watch(gateway)
    await wait_for(lambda: hub.info and hub.info.mode == "transcode", 10, "a re-encode")
    assert await viewer.wait_frames(10)
    assert messages(caplog, logging.WARNING, "B slices"), "the decision was not logged as a warning"
    await viewer.close(gateway.http)
    await wait_for(lambda: not hub.pulling, 5, "the pull to stop")

    # The camera is reconfigured without B-frames: the next pull passes it through.
    camera.restart(**SMALL)
    viewer, _ = await watch(gateway)
    assert hub.info.mode == "passthrough"
    await viewer.close(gateway.http)
