"""A real aiortc WHEP viewer over loopback, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from gateway.egress.compat import register_h264_profile

# aiortc offers only Baseline H.264; a browser also offers Main and High.
for _plid in ("4d001f", "640c1f", "64001f"):
    register_h264_profile(_plid)


class Viewer:
    """A WHEP viewer. `codecs` limits what it offers (e.g. ["video/VP8"], as Firefox
    without OpenH264); `audio` adds a sendrecv audio line that really sends; `trickle`
    leaves the candidates out of the offer, for `patch` to send. Without
    `answer_candidates` it applies the answer without the gateway's candidates, so it
    never sends an ICE check first: only the gateway's checks can connect it."""

    def __init__(
        self,
        base_url: str,
        camera_id: str,
        headers: dict[str, str] | None = None,
        *,
        codecs: list[str] | None = None,
        audio: bool = False,
        trickle: bool = False,
        answer_candidates: bool = True,
    ):
        self.url = f"{base_url}/whep/{camera_id}"
        self.base_url = base_url
        self.headers = headers or {}
        self.trickle = trickle
        self.answer_candidates = answer_candidates
        self.candidates: list[str] = []  # left out of the offer, when trickling
        self.response: aiohttp.ClientResponse | None = None
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if audio:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        video = self.pc.addTransceiver("video", direction="recvonly")
        if codecs is not None:
            capabilities = RTCRtpReceiver.getCapabilities("video").codecs
            video.setCodecPreferences(
                [c for c in capabilities if c.mimeType in codecs or c.mimeType == "video/rtx"]
            )
        self.frames: list[tuple[float, int, int]] = []  # (arrival, width, height)
        self.pts: list[int] = []  # each frame's RTP timestamp (90 kHz, the sender's origin)
        self.keyframes: list[bool] = []  # whether each decoded frame is a keyframe
        self.last_frame = None
        # Called with every decoded frame (av.VideoFrame, yuv420p), e.g. to check pixels.
        self.on_frame: Callable[[Any], None] | None = None
        self.session_url: str | None = None
        self.answer: str | None = None
        # SO_RCVBUF for the ICE sockets, when set before connect(): a browser drains its
        # socket in its own process while the gateway sends, this viewer only between
        # the gateway's steps on the test's one event loop.
        self.receive_buffer_bytes: int | None = None
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
                self.keyframes.append(bool(frame.key_frame))
                self.last_frame = frame
                if self.on_frame is not None:
                    self.on_frame(frame)
        self.closed.set()

    async def connect(self, http: aiohttp.ClientSession) -> aiohttp.ClientResponse:
        """POST the offer; on 201 apply the answer. Returns the response."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        if self.receive_buffer_bytes is not None:
            for transceiver in self.pc.getTransceivers():
                ice = transceiver.receiver.transport.transport
                for protocol in ice._connection._protocols:
                    sock = protocol.transport.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_bytes)
        headers = {"Content-Type": "application/sdp", **self.headers}
        offer = self.pc.localDescription.sdp
        if self.trickle:
            lines = offer.splitlines()
            self.candidates = [line for line in lines if line.startswith("a=candidate:")]
            offer = "\r\n".join(
                line
                for line in lines
                if not line.startswith(("a=candidate:", "a=end-of-candidates"))
            )
            offer += "\r\n"
        self.offer = offer
        response = self.response = await http.post(self.url, data=offer, headers=headers)
        if response.status == 201:
            self.answer = await response.text()
            self.session_url = self.base_url + response.headers["Location"]
            answer = self.answer
            if not self.answer_candidates:  # and no end of them: more may come
                answer = "".join(
                    f"{line}\r\n"
                    for line in answer.splitlines()
                    if not line.startswith(("a=candidate:", "a=end-of-candidates"))
                )
            await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return response

    @property
    def ufrag(self) -> str:
        return next(
            line.split(":", 1)[1]
            for line in self.offer.splitlines()
            if line.startswith("a=ice-ufrag:")
        )

    async def patch(
        self,
        http: aiohttp.ClientSession,
        lines: list[str],
        *,
        ufrag: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """A trickle PATCH (RFC 8840 sdpfrag) with these candidate lines."""
        fragment = "".join(
            f"{line}\r\n"
            for line in [
                f"a=ice-ufrag:{ufrag or self.ufrag}",
                "m=video 9 UDP/TLS/RTP/SAVPF 0",
                "a=mid:0",
                *lines,
            ]
        )
        sent = {"Content-Type": "application/trickle-ice-sdpfrag", **self.headers}
        if headers is not None:
            sent = {"Content-Type": "application/trickle-ice-sdpfrag", **headers}
        assert self.session_url
        return await http.patch(self.session_url, data=fragment, headers=sent)

    async def wait_frames(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until `count` more frames have been decoded."""
        target = len(self.frames) + count
        deadline = time.monotonic() + timeout
        while len(self.frames) < target:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def go_silent(self) -> None:
        """From now on every packet is lost both ways, as for a tablet out of coverage:
        no DTLS close, no DELETE, only ICE consent can tell the gateway.

        The sockets stay open and are muted. Closing them under aioice instead leaves
        asyncio transports whose next sendto() raises AttributeError (an unconnected
        datagram transport after connection_lost, Python 3.11); when that send is
        aiortc's RTCP report, its RTCP task dies without saying it exited, and
        pc.close() then waits for it forever (the soak test's hang in `make test`)."""
        for transceiver in self.pc.getTransceivers():
            ice = transceiver.receiver.transport.transport
            for protocol in ice._connection._protocols:
                protocol.transport.sendto = _lost
                protocol.datagram_received = _lost

    async def close(self, http: aiohttp.ClientSession | None = None) -> None:
        """DELETE the session (with `http`), then close the peer connection; an
        AssertionError if either takes longer than CLOSE_TIMEOUT."""
        async with _bounded(f"DELETE {self.session_url}"):
            if http is not None and self.session_url:
                await http.delete(self.session_url, headers=self.headers)
        async with _bounded("the viewer's RTCPeerConnection.close()"):
            await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()


CLOSE_TIMEOUT = 15.0  # pc.close() takes well under a second, even on a loaded machine


def _lost(*packet: object) -> None:
    """A packet sent or received by a silent viewer: gone."""


@contextlib.asynccontextmanager
async def _bounded(what: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            yield
    except TimeoutError:
        raise AssertionError(f"{what} did not finish within {CLOSE_TIMEOUT:g} s") from None


async def offer_sdp() -> str:
    """A real aiortc offer, for requests that need a valid body but no viewer."""
    viewer = Viewer("http://unused", "x")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    sdp = viewer.pc.localDescription.sdp
    await viewer.pc.close()
    return sdp
