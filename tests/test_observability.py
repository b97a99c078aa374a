"""What operators see: Prometheus metrics, liveness and readiness, JSON log lines."""

from __future__ import annotations

import json
import logging

from support.gateway import camera_entry, settings_for
from support.metrics import samples

from gateway.app import STORE
from gateway.logs import JsonFormatter, RedactCredentials


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
    gateway.app[STORE].close()
    assert (await gateway.http.get(f"{gateway.url}/readyz")).status == 503
    assert (await gateway.http.get(f"{gateway.url}/healthz")).status == 200


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
