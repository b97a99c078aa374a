"""Pictures: a camera decoded once, masked, and encoded once per rendition.

Every derived encode of one camera (VP8 for browsers without H.264, the lighter
pictures, a masked camera's own picture) is made here, in one worker thread per
camera: the hub's H.264 frames are decoded once; the camera's privacy masks are
painted once per picture (masks.py); each running Rendition scales and encodes
that picture; the event loop hands each encoded frame to the rendition's feeds.
A rendition whose masks are lifted (the viewers of one grant, for a while) gets
the same decoded picture without the masks.

Masked pictures fail closed. While the hub has this camera masked (`strict`),
anything that stops the masks from being painted ends every picture here and
tells the hub (`on_failure`), which ends its viewers with `mask_failed`:
- the decoder fails on the camera's stream;
- the picture changes size (the masks' fractions would name another place);
- the worker falls QUEUE_FRAMES behind the camera (the encoders cannot keep up);
- anything unexpected in the worker.
Never is a picture sent unmasked instead. An unmasked camera's renditions recover
from the same troubles by themselves, at the camera's next keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable

import av

from gateway.config import MaskSettings

from .masks import MaskPainter
from .rendition import Rendition, RenditionSpec
from .source import VIDEO_TIME_BASE

log = logging.getLogger(__name__)

# Frames waiting for the worker thread: about two seconds at 25 fps. Further behind
# (a busy machine), an unmasked camera's renditions skip to the camera's next
# keyframe; a masked camera's pictures end (mask_failed).
QUEUE_FRAMES = 50
_RESET = object()  # the camera reconnected: decode from its next keyframe
_STOP = object()


class Pictures:
    """The decoded side of one camera, and its running renditions, by (name, lifted)."""

    def __init__(
        self,
        camera_id: str,
        masks: tuple[MaskSettings, ...],
        on_failure: Callable[[Pictures, str], None],
    ) -> None:
        self.camera_id = camera_id
        self.renditions: dict[tuple[str, bool], Rendition] = {}
        # Fail closed (see the module's docstring): set by the hub while it has the
        # camera masked, read by the worker at each picture.
        self.strict = False
        self.failed: str | None = None  # why the masks could not be applied
        self._masks = masks  # replaced whole, read by the worker at each picture
        self._active: tuple[Rendition, ...] = ()  # the worker's view of `renditions`
        self._on_failure = on_failure
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_FRAMES)
        self._waiting_keyframe = True  # the decoder can only start at a keyframe
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def masks(self) -> tuple[MaskSettings, ...]:
        return self._masks

    def set_masks(self, masks: tuple[MaskSettings, ...]) -> None:
        """Paint these from the next decoded picture on (within a frame)."""
        self._masks = masks

    def rendition(self, spec: RenditionSpec, lifted: bool) -> Rendition:
        """The running rendition of `spec`, masked or lifted; started if need be (its
        encoder opens at the next picture)."""
        rendition = self.renditions.get((spec.name, lifted))
        if rendition is None:
            rendition = Rendition(self.camera_id, spec, lifted)
            self.renditions[rendition.key] = rendition
            self._active = tuple(self.renditions.values())
            log.info(
                "camera %s: %s rendition started",
                self.camera_id,
                rendition.name,
                extra={"camera_id": self.camera_id},
            )
        return rendition

    def drop(self, rendition: Rendition) -> None:
        """Stop encoding `rendition` (its last viewer left)."""
        if self.renditions.get(rendition.key) is rendition:
            del self.renditions[rendition.key]
            self._active = tuple(self.renditions.values())
            log.info(
                "camera %s: %s rendition stopped",
                self.camera_id,
                rendition.name,
                extra={"camera_id": self.camera_id},
            )

    def start(self, gop: list[av.Packet]) -> None:
        """Start the worker; `gop` (the hub's frames since its last keyframe) lets the
        first picture come with the camera's next frame instead of its next keyframe.

        The GOP is decoded for its references only: its frames have been sent already
        (to viewers moving here from the camera's own stream, say), and a frame time
        sent twice, in another encoding, spoils a viewer's decoder until a keyframe.
        """
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"pictures-{self.camera_id}", daemon=True
        )
        self._thread.start()
        if gop:
            self._put((gop, False))
            self._waiting_keyframe = False

    def stop(self) -> None:
        self._stop.set()
        self._thread = None
        self._put(_STOP)  # a full queue: the worker sees the stop flag at its next frame

    def offer(self, packet: av.Packet) -> None:
        """A frame of the hub's, on the event loop; never blocks."""
        if self._stop.is_set():
            return
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                return
            self._waiting_keyframe = False
        if self._put(([packet], True)):
            return
        if self.strict:
            self._fail(f"the masking fell {QUEUE_FRAMES} frames behind the camera")
        else:
            self._waiting_keyframe = True  # the worker is behind: resume at a keyframe

    def resync(self) -> None:
        """The camera reconnected (maybe with another size): decode afresh."""
        self._waiting_keyframe = True
        self._put(_RESET)

    def _put(self, item: object) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            return False

    def _fail(self, reason: str) -> None:
        """The masks cannot be applied: nothing more leaves here. Any thread."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.failed = reason
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: shutting down
                loop.call_soon_threadsafe(self._on_failure, self, reason)

    # --- on the event loop, from the worker ------------------------------------

    def _on_encoded(self, rendition: Rendition, data: bytes, pts: int, keyframe: bool) -> None:
        if self._stop.is_set() or self.renditions.get(rendition.key) is not rendition:
            return
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = keyframe
        rendition.offer(packet)

    # --- the worker thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            self._work()
        except Exception as exc:
            log.exception(
                "camera %s: decoding or encoding its pictures failed",
                self.camera_id,
                extra={"camera_id": self.camera_id},
            )
            if self.strict:
                self._fail(f"masking failed ({type(exc).__name__})")
            # Unmasked, its viewers' feeds stay open and get nothing more: their
            # players see the picture stall and reconnect, which starts afresh.

    def _work(self) -> None:
        decoder = _decoder()
        size: tuple[int, int] | None = None  # the picture's, while masks are painted
        stop = self._stop
        while not stop.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _STOP:
                break
            if item is _RESET:
                decoder = _decoder()
                continue
            packets, wanted = item  # type: ignore[misc]
            for packet in packets:
                try:
                    frames = decoder.decode(packet)
                except av.error.FFmpegError as exc:
                    if self.strict:
                        self._fail(f"the camera's stream could not be decoded ({exc.type})")
                        return
                    decoder = _decoder()  # waits for a keyframe
                    break
                if not wanted:
                    continue  # a reference for the pictures to come
                if packet.is_keyframe:
                    # Keyframes where the camera has them: a viewer recovers as soon as a
                    # passthrough viewer would, and the bench can match frames by them.
                    for rendition in self._active:
                        rendition.ask_keyframe()
                for frame in frames:
                    if stop.is_set():
                        return
                    picture_size = (frame.width, frame.height)
                    if self.strict and size is not None and picture_size != size:
                        self._fail(
                            "the picture changed size from {}x{} to {}x{}".format(
                                *size, *picture_size
                            )
                        )
                        return
                    size = picture_size
                    pts = packet.pts if frame.pts is None else frame.pts
                    self._encode(frame, pts)

    def _encode(self, frame: av.VideoFrame, pts: int) -> None:
        """Paint the masks once, then encode the picture once per running rendition."""
        masks = self._masks
        pictures: dict[bool, av.VideoFrame] = {}  # unmasked or masked
        for rendition in self._active:
            if not rendition.due(pts):
                continue
            unmasked = rendition.lifted or not masks
            picture = pictures.get(unmasked)
            if picture is None:
                picture = frame if unmasked else self._painter(masks, frame).paint(frame)
                pictures[unmasked] = picture
            for data, keyframe in rendition.encode(picture, pts):
                self._deliver(rendition, data, pts, keyframe)

    _painter_cache: MaskPainter | None = None

    def _painter(self, masks: tuple[MaskSettings, ...], frame: av.VideoFrame) -> MaskPainter:
        painter = self._painter_cache
        if painter is None or not painter.fits(masks, frame.width, frame.height):
            painter = self._painter_cache = MaskPainter(masks, frame.width, frame.height)
        return painter

    def _deliver(self, rendition: Rendition, data: bytes, pts: int, keyframe: bool) -> None:
        loop = self._loop
        if loop is None or self._stop.is_set():
            return
        try:
            loop.call_soon_threadsafe(self._on_encoded, rendition, data, pts, keyframe)
        except RuntimeError:  # the loop has closed: the gateway is shutting down
            self._stop.set()


def _decoder() -> av.CodecContext:
    return av.CodecContext.create("h264", "r")
