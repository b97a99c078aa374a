"""RelaySender: aiortc's RTP sender with a lean send path for relayed H.264.

aiortc's `RTCRtpSender._run_rtp` packetizes the frame again for every viewer,
builds an `RtpPacket` with header extensions and reads the NTP clock per packet,
awaits four DTLS/ICE coroutine layers per send, and wakes one task per viewer per
frame. The gateway sends the same frame to hundreds of viewers, so this path
decides the cost per viewer and how late the last viewer in the fan-out gets each
frame (bench/results.md has the profiles).

Here the hub's fan-out loop pushes each frame to the sender (ViewerFeed.attach);
a frame is packetized once for all viewers; each viewer's RTP header (with its
extensions and one clock reading) is built once per frame; each packet is
SRTP-protected by libsrtp in a shared buffer; and the frame leaves through the
viewer's Output (datagrams.py, UDP GSO runs). ICE, DTLS, RTCP reports, NACK
handling and stats stay aiortc's.

The aiortc, aioice and pylibsrtp internals it needs are reached through
compat.py, which checks them all when the gateway starts.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import av
from aioice.ice import CandidatePair
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket, wrap_rtx
from aiortc.utils import uint32_add
from pylibsrtp import Error as SrtpError

from gateway.relay import ViewerFeed

from . import compat
from .compat import SRTP_BUFFER, SRTP_CDATA, SRTP_LENGTH, SenderInternals
from .datagrams import Output, gso_runs, output_for
from .track import ViewerTrack

log = logging.getLogger(__name__)

# Packetizers by codec. H.264's `pack` keeps no state between frames; VP8's numbers the
# frames (PictureID): once per frame, for every viewer of a shared VP8 encode.
PACKERS = {"video/h264": H264Encoder(), "video/vp8": Vp8Encoder()}
_SEQ = struct.Struct("!H")
_TIMESTAMP = struct.Struct("!I")
# NACKs come within a round trip or two; half a second of frames covers that. A
# viewer's history also holds its whole catch-up (ViewerFeed.start), whose NACKs
# come only after all of it has been sent.
HISTORY_FRAMES = 12
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    """64-bit NTP time, as aiortc's clock.current_ntp_time() but without its
    datetime round trip, which showed in the fan-out's profile."""
    return int((time.time() + NTP_UNIX_OFFSET) * (1 << 32))


class PackedFrame(NamedTuple):
    payloads: list[bytes]
    timestamp: int  # 90 kHz, before a viewer's random origin
    runs: list[tuple[int, int]]  # which payloads can leave in one GSO send
    octets: int  # payload bytes, for the sender reports


class FramePacker:
    """Packetize the frame being fanned out once; every viewer gets the same payloads.

    The hub hands one shared av.Packet to all of a camera's viewers, one after the
    other, so a one-entry cache keyed by identity is enough.
    """

    _last: tuple[av.Packet, PackedFrame] | None = None

    @classmethod
    def pack(cls, packet: av.Packet, mime: str = "video/h264") -> PackedFrame:
        last = cls._last
        if last is not None and last[0] is packet:
            return last[1]
        payloads, timestamp = PACKERS[mime].pack(packet)
        sizes = [len(p) for p in payloads]
        packed = PackedFrame(payloads, timestamp, gso_runs(sizes), sum(sizes))
        cls._last = (packet, packed)
        return packed


def send_feed(
    pc: RTCPeerConnection, feed: ViewerFeed, *, fast: bool, on_stopped: Callable[[], None]
) -> RTCRtpTransceiver:
    """A send-only video transceiver on `pc` that sends `feed` with a RelaySender."""
    transceiver = pc.addTransceiver(ViewerTrack(feed), direction="sendonly")
    sender = transceiver.sender
    compat.send_with(sender, RelaySender)
    assert isinstance(sender, RelaySender)
    sender.fast = fast
    sender.on_stopped = on_stopped
    return transceiver


