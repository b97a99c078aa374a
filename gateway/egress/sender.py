"""RelaySender: aiortc's RTP sender with a lean send path for relayed H.264.

aiortc's `RTCRtpSender._run_rtp` packetizes the frame again for every viewer,
builds an `RtpPacket` with header extensions and reads the NTP clock per packet,
awaits four DTLS/ICE coroutine layers per send, and wakes one task per viewer per
frame. The gateway sends the same frame to hundreds of viewers, so this path
decides the cost per viewer and how late the last viewer in the fan-out gets each
frame (bench/results.md has the profiles).

Here the hub's fan-out (relay.fan_out) pushes each frame to the sender
(ViewerFeed.attach); a frame is packetized once for all viewers, and laid out
once per header size; each viewer's RTP header is written once per frame; and
the frame goes out in rounds, each viewer in turn (ROUND_PACKETS): a round's
packets are written into one shared buffer with one struct call, protected there
by libsrtp (a C-level map, one call a packet) and leave from that buffer through
the viewer's Output (datagrams.py, a UDP GSO send per run). ICE, DTLS, RTCP
reports, NACK handling and stats stay aiortc's.

libsrtp releases the GIL for each packet, but a packet takes ~1 µs: a second
thread protecting other viewers' packets made the pair slower than one thread
(docs/performance-send-path.md), so protection stays on the event loop.

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

from gateway.relay import Replayed, ViewerFeed

from . import compat
from .compat import SEND_VIEW, SenderInternals, protect_many, send_buffer_slots
from .datagrams import Output, gso_runs, output_for
from .track import ViewerTrack

# What `_send_frame` gives the feed: done at once, or the step that sends a round.
FrameSend = bool | Callable[[], bool | None]

log = logging.getLogger(__name__)

# Packetizers by codec. H.264's `pack` keeps no state between frames; VP8's numbers the
# frames (PictureID): once per frame, for every viewer of a shared VP8 encode.
PACKERS = {"video/h264": H264Encoder(), "video/vp8": Vp8Encoder()}
_TIMESTAMP = struct.Struct("!I")
# A frame leaves in rounds: each viewer in turn gets the frame's first GSO run (for a
# camera's frame, the packet of its AUD, SPS, PPS or SEI), then the rest of it, up to
# this many packets a round. So no viewer's first packet waits behind the whole
# frame of every viewer before it (a keyframe is ~60 packets, 200 viewers 12,000).
# Smaller rounds after the first would not bring the last viewer's frame any sooner
# (the fan-out ends when every viewer has all of it) but would delay everyone else's
# last packet, and cost a few calls each (docs/performance-send-path.md).
ROUND_PACKETS = compat.SEND_PACKETS_MAX
# NACKs come within a round trip or two; half a second of frames covers that. A
# viewer's history also holds its whole catch-up (ViewerFeed.start), whose NACKs
# come only after all of it has been sent.
HISTORY_FRAMES = 12
VIDEO_CLOCK_RATE = 90_000
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    """64-bit NTP time, as aiortc's clock.current_ntp_time() but without its
    datetime round trip, which showed in the fan-out's profile."""
    return int((time.time() + NTP_UNIX_OFFSET) * (1 << 32))


class Round(NamedTuple):
    """One round of a frame, laid out for viewers with a given header and SRTP tag size.

    The round's packets lie end to end in compat.SEND_BUFFER, each with room for
    its tag; `shape` writes them all (header fields and payload) in one call.
    """

    start: int  # the frame's payloads [start, end)
    end: int
    shape: struct.Struct  # per packet: first two header bytes, sequence number, rest, payload
    slots: list[object]  # where each packet starts in SEND_BUFFER
    lengths: list[int]  # each packet's length before SRTP
    protected_last: int  # the last packet's length after SRTP
    sends: list[tuple[int, int, int]]  # GSO runs: (offset, bytes, segment size)


