"""What an aiortc viewer's network delivered: every RTP packet, before any repair."""

from __future__ import annotations

import hashlib
import re

from aiortc.codecs.h264 import H264PayloadDescriptor
from aiortc.rtp import RtpPacket, unwrap_rtx

from gateway.relay import h264

from .viewer import Viewer


class RtpRecorder:
    """Records the RTP packets a Viewer's receiver gets, as they arrive.

    Install it before `connect`: the first packets are the GOP replay, and the
    point of recording is to see whether any of them was lost on the way.
    """

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.media: list[RtpPacket] = []  # in arrival order, as the network gave them
        self.repairs: list[RtpPacket] = []  # RTX retransmissions, unwrapped
        receiver = viewer.pc.getReceivers()[0]
        deliver = receiver._handle_rtp_packet
        self._types: tuple[int, int | None] | None = None

        async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
            media, rtx = self._payload_types()
            if packet.payload_type == media:
                self.media.append(packet)
            elif packet.payload_type == rtx:
                self.repairs.append(unwrap_rtx(packet, media, packet.ssrc))
            await deliver(packet, arrival_time_ms)

        receiver._handle_rtp_packet = record

    def _payload_types(self) -> tuple[int, int | None]:
        if self._types is None:
            answer = self.viewer.answer or ""
            media = re.search(r"a=rtpmap:(\d+) H264/90000", answer)
            rtx = re.search(r"a=rtpmap:(\d+) rtx/90000", answer)
            assert media, answer
            self._types = (int(media.group(1)), int(rtx.group(1)) if rtx else None)
        return self._types

    def lost(self) -> int:
        """Sequence numbers missing between the first and the last packet received."""
        if not self.media:
            return 0
        first = self.media[0].sequence_number
        seen = {(p.sequence_number - first) & 0xFFFF for p in self.media}
        return max(seen) + 1 - len(seen)

    def access_units(self) -> list[list[bytes]]:
        """The complete access units received, each as its NAL units, in order.

        Packets are put back in sequence order (retransmissions fill the gaps) and
        depacketized as RFC 6184 says; an access unit with a hole is left out.
        """
        by_number: dict[int, RtpPacket] = {}
        first = self.media[0].sequence_number if self.media else 0
        for packet in self.media + self.repairs:
            by_number.setdefault((packet.sequence_number - first) & 0xFFFF, packet)
        units: list[list[bytes]] = []
        data, timestamp, complete, expected = b"", None, True, None
        for index in sorted(by_number):
            packet = by_number[index]
            if packet.timestamp != timestamp:
                data, timestamp, complete = b"", packet.timestamp, True
            if expected is not None and index != expected:
                complete = False
            expected = index + 1
            data += H264PayloadDescriptor.parse(packet.payload)[1]
            if packet.marker:
                if complete:
                    units.append(nal_units(data))
                data, timestamp = b"", None
        return units


def nal_units(access_unit: bytes) -> list[bytes]:
    """An Annex-B access unit as its NAL units, whatever the start codes' length."""
    return [unit.rstrip(b"\x00") for unit in h264.split_nal_units(access_unit)]


def digest(units: list[bytes]) -> str:
    """A short name for an access unit's bytes, so that lists of them compare readably."""
    return hashlib.sha256(b"\x00\x00\x01".join(units)).hexdigest()[:12]
