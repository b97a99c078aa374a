"""ViewerFeed in push mode (how RelaySender takes frames from the hub)."""

from __future__ import annotations

import av

from gateway.relay import ViewerFeed


def frame(keyframe: bool) -> av.Packet:
    packet = av.Packet(b"\x00\x00\x00\x01\x65" + bytes(100))
    packet.is_keyframe = keyframe
    return packet


async def test_a_skipped_frame_makes_the_feed_wait_for_the_next_keyframe():
    feed = ViewerFeed("cam", max_frames=10)
    verdicts = iter([True, False, True])
    got: list[av.Packet] = []

    def sink(packet: av.Packet) -> bool:
        got.append(packet)
        return next(verdicts)

    feed.attach(sink)
    feed.offer(frame(keyframe=False))  # before any keyframe: never reaches the sink
    for keyframe in (True, False, False, True):
        feed.offer(frame(keyframe))
    # The sink skipped the first delta frame, so the second never reached it: its
    # references are gone. The next keyframe did.
    assert [p.is_keyframe for p in got] == [True, False, True]
    # Dropped: the two it fell behind on; the one before its first keyframe is not.
    assert (feed.frames_sent, feed.frames_dropped) == (2, 2)
    assert feed.bytes_sent == 2 * 105


async def test_waiting_for_a_first_keyframe_is_not_falling_behind():
    """cctv_frames_dropped_slow_viewer counts viewers that fell behind; a viewer that
    joins mid-GOP with nothing to replay, or whose camera reconnected, did not."""
    feed = ViewerFeed("cam", max_frames=10)
    feed.attach(lambda packet: True)
    for keyframe in (False, False, True, False):  # joined mid-GOP, then its keyframe
        feed.offer(frame(keyframe))
    feed.resync()  # the camera reconnected: the next frame it gets is a keyframe
    for keyframe in (False, True, False):
        feed.offer(frame(keyframe))
    assert (feed.frames_sent, feed.frames_dropped) == (4, 0)


async def test_a_sink_that_lost_its_connection_ends_the_feed():
    feed = ViewerFeed("cam", max_frames=10)

    def sink(packet: av.Packet) -> bool:
        raise ConnectionError("Cannot send encrypted RTP, not connected")

    feed.attach(sink)
    feed.offer(frame(keyframe=True))
    assert not feed.live
    await feed.wait_ended()  # RelaySender's loop returns
    feed.offer(frame(keyframe=True))  # the hub may still offer: ignored
    assert feed.frames_sent == 0
