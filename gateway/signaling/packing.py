"""Packetize each camera frame once for all of its viewers.

aiortc gives every viewer's sender its own H264Encoder, whose `pack` splits and
packetizes the same frame again for each viewer: 6-11 % of the gateway's CPU
at 100 viewers (bench/results.md). Packing a frame depends on nothing but the
frame, and the hub hands one shared av.Packet to every viewer, so the payloads
of the frame being fanned out are computed once and shared.
"""

from __future__ import annotations

import av
from aiortc import rtcrtpsender
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters


class SharedH264Packer(H264Encoder):
    _last: tuple[av.Packet, tuple[list[bytes], int]] | None = None

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        last = SharedH264Packer._last
        if last is not None and last[0] is packet:
            return last[1]
        packed = super().pack(packet)
        SharedH264Packer._last = (packet, packed)
        return packed


def _encoder_for(codec: RTCRtpCodecParameters) -> Encoder:
    if codec.mimeType.lower() == "video/h264":
        return SharedH264Packer()
    return get_encoder(codec)


rtcrtpsender.get_encoder = _encoder_for  # type: ignore[attr-defined]
