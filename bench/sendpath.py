"""The fast send path alone, two gateway revisions side by side: CPU per packet and
how late each viewer gets each frame.

    .venv/bin/python bench/sendpath.py [--baseline REV] [--viewers 200] [--rounds 3]

It records a few seconds of the bench camera (720p25 H.264 High, 2 Mbit/s, 2 s GOP),
then, for each revision in turn (baseline, work tree, baseline, ...), starts a
process that fans those frames out at 25 fps to N viewers through that revision's
real `fan_out`/`ViewerFeed` and `RelaySender`, with real libsrtp (AES-GCM) and real
UDP sockets on loopback, received by a separate process. Only what aiortc would
supply is stood in for: the connected DTLS/ICE state (SenderInternals).

Per revision it reports the sender process's user and kernel CPU per packet sent
(getrusage; on loopback the kernel part includes delivering each datagram into the
receiver's socket) and, per frame, when each viewer's first and last packet arrived
after the fan-out began, split by keyframes and delta frames. Alternating the
revisions spreads other load on the machine over both.

`--record FRAMES.pkl` keeps the camera's frames; `--count FRAMES.pkl N` then runs the
work tree's fan-out (PYTHONPATH picks another revision) into an output that sends
nothing, unpaced, inside `functools.reduce`, for a deterministic count of user-space
instructions:

    valgrind --tool=callgrind --toggle-collect=functools_reduce \
        .venv/bin/python bench/sendpath.py --count FRAMES.pkl 200
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FPS = 25


# --- the orchestrator -------------------------------------------------------------


def record_frames(path: Path, seconds: float) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests"))
    import av
    from stage import CAMERA
    from support.camera import make_camera

    camera = make_camera(mount="main", **CAMERA)
    camera.start()
    try:
        container = av.open(camera.url, options={"rtsp_transport": "tcp"})
        frames = []
        for packet in container.demux(container.streams.video[0]):
            if packet.size and (frames or packet.is_keyframe):
                frames.append((bytes(packet), packet.is_keyframe))
            if len(frames) >= seconds * FPS:
                break
        container.close()
    finally:
        camera.stop()
    path.write_bytes(pickle.dumps(frames))


def export(rev: str, into: Path) -> Path:
    into.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "gateway"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare against")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0, help="of video per side")
    parser.add_argument("--rounds", type=int, default=3, help="baseline/work tree alternations")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sendpath-") as tmp:
        frames = Path(tmp) / "frames.pkl"
        record_frames(frames, args.seconds)
        sides = {args.baseline: export(args.baseline, Path(tmp) / "baseline"), "work tree": ROOT}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, src in sides.items():
                out = subprocess.run(
                    [sys.executable, __file__, "--side", str(frames), str(args.viewers)],
                    env={**os.environ, "PYTHONPATH": str(src)},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                results[name].append(json.loads(out))
                print(f"{name}: {json.dumps(results[name][-1])}", file=sys.stderr)
    summary = {name: combine(runs) for name, runs in results.items()}
    print(table(summary, args.viewers))
    if args.out:
        Path(args.out).write_text(json.dumps({"runs": results, "summary": summary}, indent=1))


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs of one side."""
    keys = runs[0].keys()
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}


def table(summary: dict[str, dict[str, Any]], viewers: int) -> str:
    rows = [
        f"| {viewers} viewers | µs per packet user / kernel | first packet p50 / p99 ms "
        "(keyframes p99, delta p99) | last packet p50 / p99 ms (keyframes p99, delta p99) |",
        "|---|---|---|---|",
    ]
    for name, s in summary.items():
        rows.append(
            f"| {name} | {s['user_us']} / {s['sys_us']} | {s['first_p50']} / {s['first_p99']} "
            f"({s['first_key_p99']}, {s['first_delta_p99']}) | {s['last_p50']} / "
            f"{s['last_p99']} ({s['last_key_p99']}, {s['last_delta_p99']}) |"
        )
    return "\n".join(rows)


# --- one side: the gateway revision on PYTHONPATH ---------------------------------


def payload_count(packed: Any) -> int:
    """Packets per viewer of a frame, whichever revision packed it."""
    return len(packed.payloads if hasattr(packed, "payloads") else packed[0].payloads)