class RelaySender(compat.HookedSender):
    """The class of every viewer's sender (send_feed).

    H.264 and VP8 from a ViewerTrack go out on the fast path when `fast` is set;
    anything else, or the fast path failing at run time, goes through aiortc's own loop,
    which pulls the same feed (ViewerTrack.recv). Whenever media stops for good
    while the session lives, `on_stopped` is told, so the session can end instead
    of leaving a live connection with no picture.
    """

    fast = True
    on_stopped: Callable[[], None] | None = None

    async def run_media(self, codec: RTCRtpCodecParameters) -> None:
        track = self.track
        try:
            if not (
                self.fast and isinstance(track, ViewerTrack) and codec.mimeType.lower() in PACKERS
            ):
                await super().run_media(codec)  # aiortc's own loop, slower but correct
            elif await self._run_fast(track, codec):  # it failed: aiortc's loop goes on
                await self.run_aiortc_media_from(
                    codec, self._sequence_number, self._timestamp_origin
                )
        finally:
            if self.on_stopped is not None:
                self.on_stopped()

    async def _run_fast(self, track: ViewerTrack, codec: RTCRtpCodecParameters) -> bool:
        """Send until the feed ends; True if the fast path failed and aiortc's loop
        must take over."""
        internals = self._internals = SenderInternals(self)
        internals.mark_started()
        self._payload_type = codec.payloadType
        self._mime = codec.mimeType.lower()
        self._prepare_header()
        replay = track.feed.start()
        # (first sequence number, timestamp, payloads) of recent frames, for NACKs.
        self._sent: deque[tuple[int, int, list[bytes]]] = deque(maxlen=HISTORY_FRAMES + replay)
        self._sequence_number = compat.random_sequence_number()
        self._timestamp_origin = compat.random32()
        self._output: Output | None = None
        self._pair: CandidatePair | None = None  # the ICE pair self._output sends on
        self._remote_addr: tuple[str, int] | None = None
        feed = track.feed
        cancelled = False
        try:
            feed.attach(self._send_frame)  # the hub's fan-out loop calls it
            await feed.wait_detached()
        except asyncio.CancelledError:  # the sender stops: the session is closing
            cancelled = True
        failed = feed.live and not cancelled  # detached, not ended: _send_frame raised
        if self._output is not None:
            self._output.close()
            self._output = None
        # Internals point back at this sender: drop that cycle and the frame history
        # now, or each ended viewer's last frames wait for the cyclic collector.
        self._internals = None
        del self._sent  # NACKs are answered from aiortc's own history from now on
        if failed:
            log.warning(
                "fast send path failed for a viewer of camera %s; aiortc's sender takes over",
                feed.camera_id,
                extra={"camera_id": feed.camera_id},
            )
            return True
        track.stop()
        internals.mark_exited()
        return False

    def _send_frame(self, packet: av.Packet) -> bool:
        """Send one frame; False if this viewer's socket could not take it."""
        internals = self._internals
        srtp = internals.srtp()
        pair = internals.nominated_pair()
        out = self._output
        if pair is not self._pair:  # the first frame, or ICE chose another pair
            if out is not None:
                out.close()
            out = self._output = output_for(pair.protocol)
            self._pair, self._remote_addr = pair, pair.remote_addr
        frame = FramePacker.pack(packet, self._mime)
        if frame.payloads and internals.enabled:
            datagrams = self._protect(srtp, frame)
            if not out.send(datagrams, frame.runs, self._remote_addr):
                return False  # its socket is full: nothing waits, the frame is lost
        return True

    def _protect(self, srtp: object, frame: PackedFrame) -> list[bytes]:
        """The frame's SRTP packets, numbered on from the previous frame."""
        payloads = frame.payloads
        timestamp = uint32_add(self._timestamp_origin, frame.timestamp)
        buf, lenp, cdata, protect = SRTP_BUFFER, SRTP_LENGTH, SRTP_CDATA, compat.srtp_protect
        pack_seq = _SEQ.pack_into
        # SRTP leaves the header in the clear, so it is written once per frame; per
        # packet only the sequence number (and the last one's marker) changes.
        ntp = ntp_now()
        header = self._header
        size = len(header)
        buf[0:size] = header
        _TIMESTAMP.pack_into(buf, 4, timestamp)
        if self._abs_send_time_at:
            at = self._abs_send_time_at
            buf[at : at + 3] = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        sequence_number = first = self._sequence_number
        last, datagrams = len(payloads) - 1, []
        for i, payload in enumerate(payloads):
            if i == last:
                buf[1:2] = self._marked
            pack_seq(buf, 2, sequence_number)
            end = size + len(payload)
            buf[size:end] = payload
            lenp[0] = end
            if protect(srtp, cdata, lenp):
                raise SrtpError("srtp_protect failed")
            datagrams.append(buf[0 : lenp[0]])
            sequence_number = (sequence_number + 1) & 0xFFFF
        self._sequence_number = sequence_number
        self._sent.append((first, timestamp, payloads))
        self._internals.record_sent(
            ntp, timestamp, frame.octets, len(payloads), sum(map(len, datagrams))
        )
        return datagrams

    def _prepare_header(self) -> None:
        """This viewer's RTP header template, and where abs-send-time sits in it."""
        extensions = self._internals.extensions_map
        header = self._packet(0, 0, 0).serialize(extensions)
        other = self._packet(0, 0, 0xFFFFFF << 14).serialize(extensions)
        differ = [i for i, (a, b) in enumerate(zip(header, other, strict=True)) if a != b]
        self._header = header
        self._abs_send_time_at = differ[0] if differ else None
        self._marked = bytes([header[1] | 0x80])

    def _packet(self, sequence_number: int, timestamp: int, ntp: int) -> RtpPacket:
        """A packet with the header extensions aiortc would write (mid, abs-send-time)."""
        packet = RtpPacket(
            payload_type=self._payload_type,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=self._internals.ssrc,
        )
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        packet.extensions.mid = self._internals.mid
        return packet

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from this sender's history, over RTX when negotiated."""
        if not hasattr(self, "_sent"):  # not (or no longer) the fast path: aiortc's history
            await super().retransmit(sequence_number)
            return
        for frame in reversed(self._sent):
            index = (sequence_number - frame[0]) & 0xFFFF
            if index < len(frame[2]):
                break
        else:
            return  # too old: the viewer will recover at the next keyframe
        _, timestamp, payloads = frame
        internals = self._internals
        if internals is None:  # the viewer has gone
            return
        packet = self._packet(sequence_number, timestamp, ntp_now())
        packet.payload = payloads[index]
        packet.marker = int(index == len(payloads) - 1)
        rtx_payload_type = internals.rtx_payload_type
        if rtx_payload_type is not None:
            packet = wrap_rtx(
                packet,
                payload_type=rtx_payload_type,
                sequence_number=internals.next_rtx_sequence_number(),
                ssrc=internals.rtx_ssrc,
            )
        await internals.send_rtp(packet.serialize(internals.extensions_map))
