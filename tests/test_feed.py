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
    assert (feed.frames_sent, feed.frames_dropped) == (2, 3)
    assert feed.bytes_sent == 2 * 105


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


async def test_a_failing_sink_is_dropped_and_frames_wait_for_a_reader():
    """A bug or a changed library internal in the fast sender: the feed lives on in
    pull mode from the next keyframe, so aiortc's own sender can take over."""
    import asyncio

    feed = ViewerFeed("cam", max_frames=10)

    def sink(packet: av.Packet) -> bool:
        raise RuntimeError("an aiortc internal changed")

    feed.attach(sink)
    feed.offer(frame(keyframe=True))
    assert feed.live and feed.sink_failures == 1
    await asyncio.wait_for(feed.wait_detached(), 1)  # RelaySender's loop hands over
    feed.offer(frame(keyframe=False))  # its references went with the failed frame
    feed.offer(frame(keyframe=True))
    packet = await asyncio.wait_for(feed.next(), 1)
    assert packet.is_keyframe and feed.frames_sent == 1
