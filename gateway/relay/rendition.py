"""Rendition: a derived encode of one camera, shared by every viewer who needs it.

The camera's own H.264 goes to most viewers untouched. A viewer that cannot play
it (a browser with no H.264 decoder, such as Firefox without OpenH264) gets a
rendition instead: the hub's frames are decoded once and encoded once, in a
worker thread, whatever the number of viewers of that rendition. It starts with
the first of them and stops with the last; the camera's passthrough viewers never
notice it.

A rendition is described by a RenditionSpec (codec, size, frame rate, bitrate),
so a lighter H.264 picture for weak links (issue 15) is the same mechanism with
another spec.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction

import av

from .feed import ViewerFeed
from .source import CLOCK_RATE, VIDEO_TIME_BASE

log = logging.getLogger(__name__)

# Frames waiting for the worker thread: about two seconds at 25 fps. A worker that
# falls further behind (a busy machine) skips to the camera's next keyframe.
QUEUE_FRAMES = 50
_RESET = object()  # the source restarted: decode from its next keyframe
_STOP = object()


@dataclass(frozen=True)
class RenditionSpec:
    """What to encode: the codec, and optionally a smaller size or a lower frame rate."""

    name: str  # e.g. "vp8" (browsers without H.264), or issue 15's "low"
    codec: str  # "vp8" or "h264"
    bitrate_kbps: int
    width: int | None = None  # None: the camera's own size
    height: int | None = None
    fps: float | None = None  # None: every frame the camera sends
    gop_seconds: float = 2.0  # a keyframe at least this often; joins ask for one at once

    @property
    def encoder_name(self) -> str:
        return {"vp8": "libvpx", "h264": "libx264"}[self.codec]


def vp8_for_browsers(bitrate_kbps: int) -> RenditionSpec:
    """The camera at its own size and rate, in VP8, which every WebRTC browser plays."""
    return RenditionSpec(name="vp8", codec="vp8", bitrate_kbps=bitrate_kbps)


class Rendition:
    """One running derived encode of one camera, and the feeds of its viewers.

    Fed on the event loop with the hub's frames (`offer`); decodes and encodes in
    its own thread; hands every encoded frame back to the loop, to each feed.
    """

    def __init__(self, camera_id: str, spec: RenditionSpec, max_frames: int) -> None:
        self.camera_id = camera_id
        self.spec = spec
        self.feeds: set[ViewerFeed] = set()
        self.frames_encoded = 0
        self._max_frames = max_frames
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_FRAMES)
        self._waiting_keyframe = True  # the decoder can only start at a keyframe
        self._keyframe_wanted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def add_feed(self) -> ViewerFeed:
        feed = ViewerFeed(self.camera_id, self._max_frames, self._ask_keyframe)
        self.feeds.add(feed)
        return feed

    def remove_feed(self, feed: ViewerFeed) -> None:
        self.feeds.discard(feed)

    def start(self, gop: list[av.Packet]) -> None:
        """Start the worker; `gop` (the hub's frames since its last keyframe) lets the
        first picture come at once instead of at the camera's next keyframe."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run,
            name=f"rendition-{self.camera_id}-{self.spec.name}",
            daemon=True,
        )
        self._thread.start()
        if gop:
            for packet in gop[:-1]:  # decoded for its references only
                self._put((packet, False))
            self._put((gop[-1], True))
            self._waiting_keyframe = False
        log.info(
            "camera %s: %s rendition started",
            self.camera_id,
            self.spec.name,
            extra={"camera_id": self.camera_id},
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread = None
        for feed in list(self.feeds):
            feed.stop()
        self.feeds.clear()
        # A full queue: the worker sees the stop flag at its next frame.
        self._put(_STOP)
        log.info(
            "camera %s: %s rendition stopped",
            self.camera_id,
            self.spec.name,
            extra={"camera_id": self.camera_id},
        )

    def offer(self, packet: av.Packet) -> None:
        """A frame of the hub's output; called on the event loop, never blocks."""
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                return
            self._waiting_keyframe = False
        if not self._put((packet, True)):
            self._waiting_keyframe = True  # the worker is behind: resume at a keyframe

    def resync(self) -> None:
        """The camera's stream restarted (maybe with another size): decode afresh."""
        self._waiting_keyframe = True
        self._put(_RESET)

    def _put(self, item: object) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            return False

    def _ask_keyframe(self) -> list[av.Packet]:
        """A viewer's connection is up: its picture starts at the next encoded frame."""
        self._keyframe_wanted = True
        return []

    # --- on the event loop, from the worker ----------------------------------

    def _on_encoded(self, data: bytes, pts: int, keyframe: bool) -> None:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = keyframe
        self.frames_encoded += 1
        for feed in self.feeds:
            feed.offer(packet)

    # --- the worker thread ------------------------------------------------------

    def _run(self) -> None:
        try:
            self._work()
        except Exception:
            # Its viewers' feeds stay open and get nothing more: their players see
            # the picture stall and reconnect, which starts a fresh rendition.
            log.exception(
                "camera %s: %s rendition failed",
                self.camera_id,
                self.spec.name,
                extra={"camera_id": self.camera_id},
            )

    def _work(self) -> None:
        decoder = av.CodecContext.create("h264", "r")
        encoder: av.VideoCodecContext | None = None
        next_pts: int | None = None  # frame-rate limit: the earliest pts to encode
        interval = round(CLOCK_RATE / self.spec.fps) if self.spec.fps else 0
        stop = self._stop
        while not stop.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _STOP:
                break
            if item is _RESET:
                decoder = av.CodecContext.create("h264", "r")
                continue
            packet, wanted = item  # type: ignore[misc]
            try:
                frames = decoder.decode(packet)
            except av.error.FFmpegError:
                decoder = av.CodecContext.create("h264", "r")  # waits for a keyframe
                continue
            for frame in frames:
                if not wanted or stop.is_set():
                    continue
                pts = packet.pts if frame.pts is None else frame.pts
                if interval:
                    if next_pts is not None and pts < next_pts:
                        continue
                    next_pts = pts + interval - interval // 4  # a little slack for jitter
                width = self.spec.width or frame.width
                height = self.spec.height or frame.height
                if encoder is None or (encoder.width, encoder.height) != (width, height):
                    encoder = self._new_encoder(width, height)
                    self._keyframe_wanted = False  # a new encoder starts with one
                out_frame = frame.reformat(width=width, height=height, format="yuv420p")
                out_frame.pts = pts
                out_frame.time_base = VIDEO_TIME_BASE
                if self._keyframe_wanted:
                    self._keyframe_wanted = False
                    out_frame.pict_type = av.video.frame.PictureType.I
                else:
                    out_frame.pict_type = av.video.frame.PictureType.NONE
                for out in encoder.encode(out_frame):
                    self._deliver(bytes(out), pts, out.is_keyframe)

    def _deliver(self, data: bytes, pts: int, keyframe: bool) -> None:
        loop = self._loop
        if loop is None or self._stop.is_set():
            return
        try:
            loop.call_soon_threadsafe(self._on_encoded, data, pts, keyframe)
        except RuntimeError:  # the loop has closed: the gateway is shutting down
            self._stop.set()

    def _new_encoder(self, width: int, height: int) -> av.VideoCodecContext:
        spec = self.spec
        fps = spec.fps or 25.0
        encoder = av.CodecContext.create(spec.encoder_name, "w")
        encoder.width = width
        encoder.height = height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = VIDEO_TIME_BASE
        encoder.framerate = Fraction(fps).limit_denominator(1001)
        encoder.bit_rate = spec.bitrate_kbps * 1000
        encoder.gop_size = max(1, round(fps * spec.gop_seconds))
        encoder.thread_count = 1  # one core for the whole rendition; the other serves viewers
        if spec.codec == "vp8":
            encoder.qmin, encoder.qmax = 2, 56
            encoder.options = {
                "deadline": "realtime",
                "cpu-used": "8",  # libvpx's fastest realtime speed: CPU is the budget here
                "lag-in-frames": "0",  # every frame out at once
                "error-resilient": "1",  # a lost packet spoils less
                "static-thresh": "1",
                "undershoot-pct": "100",
                "overshoot-pct": "15",
            }
        else:
            encoder.max_b_frames = 0
            encoder.options = {
                "preset": "veryfast",
                "tune": "zerolatency",
                "profile": "baseline",
                "x264-params": f"scenecut=0:keyint={encoder.gop_size}",
            }
        encoder.open()
        log.info(
            "camera %s: %s rendition encodes %s %dx%d at %d kbit/s",
            self.camera_id,
            spec.name,
            spec.codec,
            width,
            height,
            spec.bitrate_kbps,
            extra={"camera_id": self.camera_id},
        )
        return encoder
