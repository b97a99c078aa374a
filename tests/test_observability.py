"""What operators see: Prometheus metrics, liveness and readiness, JSON log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time

import aiohttp
import pytest
from support.gateway import bearer, camera_entry, settings_for
from support.metrics import samples
from support.process import GatewayProcess
from support.viewer import Viewer
from support.waiting import until

from gateway.app import SETTINGS
from gateway.logs import JsonFormatter, RedactCredentials, setup_logging


async def test_metrics_follow_viewers_and_denials(start_gateway):
    entry = camera_entry("cam", "demo:testsrc", demo_size="160x120", demo_fps=10)
    gateway = await start_gateway(settings_for([entry]))
    viewer = gateway.viewer("cam")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(5)
    refused = await gateway.viewer("cam", "stranger").connect(gateway.http)
    assert refused.status == 403
    forged = {"Authorization": "Bearer forged"}
    assert (await gateway.http.get(f"{gateway.url}/api/me", headers=forged)).status == 401
    not_admin = await gateway.http.get(f"{gateway.url}/api/grants", headers=gateway.bearer())
    assert not_admin.status == 403
    text = await (await gateway.http.get(f"{gateway.url}/metrics")).text()
    values = samples(text)
    camera = (("camera", "cam"),)
    assert values[("cctv_viewers", camera)] == 1
    assert values[("cctv_active_pulls", ())] == 1
    assert values[("cctv_camera_up", camera)] == 1
    assert values[("cctv_bytes_out_total", camera)] > 0
    assert values[("cctv_sessions", (("state", "connected"),))] == 1
    for reason in ("no grant", "invalid token", "not an administrator"):
        assert values[("cctv_access_denials_total", (("reason", reason),))] == 1
    assert values[("cctv_time_to_first_frame_seconds_count", ())] == 1
    # A healthy viewer of a healthy camera: neither counter moves. tests/test_relay.py
    # makes each one move (a full socket, a camera restart) and reads the new value.
    assert values[("cctv_upstream_reconnects_total", camera)] == 0
    assert values[("cctv_frames_dropped_slow_viewer_total", camera)] == 0
    assert "demo:" not in text and "rtsp" not in text
    await viewer.close(gateway.http)


async def test_readiness_follows_the_database(start_gateway):
    entry = camera_entry("cam", "demo:testsrc", demo_size="160x120")
    gateway = await start_gateway(settings_for([entry]))
    assert (await gateway.http.get(f"{gateway.url}/healthz")).status == 200
    assert (await gateway.http.get(f"{gateway.url}/readyz")).status == 200
    # Another process makes the grants unreadable (the table renamed away).
    path = gateway.app[SETTINGS].storage.database
    with sqlite3.connect(path) as other:
        other.execute("ALTER TABLE grant_members RENAME TO grant_members_gone")
        other.execute("ALTER TABLE grants RENAME TO grants_gone")

    async def ready() -> int:
        return (await gateway.http.get(f"{gateway.url}/readyz")).status

    # The grant sweep reads twice a second; readiness answers from what it saw.
    deadline = time.monotonic() + 3
    while await ready() == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await ready() == 503
    assert (await gateway.http.get(f"{gateway.url}/healthz")).status == 200
    with sqlite3.connect(path) as other:
        other.execute("ALTER TABLE grants_gone RENAME TO grants")
        other.execute("ALTER TABLE grant_members_gone RENAME TO grant_members")
    deadline = time.monotonic() + 3
    while await ready() == 503 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await ready() == 200


def test_log_lines_are_json_with_ids_and_no_credentials():
    record = logging.LogRecord(
        "gateway.relay.hub",
        logging.WARNING,
        __file__,
        1,
        "camera %s: failed at %s",
        ("cam-1", "rtsp://admin:pw123@10.0.0.9/s"),
        None,
    )
    record.camera_id = "cam-1"
    record.session_id = "abc"
    RedactCredentials().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["camera_id"] == "cam-1"
    assert line["session_id"] == "abc"
    assert "pw123" not in line["message"] and "rtsp://***@10.0.0.9/s" in line["message"]


PASSWORD = "S3cretPW"


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_the_running_gateways_log_masks_credentials(make_rtsp_camera, tmp_path, log_format):
    """`python -m gateway` as an operator runs it; its real stderr is read."""
    camera = make_rtsp_camera(user="admin", password="right-pass", width=320, height=240)
    source = camera.url.replace("right-pass", PASSWORD)  # the camera refuses it
    gateway = GatewayProcess(
        tmp_path, [camera_entry("cam", source)], tables={"server": {"log_format": log_format}}
    )
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as http:
            viewer = Viewer(gateway.url, "cam", headers=bearer())
            response = await viewer.connect(http)
            assert response.status == 503
            assert PASSWORD not in await response.text()
            await viewer.close()
            # Access logging is off: an event-stream URL, ticket and all, is not logged.
            ticket = await http.post(f"{gateway.url}/api/events/ticket", headers=bearer())
            url = gateway.url + (await ticket.json())["url"]
            async with http.get(url) as stream:
                assert stream.status == 200
        # A library logs what a client sent: aiohttp's parser refuses this header and
        # logs it, credentials and all, with its traceback.
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: rtsp://admin:%s@10.0.0.9/s\x01\r\n\r\n"
            % PASSWORD.encode()
        )
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(12), 10)).endswith(b"400")
        writer.close()
        stderr = lambda: "".join(gateway.stderr)  # noqa: E731
        await until(lambda: "Error handling request" in stderr(), 10, "aiohttp's error line")
        await until(lambda: "refused the credentials" in stderr(), 10, "the camera's refusal")
    finally:
        gateway.stop()
    log = stderr()
    assert PASSWORD not in log and "admin:" not in log, log
    assert "rtsp://***@10.0.0.9/s" in log  # the library's line is there, masked
    assert "ticket=" not in log and "/api/events" not in log
    if log_format == "json":
        lines = [json.loads(line) for line in log.splitlines()]  # every line is JSON
        assert any(line.get("camera_id") == "cam" for line in lines)


NOISY = ("aiortc", "aioice", "aiohttp.access")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_log_handler_masks_credentials_in_any_loggers_message(log_format, capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in NOISY}
    try:
        setup_logging(log_format)  # what `gateway --config` installs, writing to stderr
        logging.getLogger("libav.rtsp").warning("open %s failed", "rtsp://admin:pw9@10.0.0.9/s")
    finally:
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for name, noisy_level in levels.items():
            logging.getLogger(name).setLevel(noisy_level)
    written = capsys.readouterr().err
    assert "pw9" not in written and "open rtsp://***@10.0.0.9/s failed" in written
