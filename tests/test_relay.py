"""The relay against a real GStreamer RTSP camera and real aiortc viewers."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import time
from pathlib import Path

import pytest
from support import gateway as gateway_support
from support.camera import free_port
from support.gateway import camera_entry, settings_for
from support.metrics import per_camera, scrape
from support.viewer import Viewer
from support.waiting import until

from gateway.app import HUBS, SESSIONS
from gateway.egress import sender as sender_module
from gateway.egress.datagrams import output_for
from gateway.egress.sender import FramePacker
from gateway.egress.track import ViewerTrack
from gateway.relay import CameraHub
from gateway.relay.source import EncodedFrame

HD = {"width": 1280, "height": 720}
SMALL = {"width": 320, "height": 240}
STOCK_VIEWER = Path(__file__).parent / "support" / "stock_viewer.py"
# Every test here runs with the fast sender and with aiortc's own.
pytestmark = pytest.mark.usefixtures("sender_mode")


def needs_fast_sender() -> None:
    if gateway_support.SENDER != "fast":
        pytest.skip("about the fast send path")


def needs_aiortc_sender() -> None:
    if gateway_support.SENDER != "aiortc":
        pytest.skip("about aiortc's own send loop")


def answered_profile(answer: str) -> str:
    match = re.search(r"a=fmtp:\d+ .*profile-level-id=([0-9a-fA-F]{6})", answer)
    assert match, answer
    return match.group(1).lower()


async def watch(gateway, camera_id: str = "cam") -> Viewer:
    viewer = gateway.viewer(camera_id)
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    return viewer


async def test_h264_is_passed_through_with_its_own_profile(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(profile="high", **HD)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer = await watch(gateway)
    assert await viewer.wait_frames(10)
    assert {(w, h) for _, w, h in viewer.frames} == {(1280, 720)}
    hub = gateway.app[HUBS].get("cam")
    assert hub.info.mode == "passthrough"
    # Described truthfully: High profile (0x64), not the Baseline aiortc knows.
    assert answered_profile(viewer.answer) == hub.info.profile_level_id
    assert hub.info.profile_level_id.startswith("64")
    assert "VP8" not in viewer.answer
    await viewer.close(gateway.http)


async def test_parameter_sets_sent_only_out_of_band_are_injected(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(profile="main", inband_params=False, **SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer = await watch(gateway)
    assert await viewer.wait_frames(10), "no decodable keyframe reached the viewer"
    assert gateway.app[HUBS].get("cam").info.mode == "passthrough"
    await viewer.close(gateway.http)


@pytest.mark.parametrize("source", [{"codec": "h265"}, {"codec": "h264", "bframes": 2}])
async def test_other_sources_are_transcoded_once(make_rtsp_camera, start_gateway, source):
    camera = make_rtsp_camera(**source, **HD)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewers = [await watch(gateway) for _ in range(2)]
    for viewer in viewers:
        assert await viewer.wait_frames(10)
        assert viewer.frames[-1][1:] == (1280, 720)
    hub = gateway.app[HUBS].get("cam")
    assert hub.info.mode == "transcode"
    assert answered_profile(viewers[0].answer) == hub.info.profile_level_id
    assert hub.info.profile_level_id.startswith("42")  # Constrained Baseline
    # Both viewers are fed the very same encoded frames: one encoder per camera.
    assert camera.connections == 1
    for viewer in viewers:
        await viewer.close(gateway.http)


async def test_ten_viewers_share_one_rtsp_connection(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewers = await asyncio.gather(*(watch(gateway) for _ in range(10)))
    results = await asyncio.gather(*(v.wait_frames(5) for v in viewers))
    assert all(results)
    assert camera.connections == 1
    assert camera.total_connections == 1
    assert len(gateway.app[HUBS].get("cam").viewers) == 10
    for viewer in viewers:
        await viewer.close(gateway.http)


async def test_pull_stops_after_last_viewer_and_linger(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(**SMALL)
    linger = 2.0
    gateway = await start_gateway(
        settings_for([camera_entry("cam", camera.url)], linger_seconds=linger)
    )
    hub = gateway.app[HUBS].get("cam")
    assert camera.connections == 0 and not hub.pulling  # nobody pulls an idle camera
    first, second = await watch(gateway), await watch(gateway)
    assert await first.wait_frames(3)
    await first.close(gateway.http)
    await asyncio.sleep(linger + 0.5)
    assert camera.connections == 1, "one viewer left: the pull must go on"
    assert await second.wait_frames(3)
    left = time.monotonic()  # before the DELETE, during which the linger starts
    await second.close(gateway.http)
    await asyncio.sleep(linger / 2)
    assert hub.pulling, "the pull lingers briefly for a viewer who comes right back"
    assert await asyncio.to_thread(camera.wait_connections, 0, linger + 5)
    assert not hub.pulling
    assert time.monotonic() - left >= linger


async def test_stalled_viewer_does_not_hold_back_another(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(
        settings_for([camera_entry("cam", camera.url)], viewer_queue_frames=10)
    )
    hub = gateway.app[HUBS].get("cam")
    stalled = await hub.join()  # joins like a viewer, reads once, then never again
    await asyncio.wait_for(stalled.next(), 10)
    viewer = await watch(gateway)
    started = time.monotonic()
    assert await viewer.wait_frames(75)  # 3 s of 25 fps
    elapsed = time.monotonic() - started
    assert elapsed < 6, f"healthy viewer slowed down: 75 frames took {elapsed:.1f} s"
    assert stalled.frames_dropped > 0
    assert len(stalled._queue) <= 10  # bounded: memory does not grow
    hub.leave(stalled)
    await viewer.close(gateway.http)


async def test_a_loop_that_falls_behind_gets_a_bounded_queue_and_the_picture_skips(
    make_rtsp_camera, start_gateway
):
    """A node past its CPU: its event loop is behind the cameras. The frames waiting for
    it stay bounded (2 s of video); the rest are dropped at the pull until a keyframe,
    and the viewer goes on from there instead of ever further behind."""
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer = await watch(gateway)
    assert await viewer.wait_frames(10)
    hub = gateway.app[HUBS].get("cam")
    time.sleep(4.0)  # the whole event loop stalls for 100 frames: that is the point
    assert hub.backlog <= 2 * 25
    assert hub.frames_dropped_behind >= 100 - 2 * 25 - 15
    assert await viewer.wait_frames(25), "the picture did not go on"
    dropped = per_camera(await scrape(gateway), "cctv_frames_dropped_overload_total", "cam")
    assert dropped >= 100 - 2 * 25 - 15
    await viewer.close(gateway.http)


async def test_a_viewer_joining_mid_gop_starts_from_its_keyframe(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    hub = gateway.app[HUBS].get("cam")
    warm = await watch(gateway)
    assert await warm.wait_frames(30)  # well into a GOP
    replay = hub._catch_up()
    assert replay[0].is_keyframe and not any(p.is_keyframe for p in replay[1:])
    stamps = [p.pts for p in replay]
    assert stamps == sorted(set(stamps)) and stamps[-1] == hub._gop[-1].pts
    assert stamps[-1] - stamps[0] < 90 * len(replay) + 1  # squeezed: no fast-forward
    joiner = await watch(gateway)
    assert await joiner.wait_frames(10)
    assert {(w, h) for _, w, h in joiner.frames} == {(320, 240)}
    for viewer in (warm, joiner):
        await viewer.close(gateway.http)


async def test_each_frame_is_packetized_once_for_all_viewers(
    make_rtsp_camera, start_gateway, monkeypatch
):
    from aiortc.codecs.h264 import H264Encoder

    needs_fast_sender()
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewers = [await watch(gateway) for _ in range(4)]
    for viewer in viewers:
        assert await viewer.wait_frames(5)
    calls = 0
    packetize = H264Encoder._packetize.__func__

    def counting(cls, packages):  # aiortc's packetizer, counted
        nonlocal calls
        calls += 1
        return packetize(cls, packages)

    monkeypatch.setattr(H264Encoder, "_packetize", classmethod(counting))
    feed = next(iter(gateway.app[SESSIONS])).feed  # every viewer gets the same frames
    frames_before = feed.frames_sent
    assert await viewers[0].wait_frames(25)
    frames = feed.frames_sent - frames_before
    assert frames > 0 and calls <= frames + 2, f"{calls} packetizations for {frames} frames"
    for viewer in viewers:
        await viewer.close(gateway.http)


async def test_a_lost_packet_is_resent_over_rtx(make_rtsp_camera, start_gateway):
    """The lean sender (gateway/egress/sender.py) still answers NACKs."""
    from gateway.app import SESSIONS
    from gateway.egress.datagrams import DatagramSender
    from gateway.egress.sender import RelaySender

    needs_fast_sender()
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer = await watch(gateway)
    h264 = int(re.search(r"a=rtpmap:(\d+) H264/90000", viewer.answer).group(1))
    rtx = int(re.search(r"a=rtpmap:(\d+) rtx/90000", viewer.answer).group(1))
    receiver = viewer.pc.getReceivers()[0]
    deliver = receiver._handle_rtp_packet
    media, dropped, resent = 0, None, asyncio.Event()

    async def lossy(packet, arrival_time_ms):  # the viewer's network loses one packet
        nonlocal media, dropped
        if packet.payload_type == h264:
            media += 1
            if media == 40:
                dropped = packet.sequence_number
                return
        elif packet.payload_type == rtx and dropped is not None:
            original = int.from_bytes(packet.payload[:2], "big")  # RFC 4588 OSN
            if original == dropped:
                resent.set()
        await deliver(packet, arrival_time_ms)

    receiver._handle_rtp_packet = lossy
    (session,) = list(gateway.app[SESSIONS])
    sender = session.pc.getSenders()[0]
    await asyncio.wait_for(resent.wait(), 20)
    assert isinstance(sender, RelaySender) and hasattr(sender, "_sent")  # the fast path
    assert isinstance(sender._output, DatagramSender) and sender._output.gso
    frames = len(viewer.frames)
    assert await viewer.wait_frames(frames + 10)
    await viewer.close(gateway.http)


async def stock_aiortc(gateway, camera_id: str, frames: int = 10) -> dict:
    """A stock aiortc viewer in its own process: no gateway patches, Baseline only."""
    token = gateway.bearer()["Authorization"].removeprefix("Bearer ")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(STOCK_VIEWER),
        f"{gateway.url}/whep/{camera_id}",
        token,
        str(frames),
        "20",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return json.loads(out)


async def test_a_baseline_only_viewer_plays_a_high_profile_camera(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(profile="high", **SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    result = await stock_aiortc(gateway, "cam")
    assert result["status"] == 201, result
    assert all(p.startswith("42") for p in result["offered"]), result  # Baseline only
    assert result["frames"] == 10 and result["sizes"] == [[320, 240]], result
    hub = gateway.app[HUBS].get("cam")
    assert hub.info.mode == "passthrough" and hub.info.profile_level_id.startswith("64")
    # Labelled as the profile the viewer offered, with the camera's level.
    assert result["answered"] == "42e0" + hub.info.profile_level_id[4:]
    assert not hub.renditions  # passed through, not re-encoded


async def test_strict_profiles_never_mislabel_the_camera(make_rtsp_camera, start_gateway):
    """`strict_h264_profile`: a Baseline-only offer does not get High labelled as
    Baseline. Stock aiortc also offers VP8, so it gets the VP8 rendition; an offer
    with Baseline H.264 alone is refused, as before issue 11."""
    camera = make_rtsp_camera(profile="high", **SMALL)
    settings = settings_for([camera_entry("cam", camera.url)], webrtc={"strict_h264_profile": True})
    gateway = await start_gateway(settings)
    result = await stock_aiortc(gateway, "cam")
    assert result["status"] == 201 and result["answered"] is None, result  # VP8
    assert result["frames"] == 10, result
    viewer = gateway.viewer("cam")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    offer = viewer.pc.localDescription.sdp
    # Every other profile the process's aiortc has learnt (earlier tests register
    # cameras' profiles in its codec table) becomes Constrained Baseline.
    baseline_only = re.sub(r"profile-level-id=(?!42)[0-9a-f]{6}", "profile-level-id=42e01f", offer)
    baseline_only = baseline_only.replace("VP8/90000", "AV1/90000")
    response = await gateway.http.post(
        viewer.url,
        data=baseline_only,
        headers={"Content-Type": "application/sdp", **viewer.headers},
    )
    assert response.status == 400
    assert "High" in (await response.json())["error"]
    await viewer.close()


async def test_vp8_viewers_share_one_encode_and_h264_viewers_stay_passthrough(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(profile="high", **SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    hub = gateway.app[HUBS].get("cam")
    h264 = await watch(gateway)
    assert await h264.wait_frames(5)
    assert not hub.renditions, "nobody pays for VP8 before a VP8 viewer comes"
    vp8 = []
    for _ in range(2):  # like Firefox without OpenH264: VP8, no H.264
        viewer = gateway.viewer("cam", codecs=["video/VP8"])
        response = await viewer.connect(gateway.http)
        assert response.status == 201, await response.text()
        assert "VP8/90000" in viewer.answer and "H264" not in viewer.answer
        vp8.append(viewer)
    for viewer in vp8:
        assert await viewer.wait_frames(10)
        assert {(w, h) for _, w, h in viewer.frames} == {(320, 240)}
    (rendition,) = hub.renditions.values()  # one encode for both
    assert rendition.spec.codec == "vp8" and len(rendition.feeds) == 2
    assert camera.connections == 1
    # The H.264 viewer still gets the camera's own stream, at full rate.
    assert hub.info.mode == "passthrough"
    assert await h264.wait_frames(25, timeout=3)
    await vp8[0].close(gateway.http)
    assert hub.renditions, "the rendition lives while one VP8 viewer remains"
    assert await vp8[1].wait_frames(5)
    await vp8[1].close(gateway.http)
    assert not hub.renditions, "the last VP8 viewer stops the encode"
    assert await h264.wait_frames(10)
    await h264.close(gateway.http)


async def test_an_offer_with_neither_h264_nor_vp8_is_refused(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer = gateway.viewer("cam")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    offer = re.sub(r"H264/90000|VP8/90000", "AV1/90000", viewer.pc.localDescription.sdp)
    response = await gateway.http.post(
        viewer.url, data=offer, headers={"Content-Type": "application/sdp", **viewer.headers}
    )
    assert response.status == 400
    assert "neither H.264" in (await response.json())["error"]
    assert camera.connections == 0  # refused before the camera is pulled
    await viewer.close()


async def test_a_failing_fast_path_falls_back_to_aiortcs_sender(
    make_rtsp_camera, start_gateway, monkeypatch
):
    from gateway.egress.sender import FramePacker

    needs_fast_sender()
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer = await watch(gateway)
    assert await viewer.wait_frames(10)
    (session,) = list(gateway.app[SESSIONS])

    def broken(packet):  # a library upgrade broke an internal at run time
        raise RuntimeError("an aiortc internal changed")

    monkeypatch.setattr(FramePacker, "pack", broken)
    assert await viewer.wait_frames(25, timeout=10), "the tile froze"
    assert session.ending is None and session.feed.sink_failures == 1
    assert not hasattr(session.pc.getSenders()[0], "_sent")  # aiortc's loop sends now
    await viewer.close(gateway.http)


async def test_media_that_stops_on_a_live_connection_ends_the_session(
    make_rtsp_camera, start_gateway, monkeypatch
):
    from aiortc import RTCRtpSender

    from gateway.egress.sender import FramePacker

    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))

    def broken(*args):
        raise RuntimeError("an aiortc internal changed")

    # aiortc's own loop gives up (it logs the error and returns) ...
    monkeypatch.setattr(RTCRtpSender, "_next_encoded_frame", broken)
    monkeypatch.setattr(FramePacker, "pack", broken)  # ... after the fast path failed
    viewer = await watch(gateway)
    (session,) = list(gateway.app[SESSIONS])
    await asyncio.wait_for(session.ended.wait(), 10)
    assert session.ending.code == "media_failed"  # the player reconnects on it
    await asyncio.wait_for(viewer.closed.wait(), 10)  # no live connection left behind
    await viewer.close()


# --- what the README promises about the relay, each checked where a viewer sees it ---


def ticks(a: int, b: int) -> int:
    """b - a on the 32-bit RTP clock (timestamps wrap)."""
    return (b - a) % 2**32


async def test_a_cold_start_plays_from_the_pulls_first_keyframe(make_rtsp_camera, start_gateway):
    """FFmpeg gives a pull's first packet no timestamp; when it is the camera's keyframe
    (the test camera starts its stream with one) it is kept, not dropped for the next."""
    camera = make_rtsp_camera(**SMALL, gop_seconds=4)  # the next keyframe 4 s later
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    offered = time.monotonic()
    viewer = await watch(gateway)
    assert await viewer.wait_frames(1, timeout=10)
    first_frame = viewer.frames[0][0] - offered
    # Measured: 0.22 s (1.99 s with a 2 s GOP while that keyframe was dropped); the next
    # keyframe is 4 s away, so 2 s leaves headroom for a loaded 2-core machine.
    assert first_frame < 2.0, f"first frame after {first_frame:.2f} s: the next keyframe's"
    assert viewer.keyframes[0]
    await viewer.close(gateway.http)


async def test_a_joining_viewer_starts_with_the_replayed_gop_not_the_next_keyframe(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(**SMALL, gop_seconds=4)  # a keyframe every 100 frames
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    hub = gateway.app[HUBS].get("cam")
    warm = await watch(gateway)
    assert await warm.wait_frames(5)
    replays: list[tuple[int, int]] = []  # (frames since the keyframe, frames replayed)
    catch_up = hub._catch_up

    def recorded():
        frames = catch_up()
        replays.append((len(hub._gop), len(frames)))
        return frames

    hub._catch_up = recorded  # the joiner's feed asks this when its connection is up
    # Join early in a GOP, so that the camera's next keyframe is seconds away.
    await until(lambda: 10 <= len(hub._gop) <= 30, timeout=10, what="a point early in a GOP")
    offered = time.monotonic()
    joiner = await watch(gateway)
    assert await joiner.wait_frames(1, timeout=10)
    first_frame = joiner.frames[0][0] - offered
    (since_keyframe, replayed) = replays[0]
    assert 10 <= since_keyframe <= 60, since_keyframe  # the next keyframe: >= 1.6 s away
    # Measured: ~50 ms (README, time to first frame). Waiting for the next keyframe would
    # take >= 1.6 s here; 1 s leaves headroom for a loaded 2-core machine.
    assert first_frame < 1.0, f"first frame after {first_frame:.2f} s: not the replay"
    assert replayed == since_keyframe  # the whole GOP so far, from its keyframe
    assert await joiner.wait_frames(replayed + 5)
    # The replayed frames come at once, not at the camera's 25 fps ...
    burst = joiner.frames[replayed - 1][0] - joiner.frames[0][0]
    assert burst < 0.5 * replayed / 25, f"{replayed} replayed frames took {burst:.2f} s"
    # ... stamped 1 ms apart (90 ticks), ending at the newest frame: no fast-forward.
    steps = [ticks(a, b) for a, b in itertools.pairwise(joiner.pts[: replayed + 3])]
    assert steps[: replayed - 1] == [90] * (replayed - 1), steps
    assert all(0 < step <= 2 * 3600 for step in steps[replayed - 1 :]), steps  # then live
    for viewer in (warm, joiner):
        await viewer.close(gateway.http)


def sent_after_refusals(log: list[tuple[str, bool]]) -> list[bool]:
    """Whether each frame sent since the last refusal was a keyframe."""
    last = max((i for i, (kind, _) in enumerate(log) if kind == "refused"), default=None)
    return [] if last is None else [key for _, key in log[last + 1 :]]


class FillingOutput:
    """A viewer's way out (gateway/egress/datagrams.py) whose socket buffer fills on cue:
    while `refuse` > 0, send() takes nothing and says False, as a full socket does."""

    def __init__(self, real) -> None:
        self.real = real
        self.transport = real.transport
        self.refuse = 0
        self.arm_after_deltas: int | None = None  # refuse once this deep into a GOP
        self.deltas = 0
        self.log: list[tuple[str, bool]] = []  # ("sent" or "refused", keyframe?)

    def send(self, data, segment, addr) -> bool:
        keyframe = FramePacker._last[0].is_keyframe  # the frame being sent right now
        self.deltas = 0 if keyframe else self.deltas + 1
        if self.arm_after_deltas is not None and self.deltas >= self.arm_after_deltas:
            self.arm_after_deltas, self.refuse = None, 1
        if self.refuse:
            self.refuse -= 1
            self.log.append(("refused", keyframe))
            return False
        self.log.append(("sent", keyframe))
        return self.real.send(data, segment, addr)

    def close(self) -> None:
        self.real.close()


async def test_a_viewer_whose_socket_is_full_skips_to_the_next_keyframe(
    make_rtsp_camera, start_gateway, monkeypatch
):
    needs_fast_sender()  # the socket is the fast sender's own output
    outputs: list[FillingOutput] = []

    def filling_output_for(protocol):
        outputs.append(FillingOutput(output_for(protocol)))
        return outputs[-1]

    monkeypatch.setattr(sender_module, "output_for", filling_output_for)
    camera = make_rtsp_camera(**SMALL)  # a keyframe every 50 frames
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    slow = await watch(gateway)
    assert await slow.wait_frames(3)
    (slow_out,) = outputs
    healthy = await watch(gateway)
    assert await healthy.wait_frames(3)
    (slow_session,) = [s for s in gateway.app[SESSIONS] if s.pc.getSenders()[0]._output is slow_out]
    before = await scrape(gateway)
    assert per_camera(before, "cctv_frames_dropped_slow_viewer_total", "cam") == 0

    slow_out.arm_after_deltas = 5  # its socket is full once, early in a GOP
    await until(lambda: slow_out.log[-1][0] == "refused", timeout=5, what="a refusal")
    refused_at = time.monotonic()
    await until(lambda: sent_after_refusals(slow_out.log), timeout=5, what="a frame sent again")
    resumed_at = time.monotonic()
    # What reached its socket next was a keyframe: the deltas in between, whose
    # references it lacks, were skipped; the rest of the GOP (~40 frames) is dropped.
    assert sent_after_refusals(slow_out.log)[0] is True, slow_out.log[-60:]
    dropped = slow_session.feed.frames_dropped
    assert dropped >= 30, f"only {dropped} frames dropped"
    assert await slow.wait_frames(10)  # and its picture goes on from there
    assert slow.pc.connectionState == "connected"
    # The other viewer never waited: 25 fps all along (half of it, on a loaded machine).
    got = sum(1 for t, _, _ in healthy.frames if refused_at <= t <= resumed_at)
    assert got >= 0.5 * 25 * (resumed_at - refused_at) - 1, (got, resumed_at - refused_at)
    after = await scrape(gateway)
    assert per_camera(after, "cctv_frames_dropped_slow_viewer_total", "cam") == dropped
    for viewer in (slow, healthy):
        await viewer.close(gateway.http)


async def test_an_aiortc_sender_whose_queue_overflows_resumes_at_a_keyframe(
    make_rtsp_camera, start_gateway, monkeypatch
):
    """`sender = "aiortc"` pulls its frames (ViewerTrack.recv). A loop that stops
    reading for longer than its queue holds loses frames; the first it decodes after
    that is a keyframe, never a delta whose references are gone."""
    needs_aiortc_sender()
    reading = asyncio.Event()
    reading.set()
    recv = ViewerTrack.recv

    async def stalling_recv(self: ViewerTrack):  # the send loop, not reading for a while
        await reading.wait()
        return await recv(self)

    monkeypatch.setattr(ViewerTrack, "recv", stalling_recv)
    camera = make_rtsp_camera(**SMALL)  # a keyframe every 50 frames
    gateway = await start_gateway(
        settings_for([camera_entry("cam", camera.url)], viewer_queue_frames=10)
    )
    viewer = await watch(gateway)
    for _ in range(2):  # twice, so a keyframe that happens to fall right cannot pass it
        assert await viewer.wait_frames(5)
        reading.clear()
        await asyncio.sleep(1.0)  # 25 frames for a queue of 10: it overflows
        decoded = len(viewer.keyframes)
        reading.set()
        assert await viewer.wait_frames(3)
        # The frame sent as the loop stopped may come out of the viewer's jitter
        # buffer only now; what matters is the first frame after the gap.
        steps = [ticks(a, b) for a, b in itertools.pairwise(viewer.pts[decoded - 1 :])]
        after_gap = decoded + steps.index(max(steps))
        assert viewer.keyframes[after_gap] is True, viewer.keyframes[decoded - 1 :]
        (session,) = gateway.app[SESSIONS]
        assert session.feed.frames_dropped > 0
    await viewer.close(gateway.http)


async def test_viewers_resume_after_a_camera_restart_on_a_timeline_advanced_by_the_outage(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(**SMALL)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewers = [await watch(gateway), await watch(gateway)]
    for viewer in viewers:
        assert await viewer.wait_frames(10)
    assert per_camera(await scrape(gateway), "cctv_upstream_reconnects_total", "cam") == 0
    camera.kill()
    await asyncio.sleep(2.0)  # the camera is away for a while: that time is the point
    camera.restart()
    for viewer in viewers:
        assert await viewer.wait_frames(10, timeout=20), "viewer did not resume"
        assert viewer.pc.connectionState == "connected"  # no re-signaling
        arrivals = [t for t, _, _ in viewer.frames]
        away = max(b - a for a, b in itertools.pairwise(arrivals))
        assert away > 2.0, f"the outage lasted only {away:.2f} s?"
        steps = [ticks(a, b) for a, b in itertools.pairwise(viewer.pts)]
        assert all(0 < step < 2**31 for step in steps), "timestamps went backwards"
        # The decoder holds a frame or two, so the outage shows in the timestamps a
        # frame or two after it shows in the arrivals: compare the largest of each. The
        # timeline goes on by the real time that passed (within 0.5 s: arrivals are
        # stamped after decoding, which a loaded machine delays by up to a few 100 ms).
        assert abs(max(steps) / 90_000 - away) < 0.5, (max(steps) / 90_000, away)
    assert per_camera(await scrape(gateway), "cctv_upstream_reconnects_total", "cam") == 1
    for viewer in viewers:
        await viewer.close(gateway.http)


async def test_reconnect_backoff_doubles_up_to_reconnect_max_seconds(start_gateway):
    initial, cap = 0.1, 0.4
    source = f"rtsp://127.0.0.1:{free_port()}/cam"  # nothing listens: refused at once
    settings = settings_for(
        [camera_entry("cam", source)],
        reconnect_initial_seconds=initial,
        reconnect_max_seconds=cap,
        linger_seconds=5.0,  # the hub keeps trying for the viewer that may come back
    )
    gateway = await start_gateway(settings)
    hub = gateway.app[HUBS].get("cam")
    attempts: list[float] = []
    run = hub._source.run

    def counted(*args, **kwargs):
        attempts.append(time.monotonic())
        return run(*args, **kwargs)

    hub._source.run = counted
    response = await gateway.viewer("cam").connect(gateway.http)
    assert response.status == 503
    await until(lambda: len(attempts) >= 9, timeout=5, what="nine attempts to open the camera")
    waits = [b - a for a, b in itertools.pairwise(attempts)]
    # 0.1, 0.2, 0.4, then 0.4 for ever. Each wait also holds one refused open (a few ms)
    # and a thread wake-up; 0.25 s covers that on a loaded machine, and is well under
    # the 0.8 s that one more doubling would give.
    assert waits[0] < initial + 0.25 and waits[1] < 2 * initial + 0.25, waits
    assert all(cap - 0.02 <= w < cap + 0.25 for w in waits[2:]), waits


async def test_the_hub_keeps_at_most_300_frames_for_newcomers():
    settings = settings_for([camera_entry("cam", "demo:testsrc")])
    hub = CameraHub(settings.cameras[0], settings.relay)
    held, replayed = [], []
    for i in range(400):  # one keyframe, then a GOP longer than the cache
        keyframe = i in (0, 390)
        nal = b"\x65" if keyframe else b"\x41"
        hub._on_frame(EncodedFrame(b"\x00\x00\x00\x01" + nal + bytes(50), i * 3600, keyframe))
        held.append(len(hub._gop))  # what the hub holds in memory
        replayed.append(len(hub._catch_up()))  # what a viewer starting now would get
    assert max(held) == 300 and max(replayed) == 300  # a GOP of up to 300 is replayed
    assert held[300:390] == [0] * 90  # past that, nothing is kept ...
    assert replayed[300:390] == [0] * 90  # ... and newcomers wait for the next keyframe
    assert held[390:] == list(range(1, 11)) == replayed[390:]  # which starts a new GOP


async def test_the_hubs_fan_out_hands_each_frame_to_every_viewers_sender_itself(start_gateway):
    """Nothing waits between the hub and a viewer's sender: by the time the hub's frame
    handler returns, every viewer's sender has sent the frame (no queue, no task)."""
    needs_fast_sender()
    entry = camera_entry("cam", "demo:testsrc", demo_size="160x120", demo_fps=25)
    gateway = await start_gateway(settings_for([entry]))
    hub = gateway.app[HUBS].get("cam")
    viewers = [await watch(gateway) for _ in range(3)]
    for viewer in viewers:
        assert await viewer.wait_frames(3)
    feeds = [session.feed for session in gateway.app[SESSIONS]]
    steps: list[list[int]] = []
    on_frame = hub._on_frame

    def watched(frame):
        before = [feed.frames_sent for feed in feeds]
        on_frame(frame)
        steps.append([feed.frames_sent - b for feed, b in zip(feeds, before, strict=True)])

    hub._on_frame = watched  # what the pull thread posts to the event loop, per frame
    await until(lambda: len(steps) >= 25, timeout=10, what="25 frames")
    assert all(step == [1, 1, 1] for step in steps), steps
    for viewer in viewers:
        await viewer.close(gateway.http)


