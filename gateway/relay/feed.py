"""ViewerFeed: one viewer's window onto a CameraHub, and where frames are skipped.

The hub offers every frame to every feed (`fan_out`) and never waits for one. A
feed either pushes each frame straight to its sink (the fast sender), or queues a
bounded number for a reader that pulls (`next`). Either way, a viewer that falls
behind skips to the next keyframe, so its decoder never sees a frame whose
references are missing. This is the one place that rule lives.

A sink may send a frame in steps (RelaySender: the frame's first GSO run, then the
rest). The fan-out then calls the steps of every viewer in turn, round after round:
every viewer gets the frame's first packet before any gets the rest, instead of the
200th viewer waiting behind 199 whole keyframes (docs/performance-send-path.md).

A pushed feed sends the catch-up (the frames since the camera's last keyframe)
paced, a small group per timer tick. In one burst, half a megabyte (a 2 s GOP at
2 Mbit/s) overflowed an aiortc viewer's socket buffer before it could read, and
the viewer froze until the camera's next keyframe.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

import av

log = logging.getLogger(__name__)

# A sink takes one frame without blocking. True: sent. False: it had to skip it (the
# viewer's socket is full), and the feed then waits for the next keyframe. Or a step:
# called again and again, it sends the next part of the frame and returns None while
# parts remain, then True or False as above.
FrameStep = Callable[[], bool | None]
FrameSink = Callable[[av.Packet], bool | FrameStep]

# The catch-up leaves in groups of about this many bytes (at least one frame), one
# group per tick: a keyframe of a 2 Mbit/s camera (~77 KB) goes alone, delta frames
# a few at a time. Live frames that arrive meanwhile queue behind it.
REPLAY_GROUP_BYTES = 24_000
REPLAY_TICK_SECONDS = 0.002


def fan_out(packet: av.Packet, feeds: Iterable[ViewerFeed]) -> None:
    """Offer a frame to every feed, on the event loop; never blocks. Sinks that send in
    steps get one step each in turn until every one has sent the whole frame."""
    sending = [(feed, step) for feed in feeds if (step := feed.take(packet)) is not None]
    while sending:
        sending = [(feed, step) for feed, step in sending if not feed.step(packet, step)]


class Replayed(NamedTuple):
    """Set as a replayed frame's `opaque`: the camera's frame it copies (with its own
    timestamp), so that what senders make of a frame serves its replays too. A new
    one per packet: PyAV keys `opaque` objects by identity and drops the key when
    the first packet holding it is freed."""

    frame: av.Packet


class FeedEnded(Exception):
    """The feed was stopped: the viewer left or the session ended."""


class ViewerFeed:
    """Frames for one viewer: pulled through `next`, or pushed to a sink (`attach`).

    Until the viewer's connection is up (`start`, or the first `next` or `attach`),
    nothing is kept; then `catch_up` gives the frames since the camera's last
    keyframe, so the picture starts at once.
    """

    def __init__(
        self,
        camera_id: str,
        max_frames: int,
        catch_up: Callable[[], list[av.Packet]] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._max_frames = max_frames
        self._queue: deque[av.Packet] = deque()
        self._wakeup = asyncio.Event()
        self._waiting_keyframe = True
        self._behind = False  # skipping because this viewer fell behind (not joining)
        self._catch_up = catch_up
        self._started = False
        self._allowance = 0  # catch-up frames still queued, beyond the bound
        self.live = True
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0
        self.on_first_frame: Callable[[], None] | None = None  # e.g. time to first frame
        self._sink: FrameSink | None = None
        self._tick: asyncio.TimerHandle | None = None  # the next group of a paced send
        self._ended = asyncio.Event()
        self._detached = asyncio.Event()  # the sink failed: frames wait for `next` again
        self.sink_failures = 0

    def offer(self, packet: av.Packet) -> None:
        """A frame for this viewer alone, sent (or queued) before this returns."""
        fan_out(packet, (self,))

    def take(self, packet: av.Packet) -> FrameStep | None:
        """Called by the fan-out on the event loop for every frame; never blocks. The
        step that sends the rest of the frame, if the sink sends in steps."""
        if not self.live or not self._started:
            return None
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                # Only a viewer that fell behind drops frames; one that is joining
                # (or whose camera reconnected) just has not had its keyframe yet.
                if self._behind:
                    self.frames_dropped += 1
                return None
            self._waiting_keyframe = self._behind = False
        if self._sink is not None and not self._queue:
            return self._push(packet)
        if len(self._queue) >= self._max_frames + self._allowance:
            self.frames_dropped += len(self._queue)
            self._queue.clear()
            if not packet.is_keyframe:
                self._waiting_keyframe = self._behind = True
                self.frames_dropped += 1
                return None
        self._queue.append(packet)  # pushed: behind a catch-up still being sent
        self._wakeup.set()
        return None

    def resync(self) -> None:
        """The source restarted, or the feed moved to another (a masked encode): the
        next frame this viewer gets is a keyframe of the new one. Frames of the old
        source still queued (a catch-up being sent) are dropped with it."""
        self._queue.clear()
        self._allowance = 0
        self._waiting_keyframe = True
        self._behind = False

    async def next(self) -> av.Packet:
        """The next frame for a pulling reader; FeedEnded once the feed is stopped."""
        self.start()
        while not self._queue:
            if not self.live:
                raise FeedEnded
            self._wakeup.clear()
            await self._wakeup.wait()
        packet = self._take()
        self._count(packet)
        return packet

    def start(self) -> int:
        """Open the window: from now on frames are kept for this viewer, beginning
        with the catch-up. Returns how many frames the catch-up holds."""
        if self._started:
            return 0
        self._started = True
        frames = self._catch_up() if self._catch_up else []
        if frames:  # begins with a keyframe: the picture is there at once
            self._queue.extend(frames)
            self._allowance = len(frames)
            self._waiting_keyframe = False
        return len(frames)

    def attach(self, sink: FrameSink) -> None:
        """Push frames to `sink` from now on: first the catch-up, paced, then each new one."""
        self.start()
        self._sink = sink
        if self._queue:
            self._send_group()

    def _send_group(self) -> None:
        """Push queued frames up to REPLAY_GROUP_BYTES; the rest waits for the next tick."""
        self._tick = None
        budget = REPLAY_GROUP_BYTES
        while self._queue and self._sink is not None and budget > 0:
            packet = self._take()
            budget -= packet.size
            step = self._push(packet)
            while step is not None and not self.step(packet, step):
                pass
        if self._queue and self._sink is not None:
            loop = asyncio.get_running_loop()
            self._tick = loop.call_later(REPLAY_TICK_SECONDS, self._send_group)

    def _take(self) -> av.Packet:
        self._allowance = max(0, self._allowance - 1)
        return self._queue.popleft()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def wait_detached(self) -> None:
        """Until the feed stops, or its sink failed and was dropped (see `_push`)."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (self._ended, self._detached)]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _push(self, packet: av.Packet) -> FrameStep | None:
        assert self._sink is not None
        try:
            sent = self._sink(packet)
        except Exception as exc:
            self._sink_failed(exc)
            return None
        if sent is True or sent is False:
            self._sent(packet, sent)
            return None
        return sent

    def step(self, packet: av.Packet, step: FrameStep) -> bool:
        """Send the next part of `packet` (see FrameSink); True once nothing remains."""
        try:
            sent = step()
        except Exception as exc:
            self._sink_failed(exc)
            return True
        if sent is None:
            return False
        self._sent(packet, sent)
        return True

    def _sent(self, packet: av.Packet, sent: bool) -> None:
        if sent:
            self._count(packet)
        else:
            self.frames_dropped += 1
            self._behind = True
            self._skip_to_keyframe()

    def _sink_failed(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionError):  # the peer connection is closing
            self.stop()
            return
        # A bug or a library change in the sink must not leave the viewer with a
        # live connection and no picture: the sink is dropped, frames queue for
        # `next` again from the next keyframe, and whoever attached it takes over.
        log.error(
            "sending to a viewer failed; its frames wait for a reader now",
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        self.sink_failures += 1
        self._sink = None
        self._waiting_keyframe = True
        self._detached.set()

    def _skip_to_keyframe(self) -> None:
        """A frame was lost: drop the queued frames that refer to it, up to a keyframe."""
        while self._queue and not self._queue[0].is_keyframe:
            self._queue.popleft()
            self.frames_dropped += 1
        self._waiting_keyframe = not self._queue

    def _count(self, packet: av.Packet) -> None:
        if self.frames_sent == 0 and self.on_first_frame is not None:
            self.on_first_frame()
        self.frames_sent += 1
        self.bytes_sent += packet.size

    def stop(self) -> None:
        self.live = False
        self._sink = None
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._queue.clear()
        self._wakeup.set()
        self._ended.set()
