"""What operators see: Prometheus metrics, liveness and readiness, JSON log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time

from prometheus_client.parser import text_string_to_metric_families
from support.gateway import camera_entry, settings_for

from gateway.app import SETTINGS
from gateway.logs import JsonFormatter, RedactCredentials


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_follow_viewers_and_denials(start_gateway):
    entry = camera_entry("cam", "demo:testsrc", demo_size="160x120", demo_fps=10)
    gateway = await start_gateway(settings_for([entry]))
    viewer = gateway.viewer("cam")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(5)
    refused = await gateway.viewer("cam", "stranger").connect(gateway.http)
    assert refused.status == 403
    text = await (await gateway.http.get(f"{gateway.url}/metrics")).text()
    values = samples(text)
    camera = (("camera", "cam"),)
    assert values[("cctv_viewers", camera)] == 1
    assert values[("cctv_active_pulls", ())] == 1
    assert values[("cctv_camera_up", camera)] == 1
    assert values[("cctv_bytes_out_total", camera)] > 0
    assert values[("cctv_sessions", (("state", "connected"),))] == 1
    assert values[("cctv_access_denials_total", (("reason", "no grant"),))] == 1
    assert values[("cctv_time_to_first_frame_seconds_count", ())] == 1
    assert "cctv_upstream_reconnects_total" in text
    assert "cctv_frames_dropped_slow_viewer_total" in text
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
