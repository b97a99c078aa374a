"""H.264 bitstream facts the relay decides on, checked against real libx264 output."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from gateway.relay import h264


def encoded(bframes: int, frames: int = 30) -> list[av.Packet]:
    """A short libx264 stream of a moving picture, in decode order."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 25), 25
    encoder.max_b_frames = bframes
    encoder.options = {"preset": "ultrafast", "x264-params": f"bframes={bframes}:b-adapt=0"}
    source = av.open("testsrc=size=160x120:rate=25", format="lavfi")
    packets = []
    for i, frame in enumerate(source.decode(video=0)):
        if i == frames:
            break
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.NONE  # or every frame is an IDR
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    source.close()
    return packets


def test_b_slices_are_found_in_a_stream_with_b_frames():
    found = [h264.has_b_slices(bytes(p)) for p in encoded(bframes=2)]
    assert any(found)
    # Decode order I P B B P B B ...: never the keyframe, and about two frames in three.
    assert not found[0]
    assert 15 <= sum(found) <= 20, found


def test_a_stream_without_b_frames_has_no_b_slices():
    assert not any(h264.has_b_slices(bytes(p)) for p in encoded(bframes=0))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # first_mb_in_slice 0 ("1"), slice_type 5 ("00110"): a P slice
        (bytes([0x41, 0b10011000]), 5),
        # first_mb_in_slice 3 ("00100"), slice_type 6 ("00111"): a B slice
        (bytes([0x01, 0b00100001, 0b11000000]), 6),
        # first_mb_in_slice 2^23 - 1 (23 zeros, "1", 23 zeros), slice_type 1 ("010"):
        # the RBSP 00 00 01 00 00 00 80 is sent with two emulation prevention bytes.
        (bytes([0x01, 0, 0, 3, 1, 0, 0, 3, 0, 0x80]), 1),
    ],
)
def test_slice_type_is_read_from_the_slice_header(header, expected):
    assert h264.slice_type(header) == expected


def test_a_damaged_slice_header_is_no_b_slice():
    with pytest.raises(ValueError):
        h264.slice_type(bytes([0x01, 0, 0]))  # no 1 bit where first_mb_in_slice starts
    assert not h264.has_b_slices(b"\x00\x00\x00\x01\x41\x00\x00\x00\x01\x01")
