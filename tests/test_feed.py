"""ViewerFeed in push mode (how RelaySender takes frames from the hub)."""

from __future__ import annotations

import asyncio

import av

from gateway.relay import ViewerFeed
from gateway.relay.feed import REPLAY_GROUP_BYTES, fan_out


def frame(keyframe: bool, size: int = 105) -> av.Packet:
    packet = av.Packet(b"\x00\x00\x00\x01\x65" + bytes(size - 5))
    packet.is_keyframe = keyframe
    return packet


def gop(frames: int, size: int) -> list[av.Packet]:
    return [frame(keyframe=i == 0, size=size) for i in range(frames)]


async def wait_for(predicate, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


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


async def test_the_catch_up_is_paced_and_live_frames_queue_behind_it():
    replay = gop(9, size=REPLAY_GROUP_BYTES // 2)  # two frames fill a group
    feed = ViewerFeed("cam", max_frames=10, catch_up=lambda: replay)
    got: list[av.Packet] = []
    assert feed.start() == 9
    feed.attach(lambda packet: got.append(packet) or True)
    assert got == replay[:2], "the first group leaves at once, the rest on later ticks"
    live = frame(keyframe=False)
    feed.offer(live)
    assert len(got) == 2, "a live frame waits behind the catch-up"
    await wait_for(lambda: len(got) == 10)
    assert got == [*replay, live]
    newest = frame(keyframe=False)
    feed.offer(newest)  # the catch-up is done: pushed at once again
    assert got[-1] is newest
    assert (feed.frames_sent, feed.frames_dropped) == (11, 0)


async def test_a_frame_skipped_during_the_catch_up_drops_what_refers_to_it():
    replay = gop(3, size=REPLAY_GROUP_BYTES) + gop(2, size=REPLAY_GROUP_BYTES)
    feed = ViewerFeed("cam", max_frames=10, catch_up=lambda: replay)
    got: list[av.Packet] = []
    verdicts = iter([True, False, True, True])

    def sink(packet: av.Packet) -> bool:
        got.append(packet)
        return next(verdicts)

    feed.attach(sink)
    await wait_for(lambda: len(got) == 4)
    # The second frame was skipped: the third refers to it, so the next is the keyframe.
    assert got == [replay[0], replay[1], replay[3], replay[4]]
    assert (feed.frames_sent, feed.frames_dropped) == (3, 2)


async def test_a_stopped_feed_sends_no_more_of_its_catch_up():
    replay = gop(10, size=REPLAY_GROUP_BYTES)
    feed = ViewerFeed("cam", max_frames=10, catch_up=lambda: replay)
    got: list[av.Packet] = []
    feed.attach(lambda packet: got.append(packet) or True)
    feed.stop()
    await asyncio.sleep(0.02)
    assert got == replay[:1]


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


async def test_the_fan_out_sends_a_frame_a_step_at_a_time_to_each_viewer_in_turn():
    """A sink that sends in steps (RelaySender: a round of packets each) gets one step,
    then the next viewer does: every viewer has the frame's first packets before any
    has its last, instead of the last viewer waiting for every whole frame before it."""
    sent: list[tuple[str, int]] = []

    def stepping_sink(name: str, steps: int):
        def sink(packet: av.Packet):
            done = iter(range(steps))

            def step() -> bool | None:
                part = next(done)
                sent.append((name, part))
                return True if part == steps - 1 else None

            return step

        return sink

    feeds = []
    for name, steps in (("a", 3), ("b", 1), ("c", 2)):
        feed = ViewerFeed("cam", max_frames=10)
        feed.attach(stepping_sink(name, steps))
        feeds.append(feed)
    fan_out(frame(keyframe=True), feeds)
    assert sent == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("c", 1), ("a", 2)]
    assert [f.frames_sent for f in feeds] == [1, 1, 1]
