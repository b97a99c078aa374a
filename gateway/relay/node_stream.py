"""A camera's frames from the node that pulls it to another node (origin -> edge).

A hot camera's viewers spread over several nodes (docs/cluster.md, Spreading), but
the police camera is still pulled once: an edge node's CameraHub takes the frames
from the origin node's hub over one HTTP stream between the nodes, instead of
opening the camera. The stream is the origin hub's own output (H.264, passed through
or already transcoded there), so the edge passes it through and keeps its own GOP
cache, viewers, limits and audit, as for any camera.

On the wire, a record is a 14-byte header and a body:
- kind (1 byte): I (StreamInfo as JSON), F (a frame), K (nothing new: the origin is
  there, its camera silent);
- flags (1 byte): 1 keyframe, 2 catch-up (a frame of the origin's current GOP, sent
  first so the edge's first viewer starts at once);
- pts (8 bytes, 90 kHz, on the origin's timeline), body length (4 bytes).

`NodeSource` reads it in the hub's worker thread, like CameraSource reads a camera.
"""

from __future__ import annotations

import http.client
import json
import struct
import threading
from collections.abc import Callable
from dataclasses import asdict
from urllib.parse import urlsplit

import av

from .errors import SourceError
from .source import EncodedFrame, FrameSink, InfoSink, StreamInfo

CONTENT_TYPE = "application/x-cctv-frames"
HEADER = struct.Struct("!ccQI")
KEYFRAME, CATCH_UP = 1, 2
MAX_RECORD_BYTES = 16 * 1024 * 1024  # far above any access unit: a broken stream
KEEPALIVE_SECONDS = 1.0  # the origin says it is there at least this often
STALL_SECONDS = 3 * KEEPALIVE_SECONDS  # silent this long: the origin is gone


def info_record(info: StreamInfo) -> bytes:
    body = json.dumps(asdict(info)).encode()
    return HEADER.pack(b"I", b"\0", 0, len(body)) + body


def frame_record(packet: av.Packet, catch_up: bool) -> bytes:
    flags = (KEYFRAME if packet.is_keyframe else 0) | (CATCH_UP if catch_up else 0)
    body = bytes(packet)
    return HEADER.pack(b"F", bytes((flags,)), int(packet.pts or 0), len(body)) + body


def keepalive_record() -> bytes:
    return HEADER.pack(b"K", b"\0", 0, 0)


class OriginLost(SourceError):
    """The origin node cannot give the camera's frames (gone, refused, or silent)."""


class NodeSource:
    """The camera's frames from `node`, at `url` (its stream of this camera), with
    `headers()` (the request's signature) made afresh for each connection."""

    def __init__(
        self,
        node: str,
        url: str,
        headers: Callable[[str], dict[str, str]],
    ) -> None:
        self.node = node
        self.url = url
        self.headers = headers

    def run(
        self,
        stop: threading.Event,
        on_info: InfoSink,
        on_frame: FrameSink,
        transcode: bool = False,
    ) -> None:
        """Hold the stream until `stop` is set or it fails (OriginLost)."""
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=STALL_SECONDS
        )
        try:
            connection.request("GET", parts.path, headers=self.headers(parts.path))
            reply = connection.getresponse()
            if reply.status != 200:
                raise OriginLost(f"node {self.node} refused the camera's stream ({reply.status})")
            while not stop.is_set():
                kind, flags, pts, length = HEADER.unpack(_read(reply, HEADER.size))
                if length > MAX_RECORD_BYTES:
                    raise OriginLost(f"node {self.node} sent a broken stream")
                body = _read(reply, length)
                if kind == b"F":
                    keyframe = bool(flags[0] & KEYFRAME)
                    catch_up = bool(flags[0] & CATCH_UP)
                    on_frame(EncodedFrame(body, pts, keyframe, catch_up))
                elif kind == b"I":
                    on_info(StreamInfo(**json.loads(body)))
        except (OSError, http.client.HTTPException, ValueError, TypeError) as exc:
            raise OriginLost(f"node {self.node} lost ({type(exc).__name__})") from None
        finally:
            connection.close()

    def stream_failed(self) -> None:
        pass


def _read(reply: http.client.HTTPResponse, size: int) -> bytes:
    data = reply.read(size) if size else b""
    if len(data) != size:
        raise ConnectionResetError("the stream ended")
    return data


__all__ = [
    "CONTENT_TYPE",
    "KEEPALIVE_SECONDS",
    "NodeSource",
    "OriginLost",
    "frame_record",
    "info_record",
    "keepalive_record",
]
