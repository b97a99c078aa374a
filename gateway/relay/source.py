"""CameraSource: one connection to one camera, read with PyAV in a worker thread.

It turns whatever the camera sends into H.264 access units for WebRTC:
- H.264 without B-frames is passed through untouched (SPS/PPS added to keyframes
  when the camera only sends them out of band);
- anything else (H.265, MJPEG, B-frames, the built-in demo pattern) is decoded
  once and encoded once with libx264, whatever the number of viewers.

This module is the only place that opens a camera URL (police_api.py fetches those
of `api:` cameras). Errors it raises carry a message that is safe to show: no URL,
no credential.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import av.error

from gateway.config import CameraSettings, RelaySettings

from . import h264
from .errors import SourceError

if TYPE_CHECKING:
    from .police_api import PoliceApi

log = logging.getLogger(__name__)

CLOCK_RATE = 90_000  # RTP clock for video (RFC 6184)
VIDEO_TIME_BASE = Fraction(1, CLOCK_RATE)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One H.264 access unit, Annex-B, with SPS/PPS in-band on keyframes."""

    data: bytes
    pts: int  # 90 kHz, on the source's clock; the hub rebases it
    keyframe: bool
    # Of a GOP replayed at once, not a live frame (from an origin node: node_stream.py):
    # it arrives in a burst, which is no sign of the event loop falling behind.
    catch_up: bool = False


@dataclass(frozen=True)
class StreamInfo:
    mode: str  # "passthrough" or "transcode"
    source_codec: str
    width: int
    height: int
    profile_level_id: str  # of the H.264 that viewers receive


class NeedsTranscode(Exception):
    """Passthrough found a B slice mid-stream; reconnect in transcode mode."""


FrameSink = Callable[[EncodedFrame], None]
InfoSink = Callable[[StreamInfo], None]


