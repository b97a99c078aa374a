"""ViewerFeed: one viewer's window onto a CameraHub, and where frames are skipped.

The hub offers every frame to every feed and never waits for one. A feed either
pushes each frame straight to its sink (the fast sender), or queues a bounded
number for a reader that pulls (`next`). Either way, a viewer that falls behind
skips to the next keyframe, so its decoder never sees a frame whose references
are missing. This is the one place that rule lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import av

log = logging.getLogger(__name__)

# A sink sends one frame without blocking; False means it had to skip it (the
# viewer's socket is full), and the feed then waits for the next keyframe.
FrameSink = Callable[[av.Packet], bool]


class FeedEnded(Exception):
    """The feed was stopped: the viewer left or the session ended."""


class ViewerFeed:
    """Frames for one viewer: pulled through `next`, or pushed to a sink (`attach`).

    Until the viewer's connection is up (the first `next` or `attach`), nothing is
    kept; then `catch_up` gives the frames since the camera's last keyframe, so
    the picture starts at once.
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
        self._ended = asyncio.Event()

    def offer(self, packet: av.Packet) -> None:
        """Called by the hub on the event loop for every frame; never blocks."""
        if not self.live or not self._started:
            return
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                # Only a viewer that fell behind drops frames; one that is joining
                # (or whose camera reconnected) just has not had its keyframe yet.
                if self._behind:
                    self.frames_dropped += 1
                return
            self._waiting_keyframe = self._behind = False
        if self._sink is not None:
            self._push(packet)
            return
        if len(self._queue) >= self._max_frames + self._allowance:
            self.frames_dropped += len(self._queue)
            self._queue.clear()
            if not packet.is_keyframe:
                self._waiting_keyframe = self._behind = True
                self.frames_dropped += 1
                return
        self._queue.append(packet)
        self._wakeup.set()

    def resync(self) -> None:
        """The source restarted: the next frame this viewer gets is a keyframe."""
        self._waiting_keyframe = True
        self._behind = False

    async def next(self) -> av.Packet:
        """The next frame for a pulling reader; FeedEnded once the feed is stopped."""
        if not self._started:
            self._start()
        while not self._queue:
            if not self.live:
                raise FeedEnded
            self._wakeup.clear()
            await self._wakeup.wait()
        packet = self._queue.popleft()
        self._allowance = max(0, self._allowance - 1)
        self._count(packet)
        return packet

    def attach(self, sink: FrameSink) -> None:
        """Push frames to `sink` from now on: first the catch-up, then each new one."""
        if not self._started:
            self._start()
        self._sink = sink
        while self._queue and self._sink is not None:
            self._push(self._queue.popleft())
        self._allowance = 0

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def _push(self, packet: av.Packet) -> None:
        assert self._sink is not None
        try:
            sent = self._sink(packet)
        except ConnectionError:  # the peer connection is closing
            self.stop()
            return
        except Exception:
            log.exception("sending to a viewer failed; ending its feed")
            self.stop()
            return
        if sent:
            self._count(packet)
        else:
            self.frames_dropped += 1
            self._waiting_keyframe = self._behind = True  # go on only from a keyframe

    def _count(self, packet: av.Packet) -> None:
        if self.frames_sent == 0 and self.on_first_frame is not None:
            self.on_first_frame()
        self.frames_sent += 1
        self.bytes_sent += packet.size

    def _start(self) -> None:
        self._started = True
        frames = self._catch_up() if self._catch_up else []
        if frames:  # begins with a keyframe: the picture is there at once
            self._queue.extend(frames)
            self._allowance = len(frames)
            self._waiting_keyframe = False

    def stop(self) -> None:
        self.live = False
        self._sink = None
        self._queue.clear()
        self._wakeup.set()
        self._ended.set()