# --- the send path's rounds and what a viewer costs in memory (issue 25) ---


class LoggingOutput:
    """A viewer's real way out, noting which frame each send belongs to."""

    def __init__(self, real, log: list) -> None:
        self.real, self.log, self.transport = real, log, real.transport

    def send(self, data, segment, addr) -> bool:
        self.log.append((self, FramePacker._last[0]))  # the frame being sent right now
        return self.real.send(data, segment, addr)

    def close(self) -> None:
        self.real.close()


async def test_each_viewer_gets_a_frames_first_packets_before_any_viewer_gets_its_last(
    make_rtsp_camera, start_gateway, monkeypatch
):
    needs_fast_sender()
    log: list = []
    monkeypatch.setattr(
        sender_module, "output_for", lambda protocol: LoggingOutput(output_for(protocol), log)
    )
    camera = make_rtsp_camera(**HD)  # frames of several packets
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewers = [await watch(gateway) for _ in range(3)]
    for viewer in viewers:
        assert await viewer.wait_frames(5)
    start = len(log)
    assert await viewers[0].wait_frames(25)
    sends: dict[int, list] = {}  # per frame: the outputs in the order they sent
    for output, packet in log[start:]:
        sends.setdefault(id(packet), []).append(output)
    checked = 0
    for order in sends.values():
        outputs = set(order)
        if len(outputs) == 3 and all(order.count(o) > 1 for o in outputs):
            firsts = max(order.index(o) for o in outputs)
            lasts = min(len(order) - 1 - order[::-1].index(o) for o in outputs)
            assert firsts < lasts, "a viewer's whole frame went out before another's began"
            checked += 1
    assert checked >= 10, f"only {checked} frames went out in more than one round"
    for viewer in viewers:
        await viewer.close(gateway.http)