class CameraSource:
    def __init__(
        self, camera: CameraSettings, relay: RelaySettings, police_api: PoliceApi | None = None
    ) -> None:
        self.camera = camera  # replaced when the inventory changes: read at each open
        self.relay = relay
        self.police_api = police_api  # for `api:` sources

    def run(
        self,
        stop: threading.Event,
        on_info: InfoSink,
        on_frame: FrameSink,
        transcode: bool = False,
    ) -> None:
        """Hold one connection until `stop` is set or the camera fails.

        H.264 is passed through unless `transcode` is set (B slices were found
        earlier in this pull) or its SPS declares reordered frames.
        """
        container = self._open()
        try:
            stream = container.streams.video[0] if container.streams.video else None
            if stream is None:
                raise SourceError("camera stream has no video track")
            ctx = stream.codec_context
            passthrough = ctx.name == "h264" and not transcode
            if passthrough and declares_b_frames(ctx):
                log.warning(
                    "camera %s: its SPS declares B-frames; transcoding until this pull stops",
                    self.camera.id,
                    extra={"camera_id": self.camera.id},
                )
                passthrough = False
            if passthrough:
                self._pass_through(container, stream, stop, on_info, on_frame)
            else:
                self._transcode(container, stream, stop, on_info, on_frame)
        except av.error.FFmpegError as exc:
            raise _describe(exc, self.camera) from None
        finally:
            container.close()

    def _open(self) -> av.container.InputContainer:
        cam = self.camera
        started = time.monotonic()
        try:
            if cam.is_demo:
                pattern = cam.source.removeprefix("demo:")
                width, height = cam.demo_size
                return av.open(
                    f"{pattern}=size={width}x{height}:rate={cam.demo_fps}", format="lavfi"
                )
            url = self._stream_url(cam)
            started = time.monotonic()  # the open's own timeout starts after the API's
            options = {
                "rtsp_transport": cam.rtsp_transport,
                # Socket I/O timeout in microseconds: a silent camera fails the read.
                "timeout": str(int(cam.stall_timeout_seconds * 1_000_000)),
                # SPS/PPS come in the SDP: default probing costs a new viewer ~1.2 s
                # (measured), minimal probing 0.13 s with the size still known.
                "probesize": "32",
                "analyzeduration": "0",
            }
            return av.open(
                url,
                options=options,
                timeout=(cam.open_timeout_seconds, cam.stall_timeout_seconds),
            )
        except av.error.FFmpegError as exc:
            if time.monotonic() - started >= 0.9 * cam.open_timeout_seconds:
                # An interrupted open surfaces as whatever FFmpeg was parsing at the time.
                raise SourceError(
                    f"camera did not answer within {cam.open_timeout_seconds:g} s (timeout)"
                ) from None
            raise _describe(exc, cam) from None
        except OSError as exc:
            raise SourceError(f"camera could not be opened ({type(exc).__name__})") from None

    def _stream_url(self, camera: CameraSettings) -> str:
        """rtsp(s):// as configured, or for `api:`, what the police API says now."""
        reference = camera.api_reference
        if reference is None:
            return camera.source
        if self.police_api is None:
            raise SourceError("camera has an api: source but no [police_api] is configured")
        return self.police_api.stream_url(reference)

    def stream_failed(self) -> None:
        """The pull failed: an `api:` camera's URL is asked for again at the reconnect
        (it may have expired)."""
        reference = self.camera.api_reference
        if reference is not None and self.police_api is not None:
            self.police_api.forget(reference)

    def _pass_through(self, container, stream, stop, on_info, on_frame) -> None:  # type: ignore[no-untyped-def]
        ctx = stream.codec_context
        parameter_sets = h264.parameter_sets_from_extradata(ctx.extradata)
        sps = next((u for u in parameter_sets if h264.nal_type(u) == h264.NAL_SPS), None)
        info_sent = False

        def send_info(sps: bytes) -> None:
            nonlocal info_sent
            on_info(
                StreamInfo("passthrough", "h264", ctx.width, ctx.height, h264.profile_level_id(sps))
            )
            info_sent = True

        if sps is not None:
            send_info(sps)
        last_pts = None
        for packet in container.demux(stream):
            if stop.is_set():
                return
            if packet.size == 0:
                continue
            if packet.pts is not None:
                pts = int(packet.pts * packet.time_base * CLOCK_RATE)
            elif last_pts is None and packet.is_keyframe:
                # FFmpeg's RTSP demuxer gives a pull's first packet no timestamp (its
                # clock starts at the next one, 0 + a frame). When that packet is a
                # keyframe, dropping it kept a cold start waiting a whole GOP for the
                # next (1.9 s of the 2.1 s measured with a 2 s GOP).
                pts = 0
            else:
                continue
            if last_pts is not None and pts < last_pts:
                self._clock_jumped(last_pts - pts)
            last_pts = pts
            data = bytes(packet)
            if not packet.is_keyframe and h264.has_b_slices(data):
                raise NeedsTranscode()
            if packet.is_keyframe:
                data = h264.ensure_parameter_sets(data, parameter_sets)
                if not info_sent:
                    in_band = h264.find_sps(data)
                    if in_band is None:
                        continue
                    send_info(in_band)
            if info_sent:
                on_frame(EncodedFrame(data, pts, packet.is_keyframe))

    def _clock_jumped(self, ticks_back: int) -> None:
        """The camera's clock went back (an RTSP server restarts it when another
        client plays the same shared stream). The hub puts the frames on its own
        timeline, which goes on, so viewers keep the camera's own bytes."""
        log.info(
            "camera %s: clock jumped back %.2f s; rebased",
            self.camera.id,
            ticks_back / CLOCK_RATE,
            extra={"camera_id": self.camera.id},
        )

    def _transcode(self, container, stream, stop, on_info, on_frame) -> None:  # type: ignore[no-untyped-def]
        encoder = None
        info_sent = False
        source_codec = stream.codec_context.name
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        # lavfi generates frames as fast as it can; a demo camera runs in real time.
        pace_start = time.monotonic() if self.camera.is_demo else None
        last_pts = None
        for packet in container.demux(stream):
            if stop.is_set():
                return
            for frame in packet.decode():
                if stop.is_set():
                    return
                if frame.pts is None:
                    continue
                seconds = float(frame.pts * frame.time_base)
                pts = int(seconds * CLOCK_RATE)
                if last_pts is not None and pts < last_pts:
                    self._clock_jumped(last_pts - pts)  # libx264 takes it; the hub rebases
                last_pts = pts
                if pace_start is not None:
                    delay = pace_start + seconds - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                image = _yuv420p(frame)
                if encoder is None or _picture(encoder) != _picture(image):
                    encoder = self._new_encoder(image, fps)
                    info_sent = False
                # A decoded I-frame would otherwise force an IDR on every frame.
                image.pict_type = av.video.frame.PictureType.NONE
                image.pts = pts
                image.time_base = VIDEO_TIME_BASE
                for out in encoder.encode(image):
                    data = bytes(out)
                    if not info_sent:
                        sps = h264.find_sps(data)
                        if sps is None:
                            continue
                        on_info(
                            StreamInfo(
                                "transcode",
                                source_codec,
                                frame.width,
                                frame.height,
                                h264.profile_level_id(sps),
                            )
                        )
                        info_sent = True
                    on_frame(EncodedFrame(data, int(out.pts), out.is_keyframe))

    def _new_encoder(self, image: av.VideoFrame, fps: float) -> av.VideoCodecContext:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width = image.width
        encoder.height = image.height
        # libx264 writes these into the SPS (VUI): without them a player guesses how
        # the numbers become colours, and a full-range camera looks washed out or clipped.
        encoder.color_range = image.color_range
        encoder.colorspace = image.colorspace
        encoder.color_primaries = image.color_primaries
        encoder.color_trc = image.color_trc
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = VIDEO_TIME_BASE
        encoder.framerate = Fraction(fps).limit_denominator(1001)
        encoder.bit_rate = self.relay.transcode_bitrate_kbps * 1000
        gop = max(1, round(fps * 2))  # 2 s GOP: what a typical camera sends
        encoder.gop_size = gop
        encoder.max_b_frames = 0
        encoder.options = {
            "preset": self.relay.transcode_preset,
            "tune": "zerolatency",
            # Constrained Baseline decodes everywhere, including tablets' hardware decoders.
            "profile": "baseline",
            "x264-params": f"scenecut=0:keyint={gop}:min-keyint={gop}",
        }
        encoder.open()
        return encoder


