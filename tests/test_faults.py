"""Camera faults against the real GStreamer camera: the hub survives each one.

Each test records how long its viewers were without a picture, in
test-artifacts/camera-faults.json, so the numbers can be read after a CI run, and
asserts the README's figure ("Behaviour under faults") with the headroom it explains.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import socket
import time
from pathlib import Path

import pytest
from support.events import EventReader
from support.gateway import camera_entry, settings_for
from support.metrics import per_camera, scrape
from support.waiting import until

from gateway.app import HUBS, SESSIONS

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SMALL = {"width": 320, "height": 240, "fps": 25}


def record_gap(name: str, viewer) -> float:
    """The longest time without a frame, in seconds, and keep it as an artifact."""
    stamps = [t for t, _, _ in viewer.frames]
    gap = max((b - a for a, b in itertools.pairwise(stamps)), default=0.0)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "camera-faults.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = round(gap, 2)
    path.write_text(json.dumps(results, indent=2))
    print(f"{name}: viewers without a picture for {gap:.2f} s")
    return gap


async def watching(gateway, camera_id: str = "cam"):
    viewer = gateway.viewer(camera_id)
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(5)
    return viewer


async def wait_state(hub, state: str, timeout: float) -> float:
    started = time.monotonic()
    while hub.state != state:
        assert time.monotonic() - started < timeout, f"hub stayed {hub.state}, not {state}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_stalled_camera_is_detected_and_reopened(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(**SMALL)
    stall = 2.0
    entry = camera_entry("cam", camera.url, stall_timeout_seconds=stall, open_timeout_seconds=2.0)
    gateway = await start_gateway(settings_for([entry]))
    hub = gateway.app[HUBS].get("cam")
    viewer = await watching(gateway)
    camera.pause()  # the TCP connection stays up; nothing arrives
    detected = await wait_state(hub, "offline", timeout=stall + 5)
    assert detected <= stall + 2.5, f"stall noticed after {detected:.1f} s"
    camera.resume()
    assert await viewer.wait_frames(10, timeout=20), "no picture after the camera came back"
    assert viewer.pc.connectionState == "connected"
    assert len(gateway.app[SESSIONS]) == 1  # the viewer stayed joined throughout
    # README: about 4.3 s. That is already the worst case of where the camera is in its
    # GOP: the 2 s stall timeout, a 0.2 s backoff and the reopen, then up to one 2 s GOP
    # for a keyframe. 1.7 s more is for a loaded machine (4.32 s measured with both
    # cores busy).
    gap = record_gap("stall", viewer)
    assert gap <= 6.0, f"viewers were without a picture for {gap:.2f} s, README says ~4.3"
    await viewer.close(gateway.http)


@pytest.mark.parametrize("fault", ["wrong password", "unknown path"])
async def test_refused_camera_is_clear_and_retries_back_off(
    make_rtsp_camera, start_gateway, caplog, fault
):
    caplog.set_level(logging.INFO)
    camera = make_rtsp_camera(user="admin", password="right-pass", **SMALL)
    if fault == "wrong password":
        source = camera.url.replace("right-pass", "n0t-Th3-pass")
        words = "refused the credentials"
    else:
        source = camera.url.replace("/cam", "/no-such-stream")
        words = "no such stream path (404)"
    settings = settings_for([camera_entry("cam", source)], linger_seconds=4.0)
    gateway = await start_gateway(settings)
    response = await gateway.viewer("cam").connect(gateway.http)
    assert response.status == 503
    assert words in (await response.json())["error"]
    assert int(response.headers["Retry-After"]) >= 1

    def delays() -> list[float]:
        return [float(d) for d in re.findall(r"retrying in ([\d.]+) s", caplog.text)]

    # The hub keeps trying through its linger: 0.2, 0.4, 0.8 s ...
    await until(lambda: len(delays()) >= 3, timeout=10, what="three retries")
    delays = delays()
    assert len(delays) >= 3 and delays == sorted(delays) and delays[-1] > delays[0]
    assert words in caplog.text
    assert "right-pass" not in caplog.text and "n0t-Th3-pass" not in caplog.text
    assert "rtsp://" not in caplog.text


def silent_listener(port: int) -> socket.socket:
    """A host that accepts connections and never answers: a dead camera on a live line."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    return listener


async def test_unreachable_camera_tells_viewers_and_refuses_newcomers(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(**SMALL)
    entry = camera_entry("cam", camera.url, stall_timeout_seconds=2.0, open_timeout_seconds=2.0)
    gateway = await start_gateway(settings_for([entry]))
    hub = gateway.app[HUBS].get("cam")
    async with EventReader(gateway) as events:
        viewer = await watching(gateway)
        camera.kill()
        listener = silent_listener(camera.port)
        try:
            offline = await events.wait_for("camera_state", timeout=10)
            assert offline["state"] == "offline" and offline["camera_id"] == "cam"
            assert "rtsp" not in json.dumps(offline)
            # A reopen meets the silent host and gives up after open_timeout_seconds.
            await until(
                lambda: "did not answer" in (hub.last_error or ""), 10, "a reopen to time out"
            )
            started = time.monotonic()
            response = await gateway.viewer("cam").connect(gateway.http)
            assert response.status == 503
            assert int(response.headers["Retry-After"]) >= 1
            assert time.monotonic() - started < 2, "a newcomer waited for a dead camera"
            assert len(gateway.app[SESSIONS]) == 1  # the existing viewer stays joined
            values = await scrape(gateway)  # what to alert on: up 0 while watched
            assert per_camera(values, "cctv_camera_up", "cam") == 0
            assert per_camera(values, "cctv_viewers", "cam") == 1
        finally:
            listener.close()
        events.events.clear()
        camera.restart()
        back = await events.wait_for("camera_state", timeout=20)
        assert back["state"] == "live"
        assert await viewer.wait_frames(10, timeout=20)
    # README: about 4.7 s, all told: the time the camera is away in this test (until a
    # reopen has timed out, ~2.3 s), its restart, a reconnect backoff of up to 1 s and a
    # GOP (2 s) at worst for its first keyframe. 5.5 s was measured with both cores busy;
    # 7 s leaves room for that and for the backoff's phase.
    gap = record_gap("unreachable", viewer)
    assert gap <= 7.0, f"viewers were without a picture for {gap:.2f} s, README says ~4.7"
    await viewer.close(gateway.http)


async def test_codec_and_resolution_change_mid_stream(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(codec="h264", **SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    hub = gateway.app[HUBS].get("cam")
    viewer = await watching(gateway)
    assert viewer.frames[-1][1:] == (320, 240) and hub.info.mode == "passthrough"
    camera.restart(codec="h265", width=640, height=480, fps=25)
    await until(lambda: viewer.frames[-1][1:] == (640, 480), 30, "the new picture size")
    assert await viewer.wait_frames(10)
    assert {(w, h) for _, w, h in viewer.frames[-10:]} == {(640, 480)}
    assert hub.info.mode == "transcode"
    assert viewer.pc.connectionState == "connected"  # no re-signaling
    # README: about 0.3 s (0.35 s with both cores busy). A reopen that comes before the
    # restarted camera listens costs one more backoff step (0.4 s); the rest, 0.8 s, is
    # for a loaded machine.
    gap = record_gap("codec and size change", viewer)
    assert gap <= 1.5, f"viewers were without a picture for {gap:.2f} s, README says ~0.3"
    await viewer.close(gateway.http)