def side(frames_path: str, viewers: int, count_only: bool = False) -> None:
    import multiprocessing

    import aioice.ice
    import av
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
    from aiortc.rtp import HeaderExtensionsMap
    from pylibsrtp import Policy, Session

    from gateway.egress import sender as sender_module
    from gateway.relay import feed as feed_module

    frames = pickle.loads(Path(frames_path).read_bytes())[: int(os.environ.get("FRAMES", "100000"))]
    if count_only:

        class Sink:  # an output that sends nothing: only user space is left to count
            transport = None

            def send(self, *args: Any) -> bool:
                return True

            def close(self) -> None:
                pass

        sender_module.output_for = lambda protocol: Sink()
        ports = [9] * viewers
    else:
        ready, results, finished = (
            multiprocessing.Queue(),
            multiprocessing.Queue(),
            multiprocessing.Event(),
        )
        receiver = multiprocessing.Process(target=receive, args=(viewers, ready, results, finished))
        receiver.start()
        ports = ready.get(timeout=30)

    extensions = HeaderExtensionsMap()
    extensions.configure(
        type(
            "Parameters",
            (),
            {
                "headerExtensions": [
                    RTCRtpHeaderExtensionParameters(
                        id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"
                    ),
                    RTCRtpHeaderExtensionParameters(
                        id=3,
                        uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                    ),
                ]
            },
        )()
    )

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> Any:
            return self.sock if name == "socket" else None

    class Pair:
        def __init__(self, sock: socket.socket, port: int) -> None:
            self.protocol = aioice.ice.StunProtocol(None)
            self.protocol.transport = Transport(sock)
            self.remote_addr = ("127.0.0.1", port)

    class Internals:  # what compat.SenderInternals reads from aiortc, connected
        def __init__(self, port: int, ssrc: int) -> None:
            key = os.urandom(28)
            self.session = Session(
                Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=7)
            )
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.setblocking(False)
            self.pair = Pair(self.sock, port)
            self.ssrc, self.mid, self.enabled = ssrc, "0", True
            self.extensions_map = extensions

        def srtp(self) -> Any:
            return self.session._srtp[0]

        def srtp_tag_bytes(self) -> int:
            return 16  # AES-128-GCM

        def nominated_pair(self) -> Any:
            return self.pair

        def record_sent(self, *args: Any) -> None:
            pass

    feeds = []
    for i, port in enumerate(ports):
        sender = sender_module.RelaySender.__new__(sender_module.RelaySender)
        sender._internals = Internals(port, 1000 + i)
        sender._payload_type = 102
        sender._prepare_header()
        sender._sent = deque(maxlen=sender_module.HISTORY_FRAMES)
        sender._sequence_number = i * 300  # some wrap within the run
        sender._timestamp_origin = 0  # every viewer's RTP time is the frame's: matched below
        sender._output = sender._pair = sender._remote_addr = None
        sender._tag_bytes = 16
        feed = feed_module.ViewerFeed("cam", 50)
        feed.attach(sender._send_frame)
        feeds.append(feed)
    fan_out = getattr(feed_module, "fan_out", None)

    started: dict[int, tuple[float, bool]] = {}
    packets = 0
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()

    def fan_out_all(*_: Any) -> None:
        nonlocal packets
        for n, (data, keyframe) in enumerate(frames):
            if not count_only:
                time.sleep(max(0.0, t0 + n / FPS - time.monotonic()))
            packet = av.Packet(data)
            packet.pts = n * (90000 // FPS)
            packet.time_base = Fraction(1, 90000)
            packet.is_keyframe = keyframe
            started[packet.pts] = (time.monotonic(), keyframe)
            if fan_out is not None:
                fan_out(packet, feeds)
            else:
                for feed in feeds:
                    feed.offer(packet)
            packets += payload_count(sender_module.FramePacker.pack(packet)) * viewers

    functools.reduce(fan_out_all, [None], None)  # callgrind counts inside reduce only
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    if count_only:
        print(
            json.dumps(
                {
                    "packets": packets,
                    "user_us": round(1e6 * (usage1.ru_utime - usage0.ru_utime) / packets, 2),
                }
            )
        )
        return
    time.sleep(0.3)  # the last packets' way through loopback
    finished.set()
    arrivals = results.get(timeout=60)
    receiver.terminate()
    lost = sum(f.frames_dropped for f in feeds)
    first_key, first_delta, last_key, last_delta = [], [], [], []
    for ts, first, last in arrivals:
        begun, keyframe = started.get(ts, (None, False))
        if begun is None:
            continue
        (first_key if keyframe else first_delta).append(1000 * (first - begun))
        (last_key if keyframe else last_delta).append(1000 * (last - begun))

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else -1

    first, last = first_key + first_delta, last_key + last_delta
    print(
        json.dumps(
            {
                "user_us": round(1e6 * (usage1.ru_utime - usage0.ru_utime) / packets, 2),
                "sys_us": round(1e6 * (usage1.ru_stime - usage0.ru_stime) / packets, 2),
                "frames_dropped": lost,
                "frames_seen": len(arrivals),
                "first_p50": pct(first, 0.5),
                "first_p99": pct(first, 0.99),
                "first_key_p99": pct(first_key, 0.99),
                "first_delta_p99": pct(first_delta, 0.99),
                "last_p50": pct(last, 0.5),
                "last_p99": pct(last, 0.99),
                "last_key_p99": pct(last_key, 0.99),
                "last_delta_p99": pct(last_delta, 0.99),
            }
        )
    )


def receive(viewers: int, ready: Any, results: Any, finished: Any) -> None:
    """The viewers' end: one socket each; per (viewer, RTP timestamp), when its first
    packet and its marked last packet arrived."""
    selector = selectors.DefaultSelector()
    sockets = []
    for i in range(viewers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)
        sockets.append(sock)
    ready.put([s.getsockname()[1] for s in sockets])
    first: dict[tuple[int, int], float] = {}
    done: list[tuple[int, float, float]] = []
    while True:
        events = selector.select(0.05)
        if not events and finished.is_set():
            break
        for key, _ in events:
            sock, i = key.fileobj, key.data
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                now = time.monotonic()
                ts = int.from_bytes(data[4:8], "big")
                begun = first.setdefault((i, ts), now)
                if data[1] & 0x80:
                    done.append((ts, begun, now))
                    del first[(i, ts)]
    results.put(done)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--record":
        record_frames(Path(sys.argv[2]), 8.0)
    elif len(sys.argv) > 1 and sys.argv[1] in ("--side", "--count"):
        side(sys.argv[2], int(sys.argv[3]), count_only=sys.argv[1] == "--count")
    else:
        main()
