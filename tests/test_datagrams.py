"""DatagramSender against real loopback UDP sockets: GSO runs arrive as the datagrams."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from gateway.egress.datagrams import DatagramSender, gso_runs


@pytest.fixture
async def endpoints():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    yield transport, receiver
    transport.close()
    receiver.close()


def received(receiver: socket.socket, count: int) -> list[bytes]:
    return [receiver.recv(65536) for _ in range(count)]


# A keyframe's fragments: two sizes from one NAL unit, then a short one, then a
# single datagram, then more than one run can carry.
FRAMES = [
    [os.urandom(1300) for _ in range(3)] + [os.urandom(1299) for _ in range(4)],
    [os.urandom(1214) for _ in range(70)] + [os.urandom(90), os.urandom(400)],
]


@pytest.mark.parametrize("gso", [True, False])
@pytest.mark.parametrize("datagrams", FRAMES)
async def test_datagrams_arrive_whole_and_in_order(endpoints, datagrams, gso):
    transport, receiver = endpoints
    sender = DatagramSender(transport)
    sender.gso = gso
    for i, j in gso_runs([len(d) for d in datagrams]):  # a run: one size, one shorter last
        run = memoryview(b"".join(datagrams[i:j]))
        assert sender.send(run, len(datagrams[i]), receiver.getsockname())
    assert received(receiver, len(datagrams)) == datagrams
    assert sender.gso == gso  # this kernel takes GSO on loopback
    sender.close()
    transport.sendto(b"still open", receiver.getsockname())  # the loop's socket lives on
    assert received(receiver, 1) == [b"still open"]


def test_runs_are_equal_sizes_ended_by_at_most_one_shorter_and_fit_one_send():
    assert gso_runs([1300, 1300, 1299, 1299, 500, 1300]) == [(0, 3), (3, 5), (5, 6)]
    runs = gso_runs([1214] * 70)
    assert [j - i for i, j in runs] == [46, 24]  # 46 x (1214 + 64) bytes fit in 60 000
