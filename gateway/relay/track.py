"""ViewerTrack: one viewer's bounded window onto a CameraHub."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger(__name__)


class ViewerTrack(MediaStreamTrack):
    """A video track fed by the hub, pulled through `recv` or pushed to a sink.

    Pulled (aiortc's own sender), the queue is bounded. A viewer that falls behind
    loses what is queued and resumes at the next keyframe, so the hub never waits
    for it and its decoder never sees a frame whose references are missing.

    Pushed (`attach`, used by RelaySender), the hub's fan-out loop hands each frame
    straight to the sink, which sends it without blocking: no task wake-up per
    viewer per frame, so the last viewer in the fan-out is not later by one
    scheduler round trip per viewer before it.
    """

    kind = "video"

    def __init__(
        self,
        camera_id: str,
        max_frames: int,
        catch_up: Callable[[], list[av.Packet]] | None = None,
    ) -> None:
        super().__init__()
        self.camera_id = camera_id
        self._max_frames = max_frames
        self._queue: deque[av.Packet] = deque()
        self._wakeup = asyncio.Event()
        self._waiting_keyframe = True
        # Until the sender asks for its first frame (its connection is up), nothing is
        # queued; then `catch_up` gives the frames since the camera's last keyframe.
        self._catch_up = catch_up
        self._started = False
        self._allowance = 0  # catch-up frames still queued, beyond the bound
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0
        self.on_first_frame: Callable[[], None] | None = None  # e.g. time to first frame
        self._sink: Callable[[av.Packet], bool] | None = None
        self._ended = asyncio.Event()

    def offer(self, packet: av.Packet) -> None:
        """Called by the hub on the event loop for every frame; never blocks."""
        if self.readyState != "live" or not self._started:
            return
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                self.frames_dropped += 1
                return
            self._waiting_keyframe = False
        if self._sink is not None:
            self._push(packet)
            return
        if len(self._queue) >= self._max_frames + self._allowance:
            self.frames_dropped += len(self._queue)
            self._queue.clear()
            if not packet.is_keyframe:
                self._waiting_keyframe = True
                self.frames_dropped += 1
                return
        self._queue.append(packet)
        self._wakeup.set()

    def resync(self) -> None:
        """The source restarted: the next frame this viewer gets is a keyframe."""
        self._waiting_keyframe = True

    async def recv(self) -> av.Packet:
        if not self._started:
            self._start()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        packet = self._queue.popleft()
        self._allowance = max(0, self._allowance - 1)
        self._count(packet)
        return packet

    def attach(self, sink: Callable[[av.Packet], bool]) -> None:
        """Push frames to `sink` from now on: first the catch-up, then each new one.

        The sink returns False for a frame it had to skip (its viewer's socket is
        full), which counts as dropped for a slow viewer.
        """
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
            log.exception("sending to a viewer failed; ending its track")
            self.stop()
            return
        if sent:
            self._count(packet)
        else:
            self.frames_dropped += 1

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
        super().stop()
        self._sink = None
        self._queue.clear()
        self._wakeup.set()
        self._ended.set()
