"""Prometheus metrics (prometheus-client), read from the live objects at scrape time.

Gauges and totals come from the hubs and sessions themselves, so nothing can
drift out of step; only events without a standing count (denials, time to first
frame) are counted as they happen.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.relay import CameraHubs, PoliceApi
from gateway.signaling import SessionRegistry
from gateway.store import Store


class GatewayMetrics:
    def __init__(self, hubs: CameraHubs, sessions: SessionRegistry, store: Store) -> None:
        self.registry = CollectorRegistry()  # per app: tests start many gateways
        self.registry.register(_LiveCollector(hubs, sessions, store))
        self.denials = Counter(
            "cctv_access_denials",
            "Refused requests, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.sent_on = Counter(
            "cctv_viewers_sent_on",
            "Offers this node sent to another node (307) since it was full, by camera and"
            " why: viewers (spread_viewers), cpu (spread_cpu_percent), behind (its loop)",
            ["camera", "why"],
            registry=self.registry,
        )
        self.first_frame = Histogram(
            "cctv_time_to_first_frame_seconds",
            "From the WHEP offer to the first frame handed to the viewer's sender",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _LiveCollector:
    def __init__(self, hubs: CameraHubs, sessions: SessionRegistry, store: Store) -> None:
        self.hubs = hubs
        self.sessions = sessions
        self.store = store

    def collect(self) -> Iterator[Metric]:
        viewers = GaugeMetricFamily("cctv_viewers", "Viewers per camera", labels=["camera"])
        pulling = GaugeMetricFamily("cctv_active_pulls", "Cameras being pulled now")
        state = GaugeMetricFamily(
            "cctv_camera_up", "1 while the camera delivers video", labels=["camera"]
        )
        sent = CounterMetricFamily(
            "cctv_bytes_out", "Video bytes handed to viewers", labels=["camera"]
        )
        dropped = CounterMetricFamily(
            "cctv_frames_dropped_slow_viewer",
            "Frames dropped because a viewer fell behind",
            labels=["camera"],
        )
        reconnects = CounterMetricFamily(
            "cctv_upstream_reconnects", "Camera connections reopened", labels=["camera"]
        )
        overload = CounterMetricFamily(
            "cctv_frames_dropped_overload",
            "Frames dropped at the pull because the event loop was behind (CPU exhausted)",
            labels=["camera"],
        )
        cameras = GaugeMetricFamily("cctv_cameras", "Cameras in the inventory")
        cameras.add_metric([], len(self.hubs))
        pulls = 0
        for hub in self.hubs:
            viewers.add_metric([hub.id], len(hub.viewers))
            state.add_metric([hub.id], 1 if hub.state == "live" else 0)
            sent.add_metric([hub.id], hub.bytes_out)
            dropped.add_metric([hub.id], hub.frames_dropped)
            reconnects.add_metric([hub.id], hub.reconnects)
            overload.add_metric([hub.id], hub.frames_dropped_behind)
            pulls += hub.pulling
        pulling.add_metric([], pulls)
        by_state = Tally(s.pc.connectionState for s in self.sessions)
        sessions = GaugeMetricFamily(
            "cctv_sessions", "Viewer sessions by connection state", labels=["state"]
        )
        for name in ("new", "connecting", "connected", "disconnected"):
            sessions.add_metric([name], by_state.get(name, 0))
        pending = GaugeMetricFamily(
            "cctv_audit_pending_rows",
            "Audit rows and grant changes waiting for the database to take them",
        )
        pending.add_metric([], self.store.pending)
        yield from (viewers, pulling, state, sent, dropped, reconnects, overload, sessions)
        yield from (cameras, pending)
        if (api := self.hubs.police_api) is not None:
            yield from _police_api_metrics(api)


def _police_api_metrics(api: PoliceApi) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "cctv_police_api_requests", "Stream URLs asked of the police API"
    )
    requests.add_metric([], api.requests)
    reused = CounterMetricFamily(
        "cctv_police_api_reused", "Stream URLs reused from an earlier answer"
    )
    reused.add_metric([], api.reused)
    failures = CounterMetricFamily(
        "cctv_police_api_failures", "Police API calls that gave no stream URL", labels=["reason"]
    )
    for reason in ("timeout", "unreachable", "refused", "http_error", "bad_answer"):
        failures.add_metric([reason], api.failures[reason])
    yield from (requests, reused, failures)
