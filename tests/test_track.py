"""ViewerTrack in push mode (how RelaySender takes frames from the hub)."""

from __future__ import annotations

import av

from gateway.relay import ViewerTrack


def frame(keyframe: bool) -> av.Packet:
    packet = av.Packet(b"\x00\x00\x00\x01\x65" + bytes(100))
    packet.is_keyframe = keyframe
    return packet


async def test_pushed_frames_count_as_sent_or_dropped_by_what_the_sink_says():
    track = ViewerTrack("cam", max_frames=10)
    verdicts = iter([True, False, True])
    got: list[av.Packet] = []

    def sink(packet: av.Packet) -> bool:
        got.append(packet)
        return next(verdicts)

    track.attach(sink)
    track.offer(frame(keyframe=False))  # before any keyframe: never reaches the sink
    for keyframe in (True, False, False):
        track.offer(frame(keyframe))
    assert len(got) == 3
    assert (track.frames_sent, track.frames_dropped) == (2, 2)
    assert track.bytes_sent == 2 * 105


async def test_a_sink_that_lost_its_connection_ends_the_track():
    track = ViewerTrack("cam", max_frames=10)

    def sink(packet: av.Packet) -> bool:
        raise ConnectionError("Cannot send encrypted RTP, not connected")

    track.attach(sink)
    track.offer(frame(keyframe=True))
    assert track.readyState == "ended"
    await track.wait_ended()  # RelaySender's loop returns
    track.offer(frame(keyframe=True))  # the hub may still offer: ignored
    assert track.frames_sent == 0
