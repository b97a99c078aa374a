"""Benchmark viewer worker: many aiortc WHEP viewers in one asyncio loop, one process.

Started by bench/processes.py (WorkerProc) as
`.venv/bin/python bench/viewers.py --gateway URL --token JWT`.
It is driven by JSON lines on stdin; it answers each with one JSON line on stdout
carrying the same "id". Times are `time.monotonic()`, which is one clock for every
process on the machine, so the orchestrator can compare them with its own.

Two kinds of viewer:
- "count": counts RTP packets and frames (marker bit) straight from the UDP socket,
  before SRTP, RTP parsing, the jitter buffer and the decoder. The RTP header is
  not encrypted by SRTP, so marker bit, sequence number and timestamp are readable.
  This spares the 2 cores: a 200-viewer run would otherwise spend them decoding.
- "decode": a normal aiortc viewer; `track.recv()` returns decoded frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import aioice.ice
import av
import av.logging
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gateway.egress.compat import register_h264_profile

# aiortc offers only Baseline H.264; a browser also offers Main and High.
for _plid in ("4d001f", "640c1f", "64001f"):
    register_h264_profile(_plid)

# --- decoder complaints: a corrupt or incomplete picture makes FFmpeg's h264 decoder warn ---


class _Complaints(logging.Handler):
    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("libav", "aiortc")):
            _Complaints.count += 1


av.logging.set_level(av.logging.WARNING)  # FFmpeg's messages reach Python's logging
logging.getLogger().addHandler(_Complaints(logging.WARNING))

# --- counting RTP below aiortc ------------------------------------------------------

_datagram_received = aioice.ice.StunProtocol.datagram_received


def _fast_datagram_received(self: Any, data: bytes, addr: Any) -> None:
    counter = getattr(self.receiver, "bench_counter", None)
    # RTP (first byte 128..191) that is not RTCP (payload type 192..208 in byte 1).
    if counter is not None and 127 < data[0] < 192 and not 191 < data[1] < 209:
        counter.rtp(data)
        return
    _datagram_received(self, data, addr)


aioice.ice.StunProtocol.datagram_received = _fast_datagram_received  # type: ignore[method-assign]


class FrameCounter:
    """Frames are counted at their last packet (marker bit), per RTP timestamp."""

    __slots__ = (
        "_seq",
        "_ts",
        "_ts_bytes",
        "_ts_first_at",
        "_ts_packets",
        "bytes",
        "first_frame_at",
        "first_packet_at",
        "frames",
        "log",
        "lost",
        "packets",
    )

    def __init__(self, log: bool = False) -> None:
        self.packets = 0
        self.frames = 0
        self.bytes = 0
        self.lost = 0
        self.first_packet_at: float | None = None
        self.first_frame_at: float | None = None
        self._seq: int | None = None
        self._ts: int | None = None
        self._ts_first_at = 0.0
        self._ts_bytes = 0
        self._ts_packets = 0
        # (first packet arrival, marker packet arrival, RTP timestamp, bytes, packets)
        self.log: list[tuple[float, float, int, int, int]] | None = [] if log else None

    def rtp(self, data: bytes) -> None:
        now = time.monotonic()
        seq = (data[2] << 8) | data[3]
        if self._seq is not None:
            gap = (seq - self._seq) & 0xFFFF
            if 1 < gap < 0x8000:
                self.lost += gap - 1
        self._seq = seq
        self.packets += 1
        size = len(data)
        self.bytes += size
        if self.first_packet_at is None:
            self.first_packet_at = now
        ts = int.from_bytes(data[4:8], "big")
        if ts != self._ts:
            self._ts = ts
            self._ts_first_at = now
            self._ts_bytes = 0
            self._ts_packets = 0
        self._ts_bytes += size
        self._ts_packets += 1
        if data[1] & 0x80:  # marker: last packet of the frame
            self.frames += 1
            if self.first_frame_at is None:
                self.first_frame_at = now
            if self.log is not None:
                self.log.append((self._ts_first_at, now, ts, self._ts_bytes, self._ts_packets))


# --- one viewer -------------------------------------------------------------------


class BenchViewer:
    def __init__(
        self,
        worker: Worker,
        kind: str,
        log: bool = False,
        codec: str | None = None,
        camera: str | None = None,
    ) -> None:
        self.worker = worker
        self.kind = kind
        self.whep_url = worker.whep_url if camera is None else f"{worker.base_url}/whep/{camera}"
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceiver = self.pc.addTransceiver("video", direction="recvonly")
        if codec == "vp8":  # as Firefox without OpenH264: no H.264 in the offer
            self.transceiver.setCodecPreferences(
                [
                    c
                    for c in RTCRtpReceiver.getCapabilities("video").codecs
                    if c.mimeType in ("video/VP8", "video/rtx")
                ]
            )
        self.counter = FrameCounter(log) if kind == "count" else None
        self.session_url: str | None = None
        self.post_at = 0.0
        self.answer_at = 0.0
        self.connected_at: float | None = None
        self.closed_at: float | None = None
        self.decoded = 0
        self.first_decoded_at: float | None = None
        self.decoded_log: list[tuple[float, int]] = []  # (arrival, pts) of first frames
        self.width = 0
        self.height = 0
        self.left = False
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self._hook()

    def _connection(self) -> Any:
        return self.transceiver.receiver.transport.transport.iceGatherer._connection

    def _hook(self) -> None:
        if self.counter is not None:
            self._connection().bench_counter = self.counter

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
        elif state in ("closed", "failed") and self.closed_at is None:
            self.closed_at = time.monotonic()

    def _on_dtls_state(self) -> None:
        if self.transceiver.receiver.transport.state in ("closed", "failed") and (
            self.closed_at is None
        ):
            self.closed_at = time.monotonic()

    def _on_track(self, track: Any) -> None:
        if self.kind == "decode":
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                self.decoded += 1
                if self.first_decoded_at is None:
                    self.first_decoded_at = now
                    self.width, self.height = frame.width, frame.height
                if len(self.decoded_log) < 100:
                    self.decoded_log.append((now, int(frame.pts or 0)))

    @property
    def frames(self) -> int:
        return self.counter.frames if self.counter is not None else self.decoded

    @property
    def first_frame_at(self) -> float | None:
        return self.counter.first_frame_at if self.counter is not None else self.first_decoded_at

    async def connect(self) -> tuple[int, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp", **self.worker.auth}
        self.post_at = time.monotonic()
        async with self.worker.http.post(
            self.whep_url, data=self.pc.localDescription.sdp, headers=headers
        ) as response:
            body = await response.text()
            self.answer_at = time.monotonic()
            if response.status != 201:
                return response.status, body[:200]
            self.session_url = self.worker.base_url + response.headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        self._hook()  # the bundle may have replaced the transport
        self.transceiver.receiver.transport.on("statechange", self._on_dtls_state)
        return 201, ""

    async def leave(self) -> float:
        """DELETE the session, then close the peer connection; returns when DELETE was sent."""
        self.left = True
        sent = time.monotonic()
        if self.session_url is not None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with self.worker.http.delete(self.session_url, headers=self.worker.auth):
                    pass
        await self.close()
        return sent

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()

    def go_silent(self) -> None:
        """As a tablet out of coverage: the sockets go quiet, no DTLS close, no DELETE;
        the gateway learns only through ICE consent."""
        self.left = True
        for protocol in self._connection()._protocols:
            protocol.transport.close()

    def stats(self) -> dict[str, Any]:
        c = self.counter
        return {
            "kind": self.kind,
            "frames": self.frames,
            "packets": c.packets if c else None,
            "lost": c.lost if c else None,
            "bytes": c.bytes if c else None,
            "connected": self.connected_at is not None and self.closed_at is None,
            "state": self.pc.connectionState,
        }


# --- the worker -------------------------------------------------------------------


class Worker:
    def __init__(self, base_url: str, camera: str, token: str) -> None:
        self.base_url = base_url
        self.camera = camera
        self.whep_url = f"{base_url}/whep/{camera}"
        self.auth = {"Authorization": f"Bearer {token}"}
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.viewers: list[BenchViewer] = []

    def set_camera(self, camera: str) -> None:
        self.camera = camera
        self.whep_url = f"{self.base_url}/whep/{camera}"

    async def join_one(
        self, kind: str, log: bool = False, codec: str | None = None
    ) -> tuple[BenchViewer | None, str]:
        viewer = BenchViewer(self, kind, log, codec)
        try:
            status, error = await viewer.connect()
        except Exception as exc:  # report, never crash the worker
            await viewer.close()
            return None, f"{type(exc).__name__}: {exc}"
        if status != 201:
            await viewer.close()
            return None, f"{status} {error}"
        self.viewers.append(viewer)
        return viewer, ""

    # Commands ----------------------------------------------------------------------

    async def cmd_join(
        self,
        n: int,
        kind: str = "count",
        batch: int = 10,
        pause: float = 0.3,
        log: bool = False,
        camera: str | None = None,
        wait_frames: float = 0.0,
        codec: str | None = None,
    ) -> dict[str, Any]:
        if camera:
            self.set_camera(camera)
        joined, errors, sessions = 0, [], []
        fresh: list[BenchViewer] = []
        for start in range(0, n, batch):
            results = await asyncio.gather(
                *(self.join_one(kind, log, codec) for _ in range(min(batch, n - start)))
            )
            for viewer, error in results:
                if viewer is None:
                    errors.append(error)
                else:
                    joined += 1
                    fresh.append(viewer)
                    sessions.append(viewer.session_url)
            if start + batch < n:
                await asyncio.sleep(pause)
        if wait_frames:
            deadline = time.monotonic() + wait_frames
            while time.monotonic() < deadline and any(v.frames == 0 for v in fresh):
                await asyncio.sleep(0.05)
        return {
            "joined": joined,
            "errors": errors[:5],
            "failed": len(errors),
            "sessions": sessions,
            "without_frames": sum(1 for v in fresh if v.frames == 0),
            "ttff": [v.first_frame_at - v.post_at for v in fresh if v.first_frame_at is not None],
        }

    async def cmd_stats(self) -> dict[str, Any]:
        live = [v for v in self.viewers if not v.left]
        return {"t": time.monotonic(), "viewers": [v.stats() for v in live]}

    async def cmd_log(self, since: float = 0.0) -> dict[str, Any]:
        """Per-frame logs of the logging viewers, frames completed at or after `since`."""
        logs = [
            [f for f in v.counter.log if f[1] >= since]
            for v in self.viewers
            if v.counter is not None and v.counter.log is not None and not v.left
        ]
        return {"viewers": logs}

    async def cmd_leave(self, n: int | None = None, concurrency: int = 20) -> dict[str, Any]:
        live = [v for v in self.viewers if not v.left]
        chosen = live if n is None else live[:n]
        sent: list[float] = []
        for start in range(0, len(chosen), concurrency):
            sent += await asyncio.gather(*(v.leave() for v in chosen[start : start + concurrency]))
        self.viewers = [v for v in self.viewers if not v.left]
        return {"left": len(chosen), "last_delete_sent": max(sent) if sent else None}

    async def cmd_closed_at(self, session: str, timeout: float = 10.0) -> dict[str, Any]:
        viewer = next((v for v in self.viewers if v.session_url == session), None)
        if viewer is None:
            return {"closed_at": None, "error": "unknown session"}
        deadline = time.monotonic() + timeout
        while viewer.closed_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        closed_at = viewer.closed_at
        viewer.left = True
        await viewer.close()
        self.viewers.remove(viewer)
        return {"closed_at": closed_at}

    async def cmd_ttff(
        self,
        n: int,
        kind: str = "decode",
        min_delay: float = 0.0,
        max_delay: float = 2.0,
        hold: float = 0.5,
        timeout: float = 10.0,
        seed: int = 5,
    ) -> dict[str, Any]:
        """n joins one after another: join, wait for the first frame, hold, DELETE."""
        rng = random.Random(seed)
        joins = []
        for _ in range(n):
            await asyncio.sleep(rng.uniform(min_delay, max_delay))
            joins.append(await self._one_join(kind, hold, timeout))
        return {"joins": joins}

    async def _one_join(self, kind: str, hold: float, timeout: float) -> dict[str, Any]:
        complaints = _Complaints.count
        viewer, error = await self.join_one(kind)
        if viewer is None:
            return {"error": error}
        deadline = time.monotonic() + timeout
        while viewer.first_frame_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        first = viewer.first_frame_at
        result: dict[str, Any] = {
            "answer_s": viewer.answer_at - viewer.post_at,
            "connected_s": (viewer.connected_at - viewer.post_at) if viewer.connected_at else None,
            "ttff_s": (first - viewer.post_at) if first is not None else None,
        }
        if first is not None and hold > 0:
            await asyncio.sleep(hold)
            result["frames_in_hold"] = viewer.frames
            result["hold_s"] = hold
            result["size"] = [viewer.width, viewer.height]
            log = viewer.decoded_log
            # The live picture: the first frame followed by a real frame interval (>= 20 ms
            # of RTP time). Frames before it are a replay squeezed into a burst.
            for i in range(len(log) - 1):
                if log[i + 1][1] - log[i][1] >= 1800:
                    result["live_s"] = log[i][0] - viewer.post_at
                    result["replayed_frames"] = i
                    break
            if len(log) >= 2:
                # How far the media clock ran ahead of the wall clock (a fast-forward burst).
                t0, p0 = log[0]
                result["media_ahead_ms"] = max(
                    ((p - p0) / 90.0) - (t - t0) * 1000.0 for t, p in log
                )
        await viewer.leave()
        self.viewers.remove(viewer)
        result["decoder_warnings"] = _Complaints.count - complaints
        return result

    # The soak: viewers join and leave for minutes ----------------------------------

    async def cmd_churn(
        self,
        seconds: float,
        in_flight: int,
        hold: float,
        camera: str,
        waves: bool = False,
        pause: float = 0.0,
    ) -> dict[str, Any]:
        """Start churning in the background until `seconds` have passed: `in_flight`
        viewers at a time each join `camera`, wait for a frame, watch `hold` s and
        leave, 7 in 10 with DELETE, 2 closing their connection, 1 going silent. With
        `waves`, they go together and the camera rests `pause` s between waves (its
        pull stops after the gateway's linger, and starts again)."""
        self.churned = {"started": 0}
        deadline = time.monotonic() + seconds
        self._silent: list[asyncio.Task[None]] = []
        if waves:
            self._churning = asyncio.ensure_future(
                self._waves(deadline, in_flight, hold, camera, pause)
            )
        else:
            lanes = [self._lane(deadline, hold, camera) for _ in range(in_flight)]
            self._churning = asyncio.ensure_future(asyncio.gather(*lanes))
        return {"started": True}

    async def cmd_churn_status(self) -> dict[str, Any]:
        return {"counts": dict(self.churned)}

    async def cmd_churn_wait(self) -> dict[str, Any]:
        """Until the churn is over and every silent viewer was let go."""
        await self._churning
        await asyncio.gather(*self._silent)
        return {"counts": dict(self.churned)}

    async def _lane(self, deadline: float, hold: float, camera: str) -> None:
        while time.monotonic() < deadline:
            await self._cycle(hold, camera)

    async def _waves(
        self, deadline: float, size: int, hold: float, camera: str, pause: float
    ) -> None:
        while time.monotonic() < deadline:
            await asyncio.gather(*(self._cycle(hold, camera) for _ in range(size)))
            await asyncio.sleep(pause)

    async def _cycle(self, hold: float, camera: str) -> None:
        counts = self.churned
        number = counts["started"]
        counts["started"] += 1
        viewer = BenchViewer(self, "count", camera=camera)
        try:
            status, _ = await viewer.connect()
        except Exception as exc:  # counted, never the end of the churn
            counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1
            await viewer.close()
            return
        if status != 201:
            counts[f"status {status}"] = counts.get(f"status {status}", 0) + 1
            await viewer.close()
            await asyncio.sleep(1.0)
            return
        deadline = time.monotonic() + 15
        while viewer.frames == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        key = "frame" if viewer.frames else "no frame"
        counts[key] = counts.get(key, 0) + 1
        await asyncio.sleep(hold)
        how = {0: "silent", 3: "close", 7: "close"}.get(number % 10, "delete")
        counts[how] = counts.get(how, 0) + 1
        if how == "delete":
            await viewer.leave()
        elif how == "close":
            viewer.left = True
            await viewer.close()
        else:
            viewer.go_silent()
            self._silent.append(asyncio.ensure_future(self._let_go(viewer)))

    async def _let_go(self, viewer: BenchViewer) -> None:
        """A silent viewer's own side is freed once the gateway has surely noticed."""
        await asyncio.sleep(45)
        await viewer.close()

    async def cmd_ping(self) -> dict[str, Any]:
        return {"t": time.monotonic()}

    async def close(self) -> None:
        await asyncio.gather(*(v.leave() for v in self.viewers if not v.left))
        await self.http.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--camera", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument(
        "--priority",
        action="store_true",
        help="run at nice -10: arrival times of a probe stay exact",
    )
    args = parser.parse_args()
    if args.priority:
        with contextlib.suppress(OSError):
            os.nice(-10)
    worker = Worker(args.gateway, args.camera, args.token)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "t": time.monotonic()})
    try:
        while line := await reader.readline():
            request = json.loads(line)
            command = request.pop("cmd")
            rid = request.pop("id")
            if command == "quit":
                break
            try:
                result = await getattr(worker, f"cmd_{command}")(**request)
                reply({"id": rid, **result})
            except Exception as exc:
                reply({"id": rid, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.close(), 20)
        reply({"bye": True})


if __name__ == "__main__":
    asyncio.run(main())
