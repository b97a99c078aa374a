"""A viewer joining mid-GOP gets the whole GOP replayed, and the network keeps all of it."""

from __future__ import annotations

import asyncio
import itertools
import time

from support.gateway import camera_entry, settings_for
from support.rtp import RtpRecorder

from gateway.app import HUBS


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def warm_camera(make_rtsp_camera, start_gateway, **camera):
    """A gateway whose camera one viewer already watches, and that viewer."""
    source = make_rtsp_camera(gop_seconds=2, **camera)
    gateway = await start_gateway(settings_for([camera_entry("cam", source.url)]))
    warm = gateway.viewer("cam")
    assert (await warm.connect(gateway.http)).status == 201
    assert await warm.wait_frames(10)
    return gateway, gateway.app[HUBS].get("cam"), warm


async def test_a_warm_join_loses_no_packets(make_rtsp_camera, start_gateway):
    # A real 2 Mbit/s 720p camera with a 2 s GOP: late in the GOP, the replay is ~0.5 MB.
    gateway, hub, warm = await warm_camera(make_rtsp_camera, start_gateway, filler=True)
    lost, replays, stalls = [], [], []
    for _ in range(4):
        await wait_for(lambda: len(hub._gop) >= 40, 5, "a GOP of 40 frames")
        replays.append(len(hub._gop))
        joiner = gateway.viewer("cam")
        # The ~0.5 MB replay arrives while this process's one event loop is sending it:
        # a receive buffer the size of the burst stands in for a browser, which reads
        # in its own process meanwhile (the default 208 KB dropped 28-61 packets).
        joiner.receive_buffer_bytes = 2 << 20
        recorder = RtpRecorder(joiner)
        assert (await joiner.connect(gateway.http)).status == 201
        assert await joiner.wait_frames(50, timeout=15)
        arrivals = [t for t, _, _ in joiner.frames]
        stalls.append(round(max(b - a for a, b in itertools.pairwise(arrivals)), 3))
        lost.append(recorder.lost())
        await joiner.close(gateway.http)
    print(f"replayed {replays} frames; packets lost {lost}; longest stall {stalls} s")
    assert lost == [0] * 4
    assert max(stalls) < 0.5, f"a joiner's picture froze: {stalls}"
    await warm.close(gateway.http)


async def test_a_replayed_packet_lost_on_a_long_path_is_resent(make_rtsp_camera, start_gateway):
    """The sender's NACK history covers the whole replay, even when the NACK for its
    keyframe comes back only after all of it has been sent (a long round trip)."""
    gateway, hub, warm = await warm_camera(make_rtsp_camera, start_gateway, width=320, height=240)
    await wait_for(lambda: len(hub._gop) >= 40, 5, "a GOP of 40 frames")
    joiner = gateway.viewer("cam")
    receiver = joiner.pc.getReceivers()[0]
    deliver, send_nack = receiver._handle_rtp_packet, receiver._send_rtcp_nack
    dropped: list[int] = []

    async def lossy(packet, arrival_time_ms):  # the network loses the replay's 2nd packet
        if not dropped and recorder.media[1:2] == [packet]:
            dropped.append(packet.sequence_number)
            return
        await deliver(packet, arrival_time_ms)

    async def late_nack(media_ssrc, lost):  # and the NACK for it arrives 200 ms later
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, lambda: asyncio.ensure_future(send_nack(media_ssrc, lost)))

    receiver._handle_rtp_packet, receiver._send_rtcp_nack = lossy, late_nack
    recorder = RtpRecorder(joiner)  # sees every packet before the loss
    assert (await joiner.connect(gateway.http)).status == 201
    await wait_for(lambda: dropped, 10, "the replay")

    def resent() -> bool:
        return any(p.sequence_number == dropped[0] for p in recorder.repairs)

    await wait_for(resent, 3, "the lost packet to be resent")
    assert await joiner.wait_frames(10, timeout=5)
    await joiner.close(gateway.http)
    await warm.close(gateway.http)
