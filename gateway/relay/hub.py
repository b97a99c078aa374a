"""CameraHub: the one pull from one camera, shared by all of its viewers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import av

from gateway.config import CameraSettings, RelaySettings

from .errors import SourceError
from .feed import Replayed, ViewerFeed, fan_out
from .overload import LoopWatch
from .police_api import PoliceApi
from .rendition import Rendition, RenditionSpec
from .source import (
    CLOCK_RATE,
    VIDEO_TIME_BASE,
    CameraSource,
    EncodedFrame,
    NeedsTranscode,
    StreamInfo,
)

log = logging.getLogger(__name__)

GOP_CACHE_FRAMES = 300  # 12 s at 25 fps; a camera with a longer GOP gets no catch-up
CATCH_UP_SPACING = CLOCK_RATE // 1000  # 1 ms between replayed frames
# Frames handed to the event loop and not yet taken up, per camera: at most this
# many (2 s at 25 fps), whatever LoopWatch says. Past it, or while the loop is behind
# (LoopWatch), frames are dropped at the pull until the next keyframe, so the picture
# skips rather than lagging further and the loop's queue stays bounded.
BACKLOG_FRAMES = 50


class CameraUnavailable(Exception):
    """The camera cannot serve a new viewer now; the message is safe to show.

    `code` is "camera_unavailable" (offline, no video) or "capacity" (too many viewers).
    """

    def __init__(self, message: str, retry_after: int, code: str = "camera_unavailable") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class CameraHub:
    """Pulls a camera only while someone watches, and fans its frames out.

    - The first `join` starts the pull in a worker thread; the pull stops
      `linger_seconds` after the last viewer leaves.
    - Frames go to every viewer's feed without waiting for any of them.
    - While viewers remain, a failed camera is reopened with capped exponential
      backoff; viewers stay joined and resume at the next keyframe.
    """

    def __init__(
        self,
        camera: CameraSettings,
        relay: RelaySettings,
        capacity: Capacity | None = None,
        police_api: PoliceApi | None = None,
        watch: LoopWatch | None = None,
    ) -> None:
        self.camera = camera
        self.watch = watch or LoopWatch()
        self._own_watch = watch is None
        self.relay = relay
        self.capacity = capacity or Capacity(relay.max_viewers)
        self.viewers: set[ViewerFeed] = set()  # every viewer, of the camera's own stream or not
        self._direct: set[ViewerFeed] = set()  # those who get the camera's own stream
        # Derived encodes (e.g. VP8 for browsers without H.264), by spec name, each
        # running while it has viewers.
        self.renditions: dict[str, Rendition] = {}
        self._rendition_of: dict[ViewerFeed, Rendition] = {}
        self.info: StreamInfo | None = None
        self.state = "idle"  # idle, connecting, live, offline
        self.last_error: str | None = None
        # Told of every change of `state`, e.g. to tell the camera's viewers it is offline.
        self.on_state_change: list[Callable[[CameraHub], None]] = []
        self.reconnects = 0
        # Totals of viewers that have left, so the metrics only ever count up.
        self.bytes_out_before = 0
        self.frames_dropped_before = 0
        self.frames_dropped_behind = 0  # at the pull, while the event loop was behind
        # Frames posted to the loop by the pull thread, and taken up there: each is
        # written by one thread only, so their difference needs no lock.
        self._posted = 0
        self._taken = 0
        self.retired = False  # taken out of the inventory
        self._source = CameraSource(camera, relay, police_api)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._ready = asyncio.Event()
        self._failed = asyncio.Event()
        self._backoff = relay.reconnect_initial_seconds
        # The frames since the last keyframe, so a new viewer's picture starts at once
        # instead of at the camera's next keyframe (up to a whole GOP, 2-10 s, later).
        self._gop: list[av.Packet] = []
        # Output clock: viewers see one continuous 90 kHz timeline across reconnects.
        self._pts_offset: int | None = None
        self._last_pts = 0
        self._last_wall = 0.0

    @property
    def id(self) -> str:
        return self.camera.id

    @property
    def _log_ids(self) -> dict[str, str]:
        return {"camera_id": self.camera.id}

    @property
    def pulling(self) -> bool:
        return self._thread is not None

    def update(self, camera: CameraSettings) -> None:
        """New settings from the inventory. A pull that runs keeps its connection; the
        next open (a new pull or a reconnect) uses the new source."""
        self.camera = camera
        self._source.camera = camera

    def retire(self) -> None:
        """The camera left the inventory: nobody new joins, and a viewer waiting for
        the first frame is told now. Its sessions are ended by the caller."""
        self.retired = True
        self.last_error = "camera was removed from the inventory"
        self._failed.set()

    async def join(self, rendition: RenditionSpec | None = None) -> ViewerFeed:
        """Add a viewer of the camera's own stream, or of `rendition` (started for its
        first viewer); wait until the camera delivers video it can be sent."""
        if self.retired:
            raise CameraUnavailable(self.last_error or "camera was removed", retry_after=5)
        if self.state == "offline":
            # Existing viewers wait for the camera; a new one is told now, not in 8 s.
            raise CameraUnavailable(
                self.last_error or "camera is offline", retry_after=max(1, round(self._backoff))
            )
        if len(self.viewers) >= self.relay.max_viewers_per_camera:
            raise CameraUnavailable(
                f"camera has its maximum of {self.relay.max_viewers_per_camera} viewers",
                retry_after=30,
                code="capacity",
            )
        self.capacity.take()
        self._cancel_linger()
        if self._thread is None:
            self._start_pull()
        if rendition is None:
            feed = ViewerFeed(self.camera.id, self.relay.viewer_queue_frames, self._catch_up)
            self._direct.add(feed)
        else:
            feed = self._join_rendition(rendition)
        self.viewers.add(feed)
        if self.info is None:
            self._failed.clear()
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._ready, self._failed)]
            try:
                await asyncio.wait(
                    waiters,
                    timeout=self.relay.start_timeout_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if self.info is None or self.retired:
                self.leave(feed)
                reason = self.last_error or (
                    f"camera sent no video within {self.relay.start_timeout_seconds:g} s"
                )
                raise CameraUnavailable(reason, retry_after=max(1, round(self._backoff)))
        return feed

    def _join_rendition(self, spec: RenditionSpec) -> ViewerFeed:
        rendition = self.renditions.get(spec.name)
        if rendition is None:
            rendition = Rendition(self.camera.id, spec, self.relay.viewer_queue_frames)
            self.renditions[spec.name] = rendition
            rendition.start(list(self._gop))
        feed = rendition.add_feed()
        self._rendition_of[feed] = rendition
        return feed

    def leave(self, feed: ViewerFeed) -> None:
        feed.stop()
        self._direct.discard(feed)
        rendition = self._rendition_of.pop(feed, None)
        if rendition is not None:
            rendition.remove_feed(feed)
            if not rendition.feeds:  # its last viewer: stop encoding
                rendition.stop()
                self.renditions.pop(rendition.spec.name, None)
        if feed in self.viewers:
            self.viewers.discard(feed)
            self.capacity.give_back()
            self.bytes_out_before += feed.bytes_sent
            self.frames_dropped_before += feed.frames_dropped
        if not self.viewers and self._thread is not None and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(
                self.relay.linger_seconds, self._stop_pull
            )

    def _cancel_linger(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    # --- the pull, in a worker thread ---------------------------------------

    def _start_pull(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.watch.start()
        self._stop = threading.Event()
        self._backoff = self.relay.reconnect_initial_seconds
        self._set_state("connecting")
        self._thread = threading.Thread(
            target=self._pull, args=(self._stop,), name=f"camera-{self.camera.id}", daemon=True
        )
        self._thread.start()
        log.info("camera %s: pull started", self.camera.id, extra=self._log_ids)

    def _stop_pull(self) -> threading.Thread | None:
        self._linger = None
        thread, self._thread = self._thread, None
        if self._stop is not None:
            self._stop.set()
        self.info = None
        self._gop = []
        self._ready.clear()
        self._set_state("idle")
        if thread is not None:
            log.info("camera %s: pull stopped", self.camera.id, extra=self._log_ids)
        return thread

    def _pull(self, stop: threading.Event) -> None:
        # Once B slices are seen, this pull transcodes, across reconnects; the next
        # pull looks at the stream afresh (a camera may be reconfigured meanwhile).
        transcode = False
        while not stop.is_set():
            got_video = False

            def on_info(info: StreamInfo) -> None:
                self._post(stop, self._on_info, info)

            skipping = False

            def on_frame(frame: EncodedFrame) -> None:
                nonlocal got_video, skipping
                got_video = True
                behind = self.watch.behind or self.backlog >= BACKLOG_FRAMES
                skipping = behind or (skipping and not frame.keyframe)
                if skipping:
                    self.frames_dropped_behind += 1
                    return
                self._posted += 1
                self._post(stop, self._on_frame, frame, frame=True)

            try:
                self._source.run(stop, on_info, on_frame, transcode=transcode)
                error = SourceError("camera ended the stream")
            except NeedsTranscode:
                log.warning(
                    "camera %s: B slices in the stream; transcoding until this pull stops",
                    self.camera.id,
                    extra=self._log_ids,
                )
                transcode = True
                continue
            except SourceError as exc:
                error = exc
            except Exception as exc:
                # Only the class name: messages from PyAV can carry the camera URL.
                error = SourceError(f"camera stream failed ({type(exc).__name__})")
            if stop.is_set():
                break
            self._source.stream_failed()
            if got_video:
                self._backoff = self.relay.reconnect_initial_seconds
            self._post(stop, self._on_error, error)
            stop.wait(self._backoff)
            self._backoff = min(self._backoff * 2, self.relay.reconnect_max_seconds)

    def _post(
        self,
        stop: threading.Event,
        callback: Callable[[Any], None],
        arg: Any,
        *,
        frame: bool = False,
    ) -> None:
        """Run `callback(arg)` on the event loop, unless this pull was stopped."""
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(self._if_current, stop, callback, arg, frame)

    @property
    def backlog(self) -> int:
        """Frames waiting for the event loop."""
        return self._posted - self._taken

    def _if_current(
        self, stop: threading.Event, callback: Callable[[Any], None], arg: Any, frame: bool
    ) -> None:
        if frame:
            self._taken += 1  # taken up, whether this pull is still current or not
        if stop is self._stop and not stop.is_set():
            callback(arg)

    # --- on the event loop ----------------------------------------------------

    def _on_info(self, info: StreamInfo) -> None:
        if self.info is not None:
            self.reconnects += 1
        self.info = info
        self.last_error = None
        self._set_state("live")
        self._pts_offset = None  # a new connection starts a new source clock
        self._gop = []
        for feed in self._direct:
            feed.resync()
        for rendition in self.renditions.values():
            rendition.resync()
        self._ready.set()
        log.info(
            "camera %s: live, %s %dx%d, H.264 %s",
            self.camera.id,
            info.mode,
            info.width,
            info.height,
            info.profile_level_id,
            extra=self._log_ids,
        )

    def _on_error(self, error: SourceError) -> None:
        self.last_error = str(error)
        self._set_state("offline")
        self._failed.set()
        log.warning(
            "camera %s: %s; retrying in %.1f s",
            self.camera.id,
            error,
            self._backoff,
            extra=self._log_ids,
        )

    def _on_frame(self, frame: EncodedFrame) -> None:
        now = time.monotonic()
        if self._pts_offset is None or frame.pts + self._pts_offset <= self._last_pts:
            # A new connection, or a camera clock that jumped back: continue the
            # viewers' clock, advanced by the real time that passed.
            gap = max(1, int((now - self._last_wall) * CLOCK_RATE)) if self._last_wall else 0
            self._pts_offset = self._last_pts + gap - frame.pts
        pts = frame.pts + self._pts_offset
        self._last_pts, self._last_wall = pts, now
        packet = av.Packet(frame.data)
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = frame.keyframe
        if frame.keyframe:
            self._gop = [packet]
        elif self._gop and len(self._gop) < GOP_CACHE_FRAMES:
            self._gop.append(packet)
        else:
            self._gop = []  # a GOP too long to keep: newcomers wait for a keyframe
        fan_out(packet, self._direct)
        for rendition in self.renditions.values():
            rendition.offer(packet)

    def _catch_up(self) -> list[av.Packet]:
        """The current GOP for a viewer starting now, replayed without a fast-forward.

        Its timestamps are squeezed to 1 ms apart, ending at the newest frame: the
        decoder gets every reference it needs, and the player shows the newest
        picture at once instead of playing the last seconds back quickly.
        """
        frames = self._gop
        last = frames[-1].pts if frames else 0
        replay = []
        for i, frame in enumerate(frames):
            packet = av.Packet(bytes(frame))
            packet.pts = last - (len(frames) - 1 - i) * CATCH_UP_SPACING
            packet.time_base = VIDEO_TIME_BASE
            packet.is_keyframe = frame.is_keyframe
            packet.opaque = Replayed(frame)  # senders share what they made of the frame
            replay.append(packet)
        return replay

    @property
    def bytes_out(self) -> int:
        return self.bytes_out_before + sum(t.bytes_sent for t in self.viewers)

    @property
    def frames_dropped(self) -> int:
        return self.frames_dropped_before + sum(t.frames_dropped for t in self.viewers)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            for listener in self.on_state_change:
                listener(self)

    async def close(self) -> None:
        for feed in list(self.viewers):
            self.leave(feed)
        self._cancel_linger()
        thread = self._stop_pull()
        if self._own_watch:
            self.watch.stop()
        if thread is not None:
            await asyncio.to_thread(thread.join, self.camera.stall_timeout_seconds + 1)


class Capacity:
    """The gateway-wide viewer limit, shared by every hub."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> None:
        if self.used >= self.limit:
            raise CameraUnavailable(
                f"the gateway has its maximum of {self.limit} viewers",
                retry_after=30,
                code="capacity",
            )
        self.used += 1

    def give_back(self) -> None:
        self.used -= 1


