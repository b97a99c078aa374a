"""A real aiortc WHEP viewer over loopback, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gateway.egress.compat import register_h264_profile

# aiortc offers only Baseline H.264; a browser also offers Main and High.
for _plid in ("4d001f", "640c1f", "64001f"):
    register_h264_profile(_plid)


class Viewer:
    def __init__(self, base_url: str, camera_id: str, headers: dict[str, str] | None = None):
        self.url = f"{base_url}/whep/{camera_id}"
        self.base_url = base_url
        self.headers = headers or {}
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.frames: list[tuple[float, int, int]] = []  # (arrival, width, height)
        self.pts: list[int] = []  # each frame's RTP timestamp (90 kHz, the sender's origin)
        self.last_frame = None
        self.session_url: str | None = None
        self.answer: str | None = None
        self.closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                self.closed.set()

    def _on_track(self, track) -> None:  # type: ignore[no-untyped-def]
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames.append((time.monotonic(), frame.width, frame.height))
                self.pts.append(frame.pts)
                self.last_frame = frame
        self.closed.set()

    async def connect(self, http: aiohttp.ClientSession) -> aiohttp.ClientResponse:
        """POST the offer; on 201 apply the answer. Returns the response."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp", **self.headers}
        response = await http.post(self.url, data=self.pc.localDescription.sdp, headers=headers)
        if response.status == 201:
            self.answer = await response.text()
            self.session_url = self.base_url + response.headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(self.answer, "answer"))
        return response

    async def wait_frames(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until `count` more frames have been decoded."""
        target = len(self.frames) + count
        deadline = time.monotonic() + timeout
        while len(self.frames) < target:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self, http: aiohttp.ClientSession | None = None) -> None:
        if http is not None and self.session_url:
            await http.delete(self.session_url, headers=self.headers)
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()


async def offer_sdp() -> str:
    """A real aiortc offer, for requests that need a valid body but no viewer."""
    viewer = Viewer("http://unused", "x")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    sdp = viewer.pc.localDescription.sdp
    await viewer.pc.close()
    return sdp
