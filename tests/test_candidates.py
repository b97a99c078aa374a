"""Which addresses the gateway announces, and which it will never contact (issue 10,
item 7): a leg in the police network must not appear in an answer, and a viewer's
candidate must not make the gateway send ICE checks into the camera network."""

from __future__ import annotations

import asyncio
import ipaddress

import aioice.ice
import pytest
from support.gateway import camera_entry, settings_for
from support.viewer import offer_sdp
from support.waiting import until

from gateway.config import ConfigError, parse_settings
from gateway.egress import compat
from gateway.signaling import CandidatePolicy, parse_offer


def candidate(ip: str) -> str:
    return f"a=candidate:7 1 udp 2122260223 {ip} 5000 typ host"


async def test_a_denied_network_is_never_contacted():
    policy = CandidatePolicy(
        (), [ipaddress.ip_network("10.20.0.0/16")], [ipaddress.ip_network("10.0.0.0/8")]
    )
    offer = (await offer_sdp()).replace(
        "a=end-of-candidates",
        candidate("10.20.30.40") + "\r\n" + candidate("8.8.4.4") + "\r\na=end-of-candidates",
    )
    text, _ = parse_offer(offer.encode(), policy)
    assert "10.20.30.40" not in text and "8.8.4.4" in text
    assert not policy.allows("10.20.1.1") and policy.allows("10.21.1.1")


@pytest.mark.parametrize(
    ("address", "checked"),
    [
        ("8.8.4.4", True),  # public
        ("2404:6800:4003::1", True),
        ("127.0.0.9", True),  # loopback: a viewer network by default
        ("::1", True),
        ("192.168.1.20", False),  # private, not listed as a viewer network
        ("10.1.2.3", False),
        ("100.64.0.9", False),  # carrier-grade NAT: nowhere a check arrives
        ("224.0.0.251", False),  # multicast
        ("255.255.255.255", False),
        ("169.254.9.9", False),  # link-local
        ("fe80::1", False),
        ("0.0.0.0", False),
        ("198.51.100.9", False),  # documentation
        ("::ffff:10.1.2.3", False),  # an IPv4 address in IPv6 clothes
        ("abcd-1234.local", False),  # mDNS: never resolved
        ("police-nvr.example.org", False),  # a name could lead anywhere
        ("8.8.8.200", False),  # public, but in a camera's /24 (see below)
    ],
)
def test_only_addresses_a_viewer_could_be_on_are_checked(address, checked):
    """Safe defaults (issue 27): with `deny_networks` empty, the cameras' networks
    (learnt from the inventory's hosts) and every private range not listed in
    `viewer_networks` are still never checked."""
    policy = CandidatePolicy(["8.8.8.7", "camera.example.org"])
    assert policy.allows(address) is checked


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("deny_networks", ["10.0.0.0/8", "10.0.0.1/8"], "entry 1 '10.0.0.1/8' is not a network"),
        ("announce_addresses", ["gateway.example.org"], "entry 0 'gateway.example.org'"),
    ],
)
def test_webrtc_address_settings_are_checked(key, value, words):
    data = {"auth": {"secret": "x" * 32}, "cameras": [camera_entry("c", "demo:testsrc")]}
    with pytest.raises(ConfigError, match=f"webrtc.{key}: {words}"):
        parse_settings({**data, "webrtc": {key: value}}, {})


async def announced_by(start_gateway, addresses: list[str]) -> set[str]:
    settings = settings_for(
        [camera_entry("cam", "demo:testsrc", demo_size="160x120")],
        webrtc={"announce_addresses": addresses},
    )
    gateway = await start_gateway(settings)
    viewer = gateway.viewer("cam")
    assert (await viewer.connect(gateway.http)).status == 201
    await viewer.close(gateway.http)
    return {
        line.split()[4] for line in viewer.answer.splitlines() if line.startswith("a=candidate")
    }


async def test_answers_announce_only_the_configured_addresses(start_gateway):
    everything = compat._host_addresses(True, False)
    if not everything:
        pytest.skip("this host has no address but loopback")
    try:
        assert await announced_by(start_gateway, [everything[0]]) == {everything[0]}
        # An address this host does not have: none of its own is announced.
        assert not set(everything) & await announced_by(start_gateway, ["198.51.100.9"])
    finally:
        compat.announce_only(())  # every address again, for the tests after this one
    assert aioice.ice.get_host_addresses(True, False) == everything


class Listener(asyncio.DatagramProtocol):
    """A UDP socket at a candidate's address that counts the ICE checks reaching it."""

    def __init__(self) -> None:
        self.checks = 0
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.checks += data[:2] == b"\x00\x01"  # a STUN binding request


async def test_a_viewer_candidate_in_a_denied_network_is_never_contacted(start_gateway):
    """`[webrtc] deny_networks` reaches the candidate policy of a running gateway: a
    trickled candidate inside a denied network gets no ICE check, while one just
    outside it gets one (so a check would have been seen)."""
    loop = asyncio.get_running_loop()
    listeners = {}
    for ip in ("127.0.0.3", "127.0.0.4"):
        _, listeners[ip] = await loop.create_datagram_endpoint(Listener, local_addr=(ip, 0))
    ports = {ip: lst.transport.get_extra_info("sockname")[1] for ip, lst in listeners.items()}
    settings = settings_for(
        [camera_entry("cam", "demo:testsrc", demo_size="160x120")],
        webrtc={"deny_networks": ["127.0.0.3/32"]},
    )
    gateway = await start_gateway(settings)
    # It never checks first: until its own candidates come, only the decoys are tried.
    viewer = gateway.viewer("cam", trickle=True, answer_candidates=False)
    assert (await viewer.connect(gateway.http)).status == 201
    decoys = [
        f"a=candidate:{n} 1 udp 2130706431 {ip} {ports[ip]} typ host"
        for n, ip in enumerate(listeners, 1)
    ]
    assert (await viewer.patch(gateway.http, decoys)).status == 204
    await until(lambda: listeners["127.0.0.4"].checks > 0, timeout=10, what="a check outside")
    assert (await viewer.patch(gateway.http, viewer.candidates)).status == 204
    assert await viewer.wait_frames(3)
    assert listeners["127.0.0.3"].checks == 0, "an ICE check went into a denied network"
    await viewer.close(gateway.http)
    for listener in listeners.values():
        listener.transport.close()


async def test_a_viewer_whose_candidates_are_all_left_out_connects_by_its_own_checks(
    start_gateway,
):
    """A viewer on a private network that is not a viewer network: none of its
    candidates is checked, but its own checks reach the gateway and are answered
    (peer-reflexive). Its offer's end of candidates must not make the gateway give
    up with nothing left to check."""
    settings = settings_for(
        [camera_entry("cam", "demo:testsrc", demo_size="160x120")],
        webrtc={"viewer_networks": []},  # not even this host's own addresses
    )
    gateway = await start_gateway(settings)
    viewer = gateway.viewer("cam")
    assert (await viewer.connect(gateway.http)).status == 201
    assert "a=end-of-candidates" in viewer.offer
    assert await viewer.wait_frames(5)
    await viewer.close(gateway.http)
