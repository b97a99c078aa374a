"""CameraHub: the one pull from one camera, shared by all of its viewers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import av

from gateway.config import CameraSettings, MaskSettings, RelaySettings

from .errors import SourceError
from .feed import Replayed, ViewerFeed, fan_out
from .node_stream import NodeSource
from .overload import LoopWatch
from .pictures import Pictures
from .police_api import PoliceApi
from .rendition import Rendition, RenditionSpec, original_picture
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
MASK_FAILED = "mask_failed"
# After a camera's masks could not be applied, new viewers are refused this long (then
# a fresh decode is tried): a fault that persists does not become a reconnect storm.
MASK_RETRY_SECONDS = 2.0


class CameraUnavailable(Exception):
    """The camera cannot serve a new viewer now; the message is safe to show.

    `code` is "camera_unavailable" (offline, no video), "capacity" (too many viewers)
    or "mask_failed" (the camera's privacy masks could not be applied just now).
    """

    def __init__(self, message: str, retry_after: int, code: str = "camera_unavailable") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class FeedFailure(NamedTuple):
    """Feeds the hub ended because it cannot give them a picture; their sessions end
    with `code` (e.g. "mask_failed") and `reason`, which is safe to show."""

    camera_id: str
    feeds: frozenset[ViewerFeed]
    code: str
    reason: str


class CameraHub:
    """Pulls a camera only while someone watches, and fans its frames out.

    - The first `join` starts the pull in a worker thread; the pull stops
      `linger_seconds` after the last viewer leaves.
    - Frames go to every viewer's feed without waiting for any of them.
    - While viewers remain, a failed camera is reopened with capped exponential
      backoff; viewers stay joined and resume at the next keyframe.
    - A camera with privacy masks is never passed through: every viewer gets a
      shared encode of its masked pictures (pictures.py), the camera's own picture
      ("original") or a rendition. `set_masks` changes them while viewers watch;
      `lift_masks` shows one audience (a grant's viewers) the unmasked picture for
      a while. When masks cannot be applied, the viewers' feeds end (FeedFailure,
      `mask_failed`): no picture rather than an unmasked one.
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
        # Where each viewer's frames come from: the camera's own stream (None), or a
        # shared encode (e.g. VP8 for browsers without H.264; any of a masked camera).
        self._source_of: dict[ViewerFeed, Rendition | None] = {}
        # The camera decoded once for every derived encode, while one has viewers.
        self._pictures: Pictures | None = None
        self._original = original_picture(relay)  # a masked camera's own picture
        self.masks: tuple[MaskSettings, ...] = camera.masks  # in force now
        # This pull passes nothing through: masks were in force during it. (Viewers of
        # an encode are not moved back to the camera's own stream, another profile.)
        self._masked = False
        self._audience_of: dict[ViewerFeed, Hashable] = {}  # e.g. the viewer's grant
        self._lifts: dict[Hashable, asyncio.TimerHandle] = {}  # audiences seeing no masks
        self._mask_failed: tuple[float, str] | None = None  # when, and why
        # Told when feeds are ended for want of a picture, e.g. to end their sessions.
        self.on_feed_failure: list[Callable[[FeedFailure], None]] = []
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
        # Where the next pull takes the camera's frames from instead of the camera:
        # the node that pulls it (spreading, docs/cluster.md), until that node is lost.
        self._upstream: NodeSource | None = None
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

    @property
    def from_node(self) -> str | None:
        """The node whose stream of the camera this hub relays, or None: it pulls the
        camera itself (or nothing)."""
        return self._upstream.node if self._upstream is not None else None

    def take_from(self, upstream: NodeSource) -> bool:
        """Take the camera's frames from another node's stream at the next pull rather
        than from the camera. False (nothing changes) while a pull runs: it goes on."""
        if self._thread is not None:
            return False
        self._upstream = upstream
        return True

    @property
    def renditions(self) -> dict[str, Rendition]:
        """The shared encodes running now, by name."""
        pictures = self._pictures
        return {r.name: r for r in pictures.renditions.values()} if pictures else {}

    def update(self, camera: CameraSettings) -> None:
        """New settings from the inventory. A pull that runs keeps its connection; the
        next open (a new pull or a reconnect) uses the new source. New masks apply at once."""
        old = self.camera
        self.camera = camera
        self._source.camera = camera
        if camera.masks != old.masks:
            self.set_masks(camera.masks)

    def retire(self) -> None:
        """The camera left the inventory: nobody new joins, and a viewer waiting for
        the first frame is told now. Its sessions are ended by the caller."""
        self.retired = True
        self.last_error = "camera was removed from the inventory"
        self._failed.set()

    async def join(
        self, rendition: RenditionSpec | None = None, audience: Hashable = None
    ) -> ViewerFeed:
        """Add a viewer of the camera's own stream, or of `rendition` (started for its
        first viewer); wait until the camera delivers video it can be sent.

        `audience` (the viewer's grant) is who `lift_masks` names.
        """
        if self.retired:
            raise CameraUnavailable(self.last_error or "camera was removed", retry_after=5)
        if self.state == "offline":
            # Existing viewers wait for the camera; a new one is told now, not in 8 s.
            raise CameraUnavailable(
                self.last_error or "camera is offline", retry_after=max(1, round(self._backoff))
            )
        if self._mask_failed is not None and (self.masks or self._masked):
            failed_at, reason = self._mask_failed
            wait = failed_at + MASK_RETRY_SECONDS - time.monotonic()
            if wait > 0:
                raise CameraUnavailable(
                    f"the camera's privacy masks could not be applied: {reason}",
                    retry_after=max(1, round(wait)),
                    code=MASK_FAILED,
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
        feed: ViewerFeed
        feed = ViewerFeed(
            self.camera.id, self.relay.viewer_queue_frames, lambda: self._catch_up_for(feed)
        )
        if audience is not None:
            self._audience_of[feed] = audience
        self._route(feed, rendition or (self._original if self._masked else None))
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

    def _route(self, feed: ViewerFeed, spec: RenditionSpec | None) -> None:
        """Feed `feed` from the camera's own stream (None) or the shared encode of
        `spec` (masked, or lifted for the feed's audience). A feed that moves gets
        nothing more from its old source and starts at the new one's next keyframe,
        which is asked for now."""
        old = self._source_of.get(feed, False)
        if spec is None:
            new = None
            self._direct.add(feed)
        else:
            new = self._encodes().rendition(spec, self._lifted(feed))
            new.feeds.add(feed)
        self._source_of[feed] = new
        if old is False or old is new:
            return
        if old is None:
            self._direct.discard(feed)
        else:
            self._unfeed(feed, old)
        feed.resync()
        if new is not None:
            new.ask_keyframe()

    def _unfeed(self, feed: ViewerFeed, rendition: Rendition) -> None:
        rendition.feeds.discard(feed)
        pictures = self._pictures
        if rendition.feeds or pictures is None:
            return
        pictures.drop(rendition)  # its last viewer: stop encoding
        if not pictures.renditions:
            pictures.stop()
            self._pictures = None

    def _encodes(self) -> Pictures:
        """The camera's decoded pictures, started with the hub's GOP if need be."""
        if self._pictures is None:
            self._pictures = Pictures(self.camera.id, self.masks, self._on_mask_failed)
            self._pictures.strict = self._masked
            self._pictures.start(list(self._gop))
        return self._pictures

    def _lifted(self, feed: ViewerFeed) -> bool:
        return self._masked and self._audience_of.get(feed) in self._lifts

    def leave(self, feed: ViewerFeed) -> None:
        feed.stop()
        self._direct.discard(feed)
        self._audience_of.pop(feed, None)
        source = self._source_of.pop(feed, None)
        if source is not None:
            self._unfeed(feed, source)
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

    # --- privacy masks ------------------------------------------------------------

    def set_masks(self, masks: Iterable[MaskSettings]) -> None:
        """The camera's masks from now on (validated already: config.parse_masks).

        Every picture decoded after this call has them, so they show within a frame
        or two, and no viewer reconnects. Viewers of the camera's own stream move to
        the masked encode of it at once (from its first keyframe).
        """
        self.masks = tuple(masks)
        if self._pictures is not None:
            self._pictures.set_masks(self.masks)
        if self.masks and self.pulling and not self._masked:
            self._masked = True
            if self._pictures is not None:  # a new one is strict from the start
                self._pictures.strict = True
            if self.info is not None:
                self.info = self._as_sent(self.info)
            for feed in list(self._direct):
                self._route(feed, self._original)
            for audience in list(self._lifts):
                self._reroute(audience)
        log.info(
            "camera %s: %d privacy masks in force",
            self.camera.id,
            len(self.masks),
            extra=self._log_ids,
        )

    def lift_masks(self, audience: Hashable, seconds: float) -> None:
        """For `seconds`, viewers of `audience` (a grant's) see the picture without
        masks, now and if they join meanwhile; everyone else keeps the masked one.
        Their picture moves to an unmasked shared encode at its next keyframe, and
        back when the lift ends (`restore_masks`, or the time running out), without
        a reconnect. A second lift of the same audience replaces the first."""
        if (timer := self._lifts.pop(audience, None)) is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._lifts[audience] = loop.call_later(seconds, self.restore_masks, audience)
        self._reroute(audience)
        log.info(
            "camera %s: masks lifted for %s for %g s",
            self.camera.id,
            audience,
            seconds,
            extra=self._log_ids,
        )

    def restore_masks(self, audience: Hashable) -> None:
        """End a lift now: the audience's picture is masked again from the next frame."""
        if (timer := self._lifts.pop(audience, None)) is None:
            return
        timer.cancel()
        self._reroute(audience)
        log.info("camera %s: masks restored for %s", self.camera.id, audience, extra=self._log_ids)

    @property
    def lifted_for(self) -> frozenset[Hashable]:
        """The audiences whose masks are lifted now."""
        return frozenset(self._lifts)

    def _reroute(self, audience: Hashable) -> None:
        for feed, source in list(self._source_of.items()):
            if (
                source is not None
                and self._audience_of.get(feed) == audience
                and source.lifted != self._lifted(feed)
            ):
                self._route(feed, source.spec)

    def _on_mask_failed(self, pictures: Pictures, reason: str) -> None:
        """The masks cannot be applied: the feeds of every encode end now, and whoever
        holds their sessions is told (FeedFailure)."""
        if pictures is not self._pictures:
            return
        self._pictures = None
        pictures.stop()
        feeds = frozenset(f for r in pictures.renditions.values() for f in r.feeds)
        for feed in feeds:
            feed.stop()
            self._source_of.pop(feed, None)
        self._mask_failed = (time.monotonic(), reason)
        log.error(
            "camera %s: privacy masks could not be applied (%s); %d viewers get no picture",
            self.camera.id,
            reason,
            len(feeds),
            extra=self._log_ids,
        )
        failure = FeedFailure(
            self.camera.id, feeds, MASK_FAILED, f"the privacy masks could not be applied: {reason}"
        )
        for listener in self.on_feed_failure:
            listener(failure)

    def _as_sent(self, info: StreamInfo) -> StreamInfo:
        """The stream as viewers of the camera's own picture receive it."""
        if not self._masked:
            return info
        return replace(info, mode="masked", profile_level_id=self._original.profile_level_id)

    # --- the pull, in a worker thread ---------------------------------------

    def _start_pull(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._masked = bool(self.masks)
        self.watch.start()
        self._stop = threading.Event()
        self._backoff = self.relay.reconnect_initial_seconds
        self._set_state("connecting")
        self._thread = threading.Thread(
            target=self._pull,
            args=(self._stop, self._upstream),
            name=f"camera-{self.camera.id}",
            daemon=True,
        )
        self._thread.start()
        where = f" from node {self._upstream.node}" if self._upstream is not None else ""
        log.info("camera %s: pull started%s", self.camera.id, where, extra=self._log_ids)

    def _stop_pull(self) -> threading.Thread | None:
        self._linger = None
        thread, self._thread = self._thread, None
        if self._stop is not None:
            self._stop.set()
        self._upstream = None  # the next pull decides afresh
        self.info = None
        self._gop = []
        if self._pictures is not None:
            self._pictures.stop()
            self._pictures = None
        self._ready.clear()
        self._set_state("idle")
        if thread is not None:
            log.info("camera %s: pull stopped", self.camera.id, extra=self._log_ids)
        return thread

    def _pull(self, stop: threading.Event, upstream: NodeSource | None) -> None:
        # Once B slices are seen, this pull transcodes, across reconnects; the next
        # pull looks at the stream afresh (a camera may be reconfigured meanwhile).
        transcode = False
        source: CameraSource | NodeSource = upstream or self._source
        while not stop.is_set():
            got_video = False

            def on_info(info: StreamInfo) -> None:
                self._post(stop, self._on_info, info)

            skipping = False

            def on_frame(frame: EncodedFrame) -> None:
                nonlocal got_video, skipping
                got_video = True
                # A replayed GOP comes in a burst, no sign of the loop falling behind.
                backlogged = not frame.catch_up and self.backlog >= BACKLOG_FRAMES
                behind = self.watch.behind or backlogged
                skipping = behind or (skipping and not frame.keyframe)
                if skipping:
                    self.frames_dropped_behind += 1
                    return
                self._posted += 1
                self._post(stop, self._on_frame, frame, frame=True)

            try:
                source.run(stop, on_info, on_frame, transcode=transcode)
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
            if source is not self._source:
                # The origin node is lost (it died, or cannot serve the camera now): this
                # node pulls the camera itself at once, the one pull again (docs/cluster.md).
                source = self._source
                self._post(stop, self._origin_lost, error)
                continue
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
        info = self.info = self._as_sent(info)
        self.last_error = None
        self._set_state("live")
        self._pts_offset = None  # a new connection starts a new source clock
        self._gop = []
        for feed in self._direct:
            feed.resync()
        if self._pictures is not None:
            self._pictures.resync()
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

    def _origin_lost(self, error: SourceError) -> None:
        self._upstream = None
        log.warning(
            "camera %s: %s; pulling the camera itself",
            self.camera.id,
            error,
            extra=self._log_ids,
        )
        # Told as a new pull (CameraMoves says so to the other nodes); live at its info.
        self._set_state("connecting")

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
        fan_out(packet, self._direct)  # none while the camera is masked
        if self._pictures is not None:
            self._pictures.offer(packet)

    def _catch_up_for(self, feed: ViewerFeed) -> list[av.Packet]:
        """What a viewer whose picture starts now gets first: the camera's current GOP
        (`_catch_up`), or, from a shared encode (any viewer of a masked camera), none
        of the camera's own frames: the encode makes a keyframe for it instead."""
        source = self._source_of.get(feed)
        if source is not None:
            return source.ask_keyframe()
        if self._masked or feed not in self._direct:
            return []
        return self._catch_up()

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
        for timer in self._lifts.values():
            timer.cancel()
        self._lifts.clear()
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
        # Told of feeds any hub ended for want of a picture (FeedFailure).
        self.on_feed_failure: list[Callable[[FeedFailure], None]] = []
        self._hubs: dict[str, CameraHub] = {}
        # Masks an administrator set (stored; control/masks.py), which win over the
        # [[cameras]] table's or the inventory's, across reloads too.
        self._set_masks: dict[str, tuple[MaskSettings, ...]] = {}
        self._configured: dict[str, tuple[MaskSettings, ...]] = {}  # the inventory's
        for camera in cameras:
            self._add(camera)

    def set_masks(self, camera_id: str, masks: Iterable[MaskSettings]) -> None:
        """The masks an administrator set for a camera: in force at once (and on a
        camera that joins the inventory later), whatever its inventory says."""
        self._set_masks[camera_id] = tuple(masks)
        hub = self._hubs.get(camera_id)
        if hub is not None:
            hub.update(self._effective(replace(hub.camera, masks=self._configured[camera_id])))

    def configured_masks(self, camera_id: str) -> tuple[MaskSettings, ...]:
        """A camera's masks as its [[cameras]] table or inventory gives them."""
        return self._configured.get(camera_id, ())

    def masks_set(self, camera_id: str) -> bool:
        """An administrator's masks are in force for the camera (not the inventory's)."""
        return camera_id in self._set_masks

    def _effective(self, camera: CameraSettings) -> CameraSettings:
        masks = self._set_masks.get(camera.id)
        return camera if masks is None else replace(camera, masks=masks)

    def _add(self, camera: CameraSettings) -> None:
        self._configured[camera.id] = camera.masks
        camera = self._effective(camera)
        hub = CameraHub(camera, self.relay, self.capacity, self.police_api, self.watch)
        hub.on_state_change = self.on_state_change
        hub.on_feed_failure = self.on_feed_failure
        self._hubs[camera.id] = hub

    def compare(self, cameras: Iterable[CameraSettings]) -> InventoryChange:
        new = {camera.id: self._effective(camera) for camera in cameras}
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
            del self._configured[hub.id]
        for camera_id, camera in new.items():
            hub = self._hubs.get(camera_id)
            if hub is None:
                self._add(camera)
                continue
            self._configured[camera_id] = camera.masks
            if hub.camera != (camera := self._effective(camera)):
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