@dataclass(frozen=True)
class InventoryChange:
    """What a new inventory changes: camera ids added, removed, and changed."""

    added: frozenset[str]
    removed: frozenset[str]
    changed: frozenset[str]


class CameraHubs:
    """One hub per camera of the inventory, idle until watched."""

    def __init__(
        self,
        cameras: Iterable[CameraSettings],
        relay: RelaySettings,
        police_api: PoliceApi | None = None,
    ) -> None:
        self.relay = relay
        self.police_api = police_api
        self.capacity = Capacity(relay.max_viewers)
        self.watch = LoopWatch()  # one event loop for every hub
        # Told of every hub's change of state, the hubs of a later inventory too.
        self.on_state_change: list[Callable[[CameraHub], None]] = []
        self._hubs: dict[str, CameraHub] = {}
        for camera in cameras:
            self._add(camera)

    def _add(self, camera: CameraSettings) -> None:
        hub = CameraHub(camera, self.relay, self.capacity, self.police_api, self.watch)
        hub.on_state_change = self.on_state_change
        self._hubs[camera.id] = hub

    def compare(self, cameras: Iterable[CameraSettings]) -> InventoryChange:
        new = {camera.id: camera for camera in cameras}
        return InventoryChange(
            added=frozenset(new.keys() - self._hubs.keys()),
            removed=frozenset(self._hubs.keys() - new.keys()),
            changed=frozenset(
                i for i, camera in new.items() if i in self._hubs and self._hubs[i].camera != camera
            ),
        )

    def replace(self, cameras: Iterable[CameraSettings]) -> list[CameraHub]:
        """Take a new inventory: add hubs, update changed ones, and retire (and return)
        those of removed cameras. The caller ends their sessions and closes them."""
        new = {camera.id: camera for camera in cameras}
        retired = [hub for i, hub in self._hubs.items() if i not in new]
        for hub in retired:
            hub.retire()
            del self._hubs[hub.id]
        for camera_id, camera in new.items():
            hub = self._hubs.get(camera_id)
            if hub is None:
                self._add(camera)
            elif hub.camera != camera:
                hub.update(camera)
        return retired

    def get(self, camera_id: str) -> CameraHub | None:
        return self._hubs.get(camera_id)

    def __iter__(self) -> Iterator[CameraHub]:
        return iter(list(self._hubs.values()))

    def __len__(self) -> int:
        return len(self._hubs)

    async def close(self) -> None:
        await asyncio.gather(*(hub.close() for hub in self._hubs.values()))
        self.watch.stop()
