"""RelaySender: aiortc's RTP sender with a lean send path for relayed H.264.

aiortc's `RTCRtpSender._run_rtp` costs about 38 µs per packet per viewer (py-spy at
100 viewers, bench/results.md before this module): it packetizes the frame again
for every viewer, builds an `RtpPacket` with header extensions and reads the NTP
clock per packet, awaits four DTLS/ICE coroutine layers per send, and wakes one
task per viewer per frame. The gateway sends the same frame to hundreds of
viewers, so this path decides the cost per viewer and how late the last viewer
in the fan-out gets each frame.

Here the hub's fan-out loop pushes each frame to the sender (ViewerTrack.attach);
a frame is packetized once for all viewers; each viewer's RTP header (with its
extensions and one clock reading) is built once per frame; each packet is
SRTP-protected by libsrtp in a shared buffer; and the frame leaves through the
viewer's Output (datagrams.py, UDP GSO runs). libsrtp (AES-GCM, ~0.6 µs per
packet) and the kernel's send are most of what is left. ICE, DTLS, RTCP
reports, NACK handling and stats stay aiortc's.

It reaches into aiortc 1.16's private attributes (hence the pin in setup.cfg).
Where they are missing it falls back to aiortc's own loop, and a test checks
`fast_path_available`, so an upgrade that moves them fails loudly.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from typing import NamedTuple

import av
from aioice.ice import CandidatePair
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, wrap_rtx
from aiortc.utils import random32, uint16_add, uint32_add
from pylibsrtp import Error as SrtpError
from pylibsrtp._binding import ffi, lib

from gateway.relay import ViewerTrack

from .datagrams import Output, gso_runs, output_for

_H264 = H264Encoder()  # `pack` keeps no state between frames
_SEQ = struct.Struct("!H")
_TIMESTAMP = struct.Struct("!I")
# NACKs come within a round trip or two; half a second of frames covers that.
HISTORY_FRAMES = 12
# One buffer for every sender: a packet is written, protected and copied out
# before anything else runs on the event loop.
_CDATA = ffi.new("char[]", 1500)
_BUF = ffi.buffer(_CDATA)
_LEN = ffi.new("int *")
_PROTECT = lib.srtp_protect
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    """64-bit NTP time, as aiortc's clock.current_ntp_time() but without datetimes
    (2 % of the gateway's interpreter time at 100 viewers went to those)."""
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
    def pack(cls, packet: av.Packet) -> PackedFrame:
        last = cls._last
        if last is not None and last[0] is packet:
            return last[1]
        payloads, timestamp = _H264.pack(packet)
        sizes = [len(p) for p in payloads]
        packed = PackedFrame(payloads, timestamp, gso_runs(sizes), sum(sizes))
        cls._last = (packet, packed)
        return packed


class RelaySender(RTCRtpSender):
    """Set as the class of a viewer's H.264 sender (see ViewerSession.negotiate)."""

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        track = self.track
        if (
            not isinstance(track, ViewerTrack)
            or codec.mimeType.lower() != "video/h264"
            or not fast_path_available(self)
        ):
            await super()._run_rtp(codec)  # aiortc's own loop, slower but correct
            return
        self._RTCRtpSender__rtp_started.set()
        self._payload_type = codec.payloadType
        self._prepare_header()
        # (first sequence number, timestamp, payloads) of recent frames, for NACKs.
        self._sent: deque[tuple[int, int, list[bytes]]] = deque(maxlen=HISTORY_FRAMES)
        self._sequence_number = random_sequence_number()
        self._timestamp_origin = random32()
        self._behind = False
        self._output: Output | None = None
        self._pair: CandidatePair | None = None  # the ICE pair self._output sends on
        self._remote_addr: tuple[str, int] | None = None
        try:
            track.attach(self._send_packet)  # the hub's fan-out loop calls it
            await track.wait_ended()
        except asyncio.CancelledError:
            pass
        track.stop()
        if self._output is not None:
            self._output.close()
        self._RTCRtpSender__rtp_exited.set()

    def _send_packet(self, packet: av.Packet) -> bool:
        """Send one frame; False if this viewer skipped it (counted as dropped)."""
        dtls = self.transport
        if dtls._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        out = self._output
        if pair is not self._pair:  # the first frame, or ICE chose another pair
            if out is not None:
                out.close()
            out = self._output = output_for(pair.protocol)
            self._pair, self._remote_addr = pair, pair.remote_addr
        if self._behind:  # frames were skipped: go on only from a keyframe
            if not packet.is_keyframe:
                return False
            self._behind = False
        frame = FramePacker.pack(packet)
        if frame.payloads and self._enabled:
            datagrams = self._protect(dtls, frame)
            if not out.send(datagrams, frame.runs, self._remote_addr):
                self._behind = True  # its socket is full: nothing waits, the frame is lost
                return False
        return True

    def _protect(self, dtls: RTCDtlsTransport, frame: PackedFrame) -> list[bytes]:
        """The frame's SRTP packets, numbered on from the previous frame."""
        payloads = frame.payloads
        timestamp = uint32_add(self._timestamp_origin, frame.timestamp)
        srtp = dtls._tx_srtp._srtp[0]
        buf, lenp, cdata, protect, pack_seq = _BUF, _LEN, _CDATA, _PROTECT, _SEQ.pack_into
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

        # What aiortc's loop records per packet, recorded per frame: RTCP sender
        # reports and getStats() read these.
        self._RTCRtpSender__ntp_timestamp = ntp
        self._RTCRtpSender__rtp_timestamp = timestamp
        self._RTCRtpSender__octet_count += frame.octets
        self._RTCRtpSender__packet_count += len(payloads)
        dtls._RTCDtlsTransport__tx_bytes += sum(map(len, datagrams))
        dtls._RTCDtlsTransport__tx_packets += len(payloads)
        return datagrams

    def _prepare_header(self) -> None:
        """This viewer's RTP header template, and where abs-send-time sits in it."""
        header = self._packet(0, 0, 0).serialize(self._extensions_map)
        other = self._packet(0, 0, 0xFFFFFF << 14).serialize(self._extensions_map)
        differ = [i for i, (a, b) in enumerate(zip(header, other, strict=True)) if a != b]
        self._header = header
        self._abs_send_time_at = differ[0] if differ else None
        self._marked = bytes([header[1] | 0x80])

    @property
    def _extensions_map(self) -> HeaderExtensionsMap:
        return self._RTCRtpSender__rtp_header_extensions_map

    def _packet(self, sequence_number: int, timestamp: int, ntp: int) -> RtpPacket:
        """A packet with the header extensions aiortc would write (mid, abs-send-time)."""
        packet = RtpPacket(
            payload_type=self._payload_type,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=self._ssrc,
        )
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        packet.extensions.mid = self._RTCRtpSender__mid
        return packet

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from this sender's history, over RTX when negotiated."""
        if not hasattr(self, "_sent"):  # not the fast path: aiortc's own history
            await super()._retransmit(sequence_number)
            return
        for frame in reversed(self._sent):
            index = (sequence_number - frame[0]) & 0xFFFF
            if index < len(frame[2]):
                break
        else:
            return  # too old: the viewer will recover at the next keyframe
        _, timestamp, payloads = frame
        packet = self._packet(sequence_number, timestamp, ntp_now())
        packet.payload = payloads[index]
        packet.marker = int(index == len(payloads) - 1)
        rtx_payload_type = self._RTCRtpSender__rtx_payload_type
        if rtx_payload_type is not None:
            packet = wrap_rtx(
                packet,
                payload_type=rtx_payload_type,
                sequence_number=self._RTCRtpSender__rtx_sequence_number,
                ssrc=self._rtx_ssrc,
            )
            self._RTCRtpSender__rtx_sequence_number = uint16_add(
                self._RTCRtpSender__rtx_sequence_number, 1
            )
        await self.transport._send_rtp(packet.serialize(self._extensions_map))


def fast_path_available(sender: RTCRtpSender) -> bool:
    """The aiortc internals RelaySender relies on are where it expects them."""
    names = (
        "_RTCRtpSender__rtp_started",
        "_RTCRtpSender__rtp_exited",
        "_RTCRtpSender__mid",
        "_RTCRtpSender__rtp_header_extensions_map",
        "_RTCRtpSender__rtx_payload_type",
        "_RTCRtpSender__rtx_sequence_number",
        "_RTCRtpSender__octet_count",
        "_RTCRtpSender__packet_count",
    )
    dtls = sender.transport
    return all(hasattr(sender, n) for n in names) and all(
        hasattr(dtls, n) for n in ("_state", "_tx_srtp", "_RTCDtlsTransport__tx_bytes")
    )
