"""Added latency: match the frames a viewer receives to the camera's own frames."""

from __future__ import annotations

from collections import Counter
from typing import Any

from stats import summary


def match_latency(
    direct: list[tuple[float, int, int, int]],
    viewer: list[list[float]] | list[tuple[float, float, int, int, int]],
) -> dict[str, Any]:
    """Latency = arrival at the viewer - arrival at a plain RTSP client, per frame.

    RTP timestamps at the viewer and PyAV pts at the probe differ by one constant
    (mod 2^32). A 25 fps stream is periodic, so keyframes (much larger than other
    frames) fix that constant: each viewer keyframe is paired with the probe's
    keyframe that arrived just before it.
    """
    if len(direct) < 10 or len(viewer) < 10:
        return {"matched": 0}
    sizes = sorted(f[3] for f in viewer)
    median_size = sizes[len(sizes) // 2]
    direct_keys = [f for f in direct if f[2]]
    offsets: Counter[int] = Counter()
    for first, _last, ts, size, _n in viewer:
        if size < 3 * median_size:
            continue
        before = [d for d in direct_keys if d[0] <= first + 0.002 and first - d[0] < 1.0]
        if before:
            d = before[-1]
            offsets[(int(ts) - d[1]) & 0xFFFFFFFF] += 1
    if not offsets:
        return {"matched": 0}
    offset, votes = offsets.most_common(1)[0]
    by_pts = {d[1]: d for d in direct}
    first_lat, last_lat, key_lat, delta_lat = [], [], [], []
    for first, last, ts, _size, _n in viewer:
        d = by_pts.get((int(ts) - offset) & 0xFFFFFFFF)
        if d is not None:
            first_lat.append(first - d[0])
            last_lat.append(last - d[0])
            (key_lat if d[2] else delta_lat).append(first - d[0])
    return {
        "_first": first_lat,
        "_last": last_lat,
        "_key": key_lat,
        "_delta": delta_lat,
        "matched": len(first_lat),
        "keyframe_votes": votes,
        "first_packet_ms": summary(first_lat, 1000),
        "last_packet_ms": summary(last_lat, 1000),
    }


def match_latency_many(
    direct: list[tuple[float, int, int, int]], viewers: list[list[Any]]
) -> dict[str, Any]:
    """Latency pooled over several probe viewers (each sits elsewhere in the fan-out)."""
    per = [match_latency(direct, v) for v in viewers]
    first: list[float] = []
    last: list[float] = []
    key: list[float] = []
    delta: list[float] = []
    for m in per:
        first += m.pop("_first", [])
        last += m.pop("_last", [])
        key += m.pop("_key", [])
        delta += m.pop("_delta", [])
    if not first:
        return {"matched": 0, "viewers": len(viewers)}
    return {
        "matched": len(first),
        "viewers": len(viewers),
        "first_packet_ms": summary(first, 1000),
        "last_packet_ms": summary(last, 1000),
        # Split by the camera frame's type: a keyframe is many times the packets.
        "keyframe_first_packet_ms": summary(key, 1000),
        "delta_first_packet_ms": summary(delta, 1000),
        "per_viewer_p50_ms": [m["first_packet_ms"]["p50"] for m in per if m.get("matched")],
    }
