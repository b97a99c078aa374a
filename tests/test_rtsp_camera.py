"""The RTSP test camera really is what the gateway tests assume (checked with real PyAV).

The make_rtsp_camera fixture comes from tests/conftest.py (camera.fixture).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import av
import av.error
import pytest
from av.video.frame import PictureType
from support.camera import RtspCamera

pytestmark = pytest.mark.rtsp

OPTIONS = {"rtsp_transport": "tcp"}


def open_rtsp(url: str) -> av.container.InputContainer:
    return av.open(url, options=OPTIONS, timeout=(5, 5))


def nal_types(data: bytes, hevc: bool = False) -> list[int]:
    """NAL unit types of an Annex-B buffer."""
    types, i = [], data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        header = data[i + 3]
        types.append((header >> 1) & 0x3F if hevc else header & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def packets(container: av.container.InputContainer) -> Iterator[av.Packet]:
    for packet in container.demux(container.streams.video[0]):
        if packet.size:
            yield packet


def test_h264_high_camera(make_rtsp_camera):
    cam = make_rtsp_camera()
    t0 = time.monotonic()
    with open_rtsp(cam.url) as c:
        open_s = time.monotonic() - t0
        stream = c.streams.video[0]
        ctx = stream.codec_context
        assert (ctx.name, ctx.profile, stream.width, stream.height) == ("h264", "High", 1280, 720)
        assert ctx.extradata.startswith(b"\x00\x00\x00\x01")  # Annex-B, not avcC
        assert {7, 8} <= set(nal_types(ctx.extradata))

        keys: list[tuple[int, int | None, float]] = []  # (packet index, pts, arrival)
        frames = 0
        for i, packet in enumerate(packets(c)):
            if frames < 5:
                frames += sum(f.width == 1280 for f in packet.decode())
            if packet.is_keyframe:
                keys.append((i, packet.pts, time.monotonic()))
                assert 7 in nal_types(bytes(packet)), "SPS must be in-band on keyframes"
                if len(keys) == 3:
                    break
            else:
                assert 7 not in nal_types(bytes(packet))
        assert frames == 5

    gaps = [b[0] - a[0] for a, b in itertools.pairwise(keys)]
    walls = [round(b[2] - a[2], 2) for a, b in itertools.pairwise(keys)]
    print(f"av.open {open_s:.2f} s; keyframes every {gaps} packets, {walls} s")
    assert gaps == [50, 50]  # 2 s GOP at 25 fps, one packet per frame
    assert keys[2][1] - keys[1][1] == 2 * 90000  # 90 kHz RTP clock
    # The first GOP's packets were buffered while av.open probed, so they arrive in a burst;
    # only the second interval is a real-time measurement.
    assert 1.5 < walls[1] < 2.5


def test_h264_without_inband_parameter_sets(make_rtsp_camera):
    cam = make_rtsp_camera(inband_params=False)
    with open_rtsp(cam.url) as c:
        ctx = c.streams.video[0].codec_context
        assert {7, 8} <= set(nal_types(ctx.extradata))  # from the SDP sprop-parameter-sets
        keys = decoded = 0
        for packet in packets(c):
            decoded += len(packet.decode())
            if packet.is_keyframe:
                assert not {7, 8} & set(nal_types(bytes(packet)))
                keys += 1
                if keys == 2:
                    break
        assert decoded >= 50  # decodable thanks to extradata alone


def test_h265_camera(make_rtsp_camera):
    cam = make_rtsp_camera(codec="h265")
    with open_rtsp(cam.url) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("hevc", 1280, 720)
        assert {32, 33, 34} <= set(nal_types(stream.codec_context.extradata, hevc=True))
        first = next(packets(c))
        assert first.is_keyframe
        assert {32, 33, 34} <= set(nal_types(bytes(first), hevc=True))  # VPS/SPS/PPS in-band
        frames = [f for p in [first, *itertools.islice(packets(c), 9)] for f in p.decode()]
        assert len(frames) >= 5
        assert frames[0].width == 1280


def test_h264_with_b_frames(make_rtsp_camera):
    cam = make_rtsp_camera(bframes=2)
    with open_rtsp(cam.url) as c:
        ctx = c.streams.video[0].codec_context
        print(f"has_b_frames = {ctx.has_b_frames!r}")
        assert ctx.has_b_frames  # PyAV 18 returns a bool here
        reordered, kinds, pts = 0, set(), []
        for packet in itertools.islice(packets(c), 40):
            if packet.pts is not None and packet.dts is not None and packet.pts != packet.dts:
                reordered += 1
            for frame in packet.decode():
                kinds.add(frame.pict_type)
                if frame.pts is not None:
                    pts.append(frame.pts)
        assert reordered > 20
        assert PictureType.B in kinds
        assert pts == sorted(pts) and len(pts) >= 30  # decoder output is in display order


def test_shared_pipeline_counts_connections(make_rtsp_camera):
    cam = make_rtsp_camera()
    with open_rtsp(cam.url) as a:
        a_keys: list[int] = []

        def read_a() -> None:
            for i, packet in enumerate(itertools.islice(packets(a), 130)):
                if packet.is_keyframe:
                    a_keys.append(i)

        reader = threading.Thread(target=read_a)
        reader.start()
        with open_rtsp(cam.url) as b:
            assert cam.wait_connections(2)
            # A joining client gets the running stream and waits for the next keyframe...
            first = [p.is_keyframe for p in itertools.islice(packets(b), 60)]
            assert True in first
        reader.join(10)
        # ...and does not disturb the GOP of the clients already watching.
        assert a_keys == [0, 50, 100]
    assert cam.wait_connections(0)
    assert cam.total_connections == 2


@pytest.mark.parametrize("method", ["basic", "digest"])
def test_auth(make_rtsp_camera, method):
    cam = make_rtsp_camera(user="admin", password="s3cr3t", auth_method=method)
    assert cam.url == f"rtsp://admin:s3cr3t@127.0.0.1:{cam.port}/cam"
    with open_rtsp(cam.url) as c:
        assert c.streams.video[0].codec_context.profile == "High"

    bad = cam.url.replace("s3cr3t", "wrongpw")
    with pytest.raises(av.error.HTTPUnauthorizedError) as err:
        open_rtsp(bad)
    assert err.value.strerror == "Server returned 401 Unauthorized (authorization failed)"
    assert "wrongpw" not in err.value.strerror
    # Gotcha: PyAV puts the whole URL, password included, in .filename and str(exc).
    assert err.value.filename == bad and "wrongpw" in str(err.value)

    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_rtsp(f"rtsp://127.0.0.1:{cam.port}/cam")
    with pytest.raises(av.error.HTTPNotFoundError) as err:
        open_rtsp(cam.url.replace("/cam", "/nope"))
    assert err.value.strerror == "Server returned 404 Not Found"


def test_kill_and_restart(make_rtsp_camera):
    cam: RtspCamera = make_rtsp_camera()
    c = open_rtsp(cam.url)
    assert next(packets(c)).is_keyframe
    cam.kill()
    assert cam.connections == 0
    # Gotcha: after the camera dies, demux just ends (no exception) once buffered packets run out.
    t0 = time.monotonic()
    assert sum(1 for _ in packets(c)) < 50
    assert time.monotonic() - t0 < 1
    c.close()
    with pytest.raises(av.error.ConnectionRefusedError):
        open_rtsp(cam.url)

    cam.restart()
    with open_rtsp(cam.url) as c:
        assert next(packets(c)).is_keyframe
        assert cam.connections == 1
    assert cam.total_connections == 2
