"""ViewerTrack: one viewer's bounded window onto a CameraHub."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError


class ViewerTrack(MediaStreamTrack):
    """A video track fed by the hub; aiortc's sender packs what `recv` returns.

    The queue is bounded. A viewer that falls behind loses what is queued and
    resumes at the next keyframe, so the hub never waits for it and its decoder
    never sees a frame whose references are missing.
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

    def offer(self, packet: av.Packet) -> None:
        """Called by the hub on the event loop for every frame; never blocks."""
        if self.readyState != "live" or not self._started:
            return
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                self.frames_dropped += 1
                return
            self._waiting_keyframe = False
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
        if self.frames_sent == 0 and self.on_first_frame is not None:
            self.on_first_frame()
        self.frames_sent += 1
        self.bytes_sent += packet.size
        return packet

    def _start(self) -> None:
        self._started = True
        frames = self._catch_up() if self._catch_up else []
        if frames:  # begins with a keyframe: the picture is there at once
            self._queue.extend(frames)
            self._allowance = len(frames)
            self._waiting_keyframe = False

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._wakeup.set()