def _yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    """The decoded picture in the encoder's pixel format, its colour tags true to its numbers."""
    if frame.format.is_rgb:
        # swscale would keep the RGB tags (matrix "RGB", full range) on YUV numbers.
        return frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
    return frame.reformat(format="yuv420p")  # the source's range, matrix, primaries, transfer


def _picture(x: av.VideoFrame | av.VideoCodecContext) -> tuple[int, ...]:
    """What an encoder is opened for: the size, and how the numbers become colours."""
    return (x.width, x.height, x.color_range, x.colorspace, x.color_primaries, x.color_trc)


def declares_b_frames(ctx: av.VideoCodecContext) -> bool:
    """The SPS declares frames out of presentation order (max_num_reorder_frames in
    its VUI): the encoder sends B-frames, so transcode before the first one comes."""
    return bool(ctx.has_b_frames)


def _describe(exc: Exception, camera: CameraSettings) -> SourceError:
    """Turn a PyAV error into a message that names the failure, never the URL."""
    # PyAV puts the URL (with credentials) in str(exc); use only its class and errno.
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return SourceError("camera refused the credentials (401/403)")
    if isinstance(exc, av.error.HTTPNotFoundError):
        return SourceError("camera has no such stream path (404)")
    if isinstance(exc, av.error.ExitError | TimeoutError) or getattr(exc, "errno", None) in (
        errno.ETIMEDOUT,
        errno.EAGAIN,
    ):
        return SourceError(
            f"camera did not answer within {camera.open_timeout_seconds:g} s (timeout)"
        )
    if getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return SourceError("camera refused the connection")
    if isinstance(exc, av.error.EOFError):
        return SourceError("camera ended the stream")
    return SourceError(f"camera stream failed ({type(exc).__name__})")