async def test_the_sequence_number_wraps_inside_a_round(make_rtsp_camera, start_gateway):
    needs_fast_sender()
    camera = make_rtsp_camera(**HD)  # frames of several packets
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewer = await watch(gateway)
    assert await viewer.wait_frames(5)
    (session,) = list(gateway.app[SESSIONS])
    sender = session.pc.getSenders()[0]
    for before in (1, 2, 3, 4):  # packets before the wrap: it falls inside some round
        sender._sequence_number = 0x10000 - before
        assert await viewer.wait_frames(3), "the picture stopped at the wrap"
    assert session.feed.sink_failures == 0 and hasattr(sender, "_sent")  # still the fast path
    await viewer.close(gateway.http)


async def test_viewers_joining_together_share_one_packetization_of_the_replay(
    make_rtsp_camera, start_gateway, monkeypatch
):
    """Each joining viewer's GOP replay is its own copy of the frames (own timestamps),
    but the packets of its frames are made once: a viewer's NACK history holds the
    whole replay, and 50 viewers each holding their own was 0.16 MB a viewer."""
    from aiortc.codecs.h264 import H264Encoder

    needs_fast_sender()
    camera = make_rtsp_camera(**SMALL, gop_seconds=4)  # a keyframe every 100 frames
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    warm = await watch(gateway)
    assert await warm.wait_frames(30)  # well into a GOP: a replay of 30 frames or more
    hub = gateway.app[HUBS].get("cam")
    calls = 0
    packetize = H264Encoder._packetize.__func__

    def counting(cls, packages):
        nonlocal calls
        calls += 1
        return packetize(cls, packages)

    monkeypatch.setattr(H264Encoder, "_packetize", classmethod(counting))
    (warm_session,) = list(gateway.app[SESSIONS])
    live_before, replay = warm_session.feed.frames_sent, len(hub._gop)
    joiners = await asyncio.gather(*(watch(gateway) for _ in range(3)))
    for joiner in joiners:
        assert await joiner.wait_frames(5)
    live = warm_session.feed.frames_sent - live_before
    assert replay >= 25
    assert calls <= live + 2, f"{calls} packetizations: {live} live frames, 3 x {replay} replayed"
    for viewer in (warm, *joiners):
        await viewer.close(gateway.http)


async def test_a_viewers_session_keeps_no_receive_side_estimator_nor_idle_dtls_buffers(
    start_gateway,
):
    """The gateway's transceivers only send: the receiver aiortc gives each one never
    builds its 95 KiB bitrate estimator, and OpenSSL frees the DTLS record buffers
    while they are idle (SSL_MODE_RELEASE_BUFFERS)."""
    from OpenSSL._util import lib

    from gateway.egress.compat import _EstimatorOnFirstPacket

    entry = camera_entry("cam", "demo:testsrc", demo_size="160x120", demo_fps=25)
    gateway = await start_gateway(settings_for([entry]))
    viewer = await watch(gateway)
    assert await viewer.wait_frames(10)
    (session,) = list(gateway.app[SESSIONS])
    (transceiver,) = session.pc.getTransceivers()
    estimator = transceiver.receiver._RTCRtpReceiver__remote_bitrate_estimator
    assert isinstance(estimator, _EstimatorOnFirstPacket) and estimator._estimator is None
    dtls = transceiver.sender.transport._ssl
    assert lib.SSL_set_mode(dtls._ssl, 0) & lib.SSL_MODE_RELEASE_BUFFERS  # returns the mode
    await viewer.close(gateway.http)
