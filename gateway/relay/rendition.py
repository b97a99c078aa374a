"""Rendition: a derived encode of one camera, shared by every viewer who needs it.

The camera's own H.264 goes to most viewers untouched. A viewer that cannot play
it (a browser with no H.264 decoder, such as Firefox without OpenH264) gets a
rendition instead: the camera's pictures are decoded once (pictures.py) and
encoded once per rendition, whatever the number of its viewers. It starts with
the first of them and stops with the last; the camera's passthrough viewers never
notice it.

A rendition is described by a RenditionSpec (codec, size, frame rate, bitrate).
The lighter H.264 pictures for weak links (`[[relay.renditions]]`, asked for with
`?rendition=`) are the same mechanism with another spec: Constrained Baseline,
scaled down to fit a box, at a lower frame rate and bitrate. A masked camera's
own picture is one more ("original"): nothing of a masked camera is passed through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction

import av

from gateway.config import RelaySettings, RenditionSettings

from .feed import ViewerFeed
from .source import CLOCK_RATE, VIDEO_TIME_BASE

log = logging.getLogger(__name__)


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
    preset: str = "veryfast"  # x264's

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


def original_picture(relay: RelaySettings) -> RenditionSpec:
    """A masked camera's own picture, for its H.264 viewers: its size and rate, encoded
    as the transcode path encodes ([relay] transcode_bitrate_kbps and _preset)."""
    return RenditionSpec(
        name="original",
        codec="h264",
        bitrate_kbps=relay.transcode_bitrate_kbps,
        preset=relay.transcode_preset,
    )


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
    """One shared encode of one camera, and the feeds of its viewers.

    Made from the camera's masked pictures, or with its masks `lifted` (the viewers
    of one grant, for a while). The Pictures worker encodes (`encode`, in its
    thread); the event loop hands each encoded frame to every feed (`offer`).
    """

    def __init__(self, camera_id: str, spec: RenditionSpec, lifted: bool = False) -> None:
        self.camera_id = camera_id
        self.spec = spec
        self.lifted = lifted
        self.feeds: set[ViewerFeed] = set()
        self.frames_encoded = 0
        self._keyframe_wanted = False  # set on the loop, taken by the worker
        # The worker's own: the encoder, and when the next frame is due (frame rate).
        self._encoder: av.VideoCodecContext | None = None
        self._next_pts: int | None = None
        self._interval = round(CLOCK_RATE / spec.fps) if spec.fps else 0

    @property
    def key(self) -> tuple[str, bool]:
        return self.spec.name, self.lifted

    @property
    def name(self) -> str:
        return f"{self.spec.name} (masks lifted)" if self.lifted else self.spec.name

    def ask_keyframe(self) -> list[av.Packet]:
        """A viewer's picture starts (or moves here): the next encoded frame is a
        keyframe. Returns no frames to replay: that keyframe is the replay."""
        self._keyframe_wanted = True
        return []

    def offer(self, packet: av.Packet) -> None:
        """An encoded frame, on the event loop: to every feed, without waiting."""
        self.frames_encoded += 1
        for feed in self.feeds:
            feed.offer(packet)

    # --- in the Pictures worker thread -------------------------------------------

    def due(self, pts: int) -> bool:
        """Whether the picture at `pts` is encoded, at the spec's frame rate at most."""
        interval = self._interval
        if not interval:
            return True
        # Keep the frames due on the spec's clock: from 25 fps to 15, two in three on
        # average (not one in two, as "at least an interval apart" would), with a
        # little slack for the camera's jitter.
        if self._next_pts is not None and pts < self._next_pts - interval // 8:
            return False
        behind = self._next_pts is None or pts - self._next_pts >= interval
        self._next_pts = (pts if behind else self._next_pts) + interval
        return True

    def encode(self, picture: av.VideoFrame, pts: int) -> list[tuple[bytes, bool]]:
        """Encode one picture (at the camera's size): (access unit, keyframe) pairs."""
        width, height = self.spec.size_for(picture.width, picture.height)
        encoder = self._encoder
        if encoder is None or (encoder.width, encoder.height) != (width, height):
            encoder = self._encoder = self._new_encoder(width, height)
            self._keyframe_wanted = False  # a new encoder starts with one
        image = picture.reformat(width=width, height=height, format="yuv420p")
        image.pts = pts
        image.time_base = VIDEO_TIME_BASE
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            image.pict_type = av.video.frame.PictureType.I
        else:
            image.pict_type = av.video.frame.PictureType.NONE
        return [(bytes(out), out.is_keyframe) for out in encoder.encode(image)]

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
        encoder.thread_count = 1  # one core for the camera's encodes; the other serves viewers
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
                "preset": spec.preset,
                "tune": "zerolatency",
                "profile": "baseline",  # x264 writes Constrained Baseline (42e0/42c0)
                "x264-params": f"scenecut=0:keyint={encoder.gop_size}:{vbv}",
            }
        encoder.open()
        log.info(
            "camera %s: %s rendition encodes %s %dx%d at %d kbit/s",
            self.camera_id,
            self.name,
            spec.codec,
            width,
            height,
            spec.bitrate_kbps,
            extra={"camera_id": self.camera_id},
        )
        return encoder
