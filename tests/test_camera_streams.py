"""What a camera's stream makes the relay do: pass it through, rebase its clock, or
re-encode it for one pull, keeping its colours."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest
from support.gateway import camera_entry, settings_for
from support.rtp import RtpRecorder, digest
from support.rtsp_client import colour, read_access_units, read_colour

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
    # The restart replays the camera's first pictures, so the pull's own first keyframe
    # looks the same: match the restart's, the last copy.
    start = max(i for i, seen in enumerate(received) if seen == expected[0])
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


@pytest.mark.parametrize("colorimetry", [None, "1:3:5:1"])
async def test_a_re_encode_keeps_the_cameras_colours(make_rtsp_camera, start_gateway, colorimetry):
    # None: what GStreamer gives a small picture (limited range, BT.601); "1:3:5:1":
    # full range and BT.709, which no player assumes for 320x240.
    camera = make_rtsp_camera(bframes=2, colorimetry=colorimetry, **SMALL)
    described = await asyncio.to_thread(read_colour, camera.url)
    assert described[0] != 0 and 2 not in described[1:], "the camera leaves its colours open"
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer, _ = await watch(gateway)
    assert gateway.app[HUBS].get("cam").info.mode == "transcode"
    assert colour(viewer.last_frame) == described
    await viewer.close(gateway.http)


async def test_a_re_encoded_rgb_picture_is_described_as_converted(start_gateway):
    # The demo pattern is RGB: converted to limited-range BT.709 YUV, and said so.
    demo = camera_entry("cam", "demo:testsrc", demo_size="320x240", demo_fps=25)
    gateway = await start_gateway(settings_for([demo]))
    viewer, _ = await watch(gateway)
    range_, matrix, _primaries, _transfer = colour(viewer.last_frame)
    assert (range_, matrix) == (1, 1)  # MPEG (limited) range, BT.709
    await viewer.close(gateway.http)
