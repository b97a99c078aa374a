"""Rendition: a derived encode of one camera, shared by every viewer who needs it.

The camera's own H.264 goes to most viewers untouched. A viewer that cannot play
it (a browser with no H.264 decoder, such as Firefox without OpenH264) gets a
rendition instead: the hub's frames are decoded once and encoded once, in a
worker thread, whatever the number of viewers of that rendition. It starts with
the first of them and stops with the last; the camera's passthrough viewers never
notice it.

A rendition is described by a RenditionSpec (codec, size, frame rate, bitrate).
The lighter H.264 pictures for weak links (`[[relay.renditions]]`, asked for with
`?rendition=`) are the same mechanism with another spec: Constrained Baseline,
scaled down to fit a box, at a lower frame rate and bitrate.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, replace
from fractions import Fraction

import av

from gateway.config import RenditionSettings

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

    name: str  # e.g. "vp8" (browsers without H.264), or a lighter picture: "low"
    codec: str  # "vp8" or "h264" (Constrained Baseline)
    bitrate_kbps: int
    # The largest picture: the camera's is scaled down to fit, keeping its shape, and
    # never up. None: the camera's own size.
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # at most; None: every frame the camera sends
    gop_seconds: float = 2.0  # a keyframe at least this often; joins ask for one at once

    @property
    def encoder_name(self) -> str:
        return {"vp8": "libvpx", "h264": "libx264"}[self.codec]

    @property
    def profile_level_id(self) -> str:
        """H.264: Constrained Baseline, at the level the largest picture needs."""
        return "42e0" + h264_level(self.width or 1920, self.height or 1088, self.fps or 30)

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """The picture size for a camera frame of width x height."""
        if not (self.width and self.height):
            return width, height
        scale = min(self.width / width, self.height / height, 1.0)
        return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)

    def with_codec(self, codec: str) -> RenditionSpec:
        """The same picture in another codec, e.g. VP8 for a browser without H.264."""
        return replace(self, name=f"{self.name}/{codec}", codec=codec)


# H.264 levels (ISO/IEC 14496-10 Table A-1): (max macroblocks per frame, per second).
_LEVELS = [
    ("1e", 1620, 40500),  # 3.0
    ("1f", 3600, 108000),  # 3.1
    ("20", 5120, 216000),  # 3.2
    ("28", 8192, 245760),  # 4.0
    ("2a", 8704, 522240),  # 4.2
    ("32", 22080, 589824),  # 5.0
    ("33", 36864, 983040),  # 5.1
]


def h264_level(width: int, height: int, fps: float) -> str:
    """The lowest level (as profile-level-id's last byte) that fits the picture."""
    macroblocks = ((width + 15) // 16) * ((height + 15) // 16)
    for level, per_frame, per_second in _LEVELS:
        if macroblocks <= per_frame and macroblocks * fps <= per_second:
            return level
    return _LEVELS[-1][0]


def vp8_for_browsers(bitrate_kbps: int) -> RenditionSpec:
    """The camera at its own size and rate, in VP8, which every WebRTC browser plays."""
    return RenditionSpec(name="vp8", codec="vp8", bitrate_kbps=bitrate_kbps)


def lighter_picture(settings: RenditionSettings) -> RenditionSpec:
    """A `[[relay.renditions]]` entry: H.264 Constrained Baseline, smaller, slower."""
    width, height = settings.size
    return RenditionSpec(
        name=settings.name,
        codec="h264",
        bitrate_kbps=settings.bitrate_kbps,
        width=width,
        height=height,
        fps=settings.fps,
    )


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
        next_pts: int | None = None  # frame-rate limit: when the next frame is due
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
                    # Keep the frames due on the spec's clock: from 25 fps to 15, two in
                    # three on average (not one in two, as "at least an interval apart"
                    # would), with a little slack for the camera's jitter.
                    if next_pts is not None and pts < next_pts - interval // 8:
                        continue
                    behind = next_pts is None or pts - next_pts >= interval
                    next_pts = (pts if behind else next_pts) + interval
                width, height = self.spec.size_for(frame.width, frame.height)
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
            # Half a second of buffer: a keyframe is no burst a weak link cannot carry.
            vbv = f"vbv-maxrate={spec.bitrate_kbps}:vbv-bufsize={max(1, spec.bitrate_kbps // 2)}"
            encoder.options = {
                "preset": "veryfast",
                "tune": "zerolatency",
                "profile": "baseline",  # x264 writes Constrained Baseline (42e0/42c0)
                "x264-params": f"scenecut=0:keyint={encoder.gop_size}:{vbv}",
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
