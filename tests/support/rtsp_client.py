"""A plain RTSP client (PyAV), as any other client of the same camera would be."""

from __future__ import annotations

import time

import av

from .rtp import nal_units

OPTIONS = {"rtsp_transport": "tcp"}
TIMEOUT = (10.0, 5.0)  # open, read


def read_access_units(url: str, seconds: float) -> list[list[bytes]]:
    """The access units a client gets from its first keyframe on, each as its NAL
    units. Opening it sends a PLAY, as any new client of the camera does."""
    units: list[list[bytes]] = []
    with av.open(url, options=OPTIONS, timeout=TIMEOUT) as container:
        stream = container.streams.video[0]
        deadline = time.monotonic() + seconds
        for packet in container.demux(stream):
            if time.monotonic() > deadline:
                break
            if packet.size and (units or packet.is_keyframe):
                units.append(nal_units(bytes(packet)))
    return units


def read_colour(url: str) -> tuple[int, int, int, int]:
    """How the camera says its numbers become colours: range, matrix, primaries, transfer."""
    with av.open(url, options=OPTIONS, timeout=TIMEOUT) as container:
        for frame in container.decode(video=0):
            return colour(frame)
    raise AssertionError("the camera sent no picture")


def colour(frame: av.VideoFrame) -> tuple[int, int, int, int]:
    return (frame.color_range, frame.colorspace, frame.color_primaries, frame.color_trc)