class PackedFrame:
    """A frame packetized once for every viewer, and its rounds for each header layout."""

    __slots__ = ("_layouts", "octets", "payloads", "rounds")

    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads
        self.octets = sum(map(len, payloads))  # payload bytes, for the sender reports
        self.rounds = frame_rounds([len(p) for p in payloads])  # [(start, end, runs)]
        self._layouts: dict[tuple[int, int], tuple[list[Round], int]] = {}

    def layout(self, header_bytes: int, tag_bytes: int) -> tuple[list[Round], int]:
        """The rounds for this header and tag size, and the frame's bytes on the wire;
        worked out once per frame for all viewers that share them."""
        key = (header_bytes, tag_bytes)
        found = self._layouts.get(key)
        if found is None:
            rounds = [
                _round(self.payloads, start, end, runs, header_bytes, tag_bytes)
                for start, end, runs in self.rounds
            ]
            wire = self.octets + len(self.payloads) * (header_bytes + tag_bytes)
            found = self._layouts[key] = (rounds, wire)
        return found


def frame_rounds(sizes: list[int]) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """The frame's rounds: its first GSO run alone, then up to ROUND_PACKETS packets
    each, cut at runs. Each is (start, end, runs)."""
    runs = gso_runs(sizes)  # at most MAX_RUN_SEGMENTS (64) each, as a round
    rounds = [(runs[0][0], runs[0][1], [runs[0]])] if runs else []
    for run in runs[1:]:
        start, _, members = rounds[-1]
        if len(rounds) > 1 and run[1] - start <= ROUND_PACKETS:
            rounds[-1] = (start, run[1], [*members, run])
        else:
            rounds.append((run[0], run[1], [run]))
    return rounds


def _round(
    payloads: list[bytes],
    start: int,
    end: int,
    runs: list[tuple[int, int]],
    header_bytes: int,
    tag_bytes: int,
) -> Round:
    sizes = [len(p) for p in payloads[start:end]]
    packet = f"2sH{header_bytes - 4}s{{}}s{tag_bytes}x"  # the tag's room is zeroed
    shape = struct.Struct("!" + "".join(packet.format(size) for size in sizes))
    lengths = [header_bytes + size for size in sizes]
    offsets, sends, offset = [], [], 0
    for i, j in runs:
        run_offset = offset
        for length in lengths[i - start : j - start]:
            offsets.append(offset)
            offset += length + tag_bytes
        sends.append((run_offset, offset - run_offset, lengths[i - start] + tag_bytes))
    return Round(
        start, end, shape, send_buffer_slots(offsets), lengths, lengths[-1] + tag_bytes, sends
    )


