"""DatagramSender: a viewer's SRTP packets out of its ICE socket, batched by UDP GSO.

After SRTP is done in user space, most of what a packet costs is the kernel's
per-datagram send path (bench/results.md). With UDP generic segmentation offload (Linux 4.18+,
`UDP_SEGMENT`), one `sendmsg` carries a run of equal-sized datagrams and the
kernel splits it late: the route, headers and system call are paid once per run.
A frame's FU-A fragments come in at most two sizes (aiortc spreads a NAL unit's
remainder over its first fragments), so a keyframe goes out in a few calls.

Where GSO is refused (a device without checksum offload, an old kernel), this
viewer falls back to one datagram per call.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any, Protocol

from .compat import is_udp_socket_protocol

UDP_SEGMENT = 103  # linux/udp.h; Python's socket module does not name it
_GSO_SIZE = struct.Struct("=H")
# The whole run is one UDP datagram to the kernel: under 64 KiB, and the kernel
# takes at most 64 segments (UDP_MAX_SEGMENTS).
MAX_RUN_BYTES = 60_000
MAX_RUN_SEGMENTS = 64


MAX_OVERHEAD = 64  # what a viewer adds to each payload: RTP header, extensions, SRTP tag
# What the event loop may hold for one viewer before its frames are skipped:
# about one second of a 2 Mbit/s camera.
MAX_UNSENT_BYTES = 256 * 1024


def gso_runs(sizes: list[int]) -> list[tuple[int, int]]:
    """Index ranges [i, j) of datagrams that one GSO send can carry.

    A run is datagrams of one size, with at most one shorter one ending it. Every
    viewer adds the same header and tag to a payload, so the runs follow from the
    payload sizes and are worked out once per frame for all viewers.
    """
    runs, count, i = [], len(sizes), 0
    while i < count:
        size = sizes[i]
        j, total = i + 1, size + MAX_OVERHEAD
        while j < count and j - i < MAX_RUN_SEGMENTS:
            n = sizes[j]
            if n > size or total + n + MAX_OVERHEAD > MAX_RUN_BYTES:
                break
            j, total = j + 1, total + n + MAX_OVERHEAD
            if n < size:
                break
        runs.append((i, j))
        i = j
    return runs


class Output(Protocol):
    """A viewer's way out: False from `send` means the datagrams were not sent."""

    transport: Any

    def send(self, data: memoryview, segment: int, addr: Any) -> bool: ...

    def close(self) -> None: ...


def output_for(protocol: Any) -> Output:
    """How to send on this ICE pair: its UDP socket directly, or else the event loop."""
    transport = protocol.transport
    if is_udp_socket_protocol(protocol):
        return DatagramSender(transport)
    return EventLoopSender(transport)  # e.g. a TURN relay: aioice wraps the datagrams


class EventLoopSender:
    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def send(self, data: memoryview, segment: int, addr: Any) -> bool:
        # sendto never blocks: on EAGAIN the event loop queues in memory. A viewer
        # that far behind skips the frame rather than growing the queue.
        if self.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            return False
        for i in range(0, len(data), segment):
            self.transport.sendto(bytes(data[i : i + segment]), addr)  # data is reused
        return True

    def close(self) -> None:
        pass


class DatagramSender:
    """Sends on a duplicate of the ICE pair's socket; `close` when the viewer ends."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport  # the aioice pair's datagram transport it mirrors
        fd = transport.get_extra_info("socket").fileno()
        # The duplicate shares the socket (and its non-blocking flag) with the event loop.
        self._socket = socket.socket(fileno=os.dup(fd))
        self.gso = True

    def send(self, data: memoryview, segment: int, addr: Any) -> bool:
        """Send `data` as datagrams of `segment` bytes (the last may be shorter), in one
        GSO call where the kernel takes it; False if the kernel refused.

        UDP makes no promise, so a full buffer or a passing network error (an ICMP
        error reported on the socket, a route going away) costs this frame, not
        the viewer's stream.
        """
        sock = self._socket
        try:
            if len(data) <= segment:
                sock.sendto(data, addr)
            elif not (self.gso and self._send_run(data, segment, addr)):
                for i in range(0, len(data), segment):  # GSO refused
                    sock.sendto(data[i : i + segment], addr)
        except OSError:
            return False
        return True

    def _send_run(self, data: memoryview, segment: int, addr: Any) -> bool:
        try:
            self._socket.sendmsg(
                [data], [(socket.SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(segment))], 0, addr
            )
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                raise
            self.gso = False
            return False
        return True

    def close(self) -> None:
        self._socket.close()
