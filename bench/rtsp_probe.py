"""A plain RTSP client that reads the camera directly, as the gateway does (PyAV, TCP).

Prints one line per frame: `<monotonic arrival> <pts at 90 kHz> <keyframe 0/1> <bytes>`.
bench/latency.py matches these frames with what a viewer receives through the gateway,
so the difference of arrival times is the latency the gateway adds (both sides pay
the same RTSP demuxing, which cancels out).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import av

CLOCK_RATE = 90_000


def main() -> int:
    url = sys.argv[1]
    # A light process; at nice -10 its arrival times stay exact on a busy machine.
    with contextlib.suppress(OSError):
        os.nice(-10)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    container = av.open(
        url,
        options={"rtsp_transport": "tcp", "probesize": "32", "analyzeduration": "0"},
        timeout=(5.0, 5.0),
    )
    stream = container.streams.video[0]
    print("READY", flush=True)
    out = sys.stdout
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        now = time.monotonic()
        pts = int(packet.pts * packet.time_base * CLOCK_RATE)
        out.write(f"{now:.6f} {pts} {int(packet.is_keyframe)} {packet.size}\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