class FramePacker:
    """Packetize each frame once; every viewer gets the same payloads.

    The hub hands one shared av.Packet to all of a camera's viewers, one after the
    other, and its packetization is kept on it (`opaque`) while the hub keeps the
    frame. A viewer's GOP replay is a copy of those frames with its own timestamps,
    each pointing at its original (relay.Replayed): viewers joining together
    share one packetization of the GOP instead of holding one each in their NACK
    history (0.16 MB a viewer at 50, bench/results.md).
    """

    _last: tuple[av.Packet, PackedFrame, int] | None = None

    @classmethod
    def pack(cls, packet: av.Packet, mime: str = "video/h264") -> tuple[PackedFrame, int]:
        """The frame's payloads and rounds, and its 90 kHz timestamp."""
        last = cls._last
        if last is not None and last[0] is packet:
            return last[1], last[2]
        replayed = packet.opaque
        source = replayed.frame if isinstance(replayed, Replayed) else packet
        packed = source.opaque
        if not isinstance(packed, PackedFrame):
            packed = source.opaque = PackedFrame(PACKERS[mime].pack(source)[0])
        timestamp = int(packet.pts * packet.time_base * VIDEO_CLOCK_RATE)
        cls._last = (packet, packed, timestamp)
        return packed, timestamp


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
            # aiortc's stop() waits for the loop to have started and exited: however
            # it ended (an exception too), it has, or closing the connection hangs.
            internals = SenderInternals(self)
            internals.mark_started()
            internals.mark_exited()
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
        self._tag_bytes = compat.SRTP_TAG_MAX  # what SRTP adds; set at the first frame
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
        self._sending = None
        del self._sent  # NACKs are answered from aiortc's own history from now on
        if failed:
            log.warning(
                "fast send path failed for a viewer of camera %s; aiortc's sender takes over",
                feed.camera_id,
                extra={"camera_id": feed.camera_id},
            )
            return True
        track.stop()
        return False

    def _send_frame(self, packet: av.Packet) -> FrameSend:
        """Begin one frame. Returns the step that sends its next round (see ViewerFeed's
        fan-out), or True at once when there is nothing to send."""
        internals = self._internals
        srtp = internals.srtp()
        pair = internals.nominated_pair()
        out = self._output
        if pair is not self._pair:  # the first frame, or ICE chose another pair
            if out is not None:
                out.close()
            out = self._output = output_for(pair.protocol)
            self._pair, self._remote_addr = pair, pair.remote_addr
            self._tag_bytes = internals.srtp_tag_bytes()
        frame, timestamp = FramePacker.pack(packet, self._mime)
        payloads = frame.payloads
        if not payloads or not internals.enabled:
            return True
        rounds, wire_bytes = frame.layout(len(self._header), self._tag_bytes)
        timestamp = uint32_add(self._timestamp_origin, timestamp)
        # SRTP leaves the header in the clear. It is the same for the whole frame but
        # for the sequence number and the last packet's marker: each round's `shape`
        # puts its first two bytes (self._head) and the rest around the number.
        ntp = ntp_now()
        rest = bytearray(self._rest)
        _TIMESTAMP.pack_into(rest, 0, timestamp)
        if self._abs_send_time_at is not None:
            at = self._abs_send_time_at
            rest[at : at + 3] = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        first = self._sequence_number
        self._sequence_number = (first + len(payloads)) & 0xFFFF
        self._sending = (payloads, rounds, srtp, out, first, rest)
        self._round = 0
        self._sent.append((first, timestamp, payloads))
        internals.record_sent(ntp, timestamp, frame.octets, len(payloads), wire_bytes)
        return self._send_round

    def _send_round(self) -> bool | None:
        """Build, protect and send the frame's next round; None while rounds remain,
        then True, or False if the viewer's socket could not take one (the rest of
        the frame is lost with it)."""
        payloads, rounds, srtp, out, first, rest = self._sending
        k = self._round
        start, end, shape, slots, lengths, protected_last, sends = rounds[k]
        count = end - start
        number = first + start
        args = [self._head, 0, rest, b""] * count
        if number + count <= 0x10000:
            args[1::4] = range(number, number + count)
        else:  # the sequence number wraps in this round
            args[1::4] = [n & 0xFFFF for n in range(number, number + count)]
        args[3::4] = payloads[start:end]
        last = k + 1 == len(rounds)
        if last:
            args[-4] = self._head_marked  # the marker: the frame's last packet
        shape.pack_into(SEND_VIEW, 0, *args)
        if protect_many(srtp, slots, lengths) != protected_last:
            raise RuntimeError("SRTP added a tag of another size than the profile's")
        addr = self._remote_addr
        for offset, size, segment in sends:
            if not out.send(SEND_VIEW[offset : offset + size], segment, addr):
                return False  # its socket is full: nothing waits, the frame is lost
        self._round = k + 1
        return True if last else None

    def _prepare_header(self) -> None:
        """This viewer's RTP header template, and where abs-send-time sits in it."""
        extensions = self._internals.extensions_map
        header = self._packet(0, 0, 0).serialize(extensions)
        other = self._packet(0, 0, 0xFFFFFF << 14).serialize(extensions)
        differ = [i for i, (a, b) in enumerate(zip(header, other, strict=True)) if a != b]
        self._header = header
        # Around the sequence number: the first two bytes, and the rest from the
        # timestamp on (where abs-send-time sits, if negotiated).
        self._head, self._rest = header[0:2], header[4:]
        self._head_marked = bytes([header[0], header[1] | 0x80])
        self._abs_send_time_at = differ[0] - 4 if differ else None

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
