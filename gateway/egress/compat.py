"""Every private name of aiortc, aioice and pylibsrtp the gateway uses, and every patch.

The gateway keeps aiortc for ICE, DTLS, RTCP and NACK, and sends relayed media
itself (sender.py). That needs a few of these libraries' internals. They all sit
here, so a library upgrade that moves one fails loudly in one place: `install()`
runs once when the gateway starts, applies the patches and checks every name
(setup.cfg pins the versions this was verified with).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Iterable
from itertools import repeat
from typing import Any

import aioice.ice
import aiortc.rate as aiortc_rate
import aiortc.rtcrtpreceiver as aiortc_rtcrtpreceiver
import aiortc.rtcrtpsender as aiortc_rtcrtpsender
from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpSender, rtp, sdp
from aiortc import codecs as aiortc_codecs
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate, RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.utils import random32
from OpenSSL import SSL
from pylibsrtp import Error as SrtpError
from pylibsrtp._binding import ffi, lib

__all__ = [
    "SEND_BUFFER_BYTES",
    "SEND_PACKETS_MAX",
    "SEND_VIEW",
    "SRTP_TAG_MAX",
    "CompatError",
    "HookedSender",
    "SenderInternals",
    "announce_only",
    "ice_still_connected",
    "install",
    "is_udp_socket_protocol",
    "protect_many",
    "random32",
    "random_sequence_number",
    "register_h264_profile",
    "send_buffer_slots",
    "send_with",
    "transceiver_codecs",
]


class CompatError(RuntimeError):
    """A library internal the gateway relies on is missing or changed."""


# --- patches ------------------------------------------------------------------


def _patch_payload_types() -> None:
    # Chromium also numbers its dynamic payload types from 35 to 63 (unassigned in
    # RFC 3551). aiortc would answer such a codec with its own number, which the
    # browser never offered, and the browser would drop every packet.
    rtp.DYNAMIC_PAYLOAD_TYPES = range(35, 128)  # type: ignore[misc]


class _EstimatorOnFirstPacket:
    """aiortc's receive-side bitrate estimator, built when the first RTP packet arrives.

    aiortc gives every transceiver a receiver, and every video receiver a
    RemoteBitrateEstimator of 1,000 rate buckets: 95 KiB per viewer (tracemalloc,
    bench/results.md), a quarter of a viewer's memory. The gateway's transceivers
    only send, so their receivers never get a packet and the estimator is never used.
    """

    __slots__ = ("_estimator",)

    def __init__(self) -> None:
        self._estimator: aiortc_rate.RemoteBitrateEstimator | None = None

    def add(self, **packet: Any) -> Any:
        if self._estimator is None:
            self._estimator = aiortc_rate.RemoteBitrateEstimator()
        return self._estimator.add(**packet)


def _patch_receiver_estimator() -> None:
    aiortc_rtcrtpreceiver.RemoteBitrateEstimator = _EstimatorOnFirstPacket  # type: ignore[misc]


_create_ssl_context = RTCCertificate._create_ssl_context


def _ssl_context_releasing_buffers(self: RTCCertificate, *args: Any, **kwargs: Any) -> Any:
    """aiortc's DTLS context, with OpenSSL's record buffers freed while idle.

    After the handshake a viewer's DTLS carries no media (SRTP keys are exported,
    media goes around it), yet OpenSSL would keep its read and write buffers
    (about 34 KiB) for the life of the connection.
    """
    context = _create_ssl_context(self, *args, **kwargs)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    return context


def _patch_dtls_buffers() -> None:
    RTCCertificate._create_ssl_context = _ssl_context_releasing_buffers  # type: ignore[method-assign]


def _patch_consent() -> None:
    """Notice a vanished viewer within about 5 s instead of 30 s.

    RFC 7675 lets consent lapse after 30 s of silence (aioice: 6 checks, 5 s apart),
    and a vanished tablet would hold a camera pull that long. Check every second and
    give up after 4 misses. aioice reads module globals, so this applies to every
    peer connection in the process: the gateway sets it when it starts, never on
    import (bench and test viewers import this package and keep aioice's defaults).
    """
    aioice.ice.CONSENT_INTERVAL = 1
    aioice.ice.CONSENT_FAILURES = 4


_announced: frozenset[str] = frozenset()  # empty: every host address
_host_addresses = aioice.ice.get_host_addresses


def _announced_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _host_addresses(use_ipv4, use_ipv6)
    return [a for a in addresses if a in _announced] if _announced else addresses


def announce_only(addresses: Iterable[str]) -> None:
    """Answers carry host candidates of these addresses only (`[webrtc]
    announce_addresses`); none given: every address of the host. aioice gathers
    them through its module function, so it is patched here, once."""
    global _announced
    _announced = frozenset(addresses)
    aioice.ice.get_host_addresses = _announced_host_addresses


def _h264_parameters(profile_level_id: str) -> dict[str, str | int | None]:
    return {
        "level-asymmetry-allowed": "1",
        "packetization-mode": "1",
        "profile-level-id": profile_level_id,
    }


def h264_profile(profile_level_id: str) -> sdp.H264Profile | None:
    try:
        return sdp.parse_h264_profile_level_id(profile_level_id)[0]
    except ValueError:
        return None


def register_h264_profile(profile_level_id: str) -> RTCRtpCodecCapability:
    """The aiortc codec that negotiates this H.264 profile, added to aiortc's codec
    table if aiortc lacks it.

    aiortc only knows Constrained Baseline and Baseline; a High-profile camera
    must be described as what it is, or browsers may refuse to decode it.
    aiortc matches a viewer's codec to the first local codec of the same
    profile, so one entry per profile is used whatever its level.
    """
    profile = h264_profile(profile_level_id)
    codecs = aiortc_codecs.CODECS["video"]
    h264 = [c for c in codecs if c.mimeType == "video/H264"]
    existing = next(
        (c for c in h264 if h264_profile(str(c.parameters.get("profile-level-id"))) == profile),
        None,
    )
    if existing is None:
        used = {c.payloadType for c in codecs}
        pt = next(p for p in range(96, 128, 2) if p not in used and p + 1 not in used)
        existing = copy.deepcopy(h264[0])
        existing.payloadType, existing.parameters = pt, _h264_parameters(profile_level_id)
        rtx = RTCRtpCodecParameters(
            mimeType="video/rtx", clockRate=90000, payloadType=pt + 1, parameters={"apt": pt}
        )
        codecs += [existing, rtx]
    return RTCRtpCodecCapability(
        mimeType="video/H264", clockRate=90000, parameters=dict(existing.parameters)
    )


def transceiver_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The negotiated codecs aiortc answers with (the transceiver's own copies)."""
    return transceiver._codecs


# --- the sender's internals ------------------------------------------------------


class HookedSender(RTCRtpSender):
    """aiortc's sender with its two private hooks routed to named methods.

    aiortc runs `_run_rtp` to send media and `_retransmit` to answer a NACK; a
    subclass overrides `run_media` and `retransmit` instead.
    """

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        await self.run_media(codec)

    async def _retransmit(self, sequence_number: int) -> None:
        await self.retransmit(sequence_number)

    async def run_media(self, codec: RTCRtpCodecParameters) -> None:
        await RTCRtpSender._run_rtp(self, codec)

    async def run_aiortc_media_from(
        self, codec: RTCRtpCodecParameters, sequence_number: int, timestamp_origin: int
    ) -> None:
        """aiortc's own send loop, numbering on from where another loop stopped.

        Its loop draws its first sequence number and timestamp origin at random.
        On an SSRC that already sent, libsrtp refuses a sequence number behind
        the last one ("replay check failed"), and the viewer's decoder would see
        time jump. The loop draws both before its first await, so the draws are
        answered once with these values and the library's functions put back.
        """
        draw_sequence = aiortc_rtcrtpsender.random_sequence_number
        draw_32 = aiortc_rtcrtpsender.random32

        def next_sequence_number() -> int:
            aiortc_rtcrtpsender.random_sequence_number = draw_sequence
            return sequence_number

        def next_origin() -> int:
            aiortc_rtcrtpsender.random32 = draw_32
            return timestamp_origin

        aiortc_rtcrtpsender.random_sequence_number = next_sequence_number
        aiortc_rtcrtpsender.random32 = next_origin
        try:
            await RTCRtpSender._run_rtp(self, codec)
        finally:  # in case the loop ever stops drawing them
            aiortc_rtcrtpsender.random_sequence_number = draw_sequence
            aiortc_rtcrtpsender.random32 = draw_32

    async def retransmit(self, sequence_number: int) -> None:
        await RTCRtpSender._retransmit(self, sequence_number)


def send_with(sender: RTCRtpSender, cls: type[HookedSender]) -> None:
    """Make the sender aiortc built for a transceiver an instance of `cls`.

    aiortc builds its sender inside `addTransceiver` and offers no way to give it
    another class; the gateway's send loop (sender.py) overrides only the two hooks
    HookedSender routes, so the object aiortc made stays whole.
    """
    if type(sender) is not RTCRtpSender:
        raise CompatError(f"aiortc made a {type(sender).__name__}, not an RTCRtpSender")
    sender.__class__ = cls


class SenderInternals:
    """The private state of one aiortc RTCRtpSender and its DTLS transport."""

    __slots__ = ("dtls", "sender")

    def __init__(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        self.dtls: RTCDtlsTransport = sender.transport

    def mark_started(self) -> None:
        self.sender._RTCRtpSender__rtp_started.set()

    def mark_exited(self) -> None:
        self.sender._RTCRtpSender__rtp_exited.set()

    @property
    def mid(self) -> str | None:
        return self.sender._RTCRtpSender__mid

    @property
    def extensions_map(self) -> Any:
        return self.sender._RTCRtpSender__rtp_header_extensions_map

    @property
    def ssrc(self) -> int:
        return self.sender._ssrc

    @property
    def rtx_ssrc(self) -> int:
        return self.sender._rtx_ssrc

    @property
    def enabled(self) -> bool:
        return self.sender._enabled

    @property
    def rtx_payload_type(self) -> int | None:
        return self.sender._RTCRtpSender__rtx_payload_type

    def next_rtx_sequence_number(self) -> int:
        sender = self.sender
        number = sender._RTCRtpSender__rtx_sequence_number
        sender._RTCRtpSender__rtx_sequence_number = (number + 1) & 0xFFFF
        return number

    def record_sent(
        self, ntp: int, rtp_timestamp: int, octets: int, packets: int, wire_bytes: int
    ) -> None:
        """What aiortc's own loop records per packet, recorded per frame: RTCP sender
        reports and getStats() read these."""
        sender, dtls = self.sender, self.dtls
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp
        sender._RTCRtpSender__octet_count += octets
        sender._RTCRtpSender__packet_count += packets
        dtls._RTCDtlsTransport__tx_bytes += wire_bytes
        dtls._RTCDtlsTransport__tx_packets += packets

    def srtp(self) -> Any:
        """libsrtp's context for this viewer's outgoing packets; ConnectionError before
        DTLS is up."""
        dtls = self.dtls
        if dtls._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        return dtls._tx_srtp._srtp[0]

    def srtp_tag_bytes(self) -> int:
        """What SRTP adds to each of this viewer's packets; ConnectionError before DTLS
        is up, LookupError for a profile this module does not know."""
        dtls = self.dtls
        if dtls._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        return SRTP_TAG_BYTES[dtls._ssl.get_selected_srtp_profile()]

    def nominated_pair(self) -> aioice.ice.CandidatePair:
        """The ICE pair media goes out on; ConnectionError before ICE is up."""
        pair = self.dtls.transport._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        return pair

    async def send_rtp(self, data: bytes) -> None:
        """aiortc's own path for one RTP packet (SRTP and the ICE pair)."""
        await self.dtls._send_rtp(data)


def ice_still_connected(ice: RTCIceTransport) -> bool:
    """Whether the ICE connection still has its nominated pair. When DTLS closes
    while it does, the viewer closed DTLS itself (close_notify); after an ICE
    consent expiry aioice has already dropped the pair."""
    return bool(ice._connection._nominated)


def is_udp_socket_protocol(protocol: Any) -> bool:
    """An aioice protocol that sends straight on a UDP socket (not a TURN relay)."""
    return (
        type(protocol) is aioice.ice.StunProtocol
        and protocol.transport.get_extra_info("socket") is not None
    )


# libsrtp protects in place. A viewer's packets are written side by side into one
# shared buffer, protected there (one libsrtp call each, the GIL released for it) and
# sent before anything else runs on the event loop, so the buffer holds one viewer's
# share of a frame at a time. Each packet gets room for the tag after it, so the
# protected packets lie end to end, as one GSO send wants them.
SEND_BUFFER_BYTES = 128 * 1024
SEND_PACKETS_MAX = 64  # per call of `protect_many`
SEND_BUFFER = ffi.new("char[]", SEND_BUFFER_BYTES)
SEND_VIEW = memoryview(ffi.buffer(SEND_BUFFER))
_LENGTHS = ffi.new("int[]", SEND_PACKETS_MAX)
_LENGTH_POINTERS = [_LENGTHS + i for i in range(SEND_PACKETS_MAX)]
_srtp_protect = lib.srtp_protect
# SRTP adds a tag to each packet; its size follows from the profile DTLS negotiated.
SRTP_TAG_BYTES = {
    b"SRTP_AEAD_AES_128_GCM": 16,
    b"SRTP_AEAD_AES_256_GCM": 16,
    b"SRTP_AES128_CM_SHA1_80": 10,
    b"SRTP_AES128_CM_SHA1_32": 4,
}
SRTP_TAG_MAX = max(SRTP_TAG_BYTES.values())


def send_buffer_slots(offsets: list[int]) -> list[Any]:
    """Pointers to these offsets of SEND_BUFFER, for `protect_many`."""
    return [SEND_BUFFER + offset for offset in offsets]


def protect_many(srtp: Any, slots: list[Any], lengths: list[int]) -> int:
    """SRTP-protect, in place, the packets of `lengths` bytes at `slots` (pointers
    into SEND_BUFFER, from `send_buffer_slots`); returns the last one's protected
    length. The loop over the packets runs in C (map), one libsrtp call each."""
    count = len(lengths)
    _LENGTHS[0:count] = lengths
    if any(map(_srtp_protect, repeat(srtp, count), slots, _LENGTH_POINTERS[:count])):
        raise SrtpError("srtp_protect failed")
    return _LENGTHS[count - 1]


# --- the check ----------------------------------------------------------------------

_SENDER_NAMES = (
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__mid",
    "_RTCRtpSender__rtp_header_extensions_map",
    "_RTCRtpSender__rtx_payload_type",
    "_RTCRtpSender__rtx_sequence_number",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_ssrc",
    "_rtx_ssrc",
    "_enabled",
)
_DTLS_NAMES = (
    "_state",
    "_tx_srtp",
    "_ssl",
    "_send_rtp",
    "_RTCDtlsTransport__tx_bytes",
    "_RTCDtlsTransport__tx_packets",
)


def problems(max_packet_bytes: int = 0) -> list[str]:
    """What is missing or changed, checked on real (unconnected) aiortc objects."""
    found: list[str] = []
    for owner, name in (
        (RTCRtpSender, "_run_rtp"),
        (RTCRtpSender, "_retransmit"),
        (RTCDtlsTransport, "_send_rtp"),
        (RTCRtpTransceiver, "_codecs"),
    ):
        if name != "_codecs" and not inspect.iscoroutinefunction(getattr(owner, name, None)):
            found.append(f"{owner.__name__}.{name} is not a coroutine method")
    for name in (
        "CONSENT_INTERVAL",
        "CONSENT_FAILURES",
        "StunProtocol",
        "CandidatePair",
        "get_host_addresses",
    ):
        if not hasattr(aioice.ice, name):
            found.append(f"aioice.ice.{name} is missing")
    for name in ("random_sequence_number", "random32"):
        if not callable(getattr(aiortc_rtcrtpsender, name, None)):
            found.append(f"aiortc.rtcrtpsender.{name} is missing")
    if getattr(aiortc_rtcrtpreceiver, "RemoteBitrateEstimator", None) not in (
        aiortc_rate.RemoteBitrateEstimator,
        _EstimatorOnFirstPacket,
    ) or set(inspect.signature(aiortc_rate.RemoteBitrateEstimator.add).parameters) != {
        "self",
        "abs_send_time",
        "arrival_time_ms",
        "payload_size",
        "ssrc",
    }:
        found.append("aiortc's receiver no longer builds RemoteBitrateEstimator as expected")
    if not callable(getattr(RTCCertificate, "_create_ssl_context", None)):
        found.append("aiortc's RTCCertificate._create_ssl_context is missing")
    if not isinstance(getattr(rtp, "DYNAMIC_PAYLOAD_TYPES", None), range):
        found.append("aiortc.rtp.DYNAMIC_PAYLOAD_TYPES is not a range")
    if not isinstance(getattr(aiortc_codecs, "CODECS", {}).get("video"), list):
        found.append("aiortc.codecs.CODECS['video'] is not a list")
    if not hasattr(State, "CONNECTED"):
        found.append("aiortc.rtcdtlstransport.State.CONNECTED is missing")
    try:
        # srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr)
        kind = ffi.typeof(_srtp_protect)
        args = [a.cname for a in kind.args]
        status_ok = kind.result.kind in ("enum", "primitive")  # 0 means success
        if not status_ok or len(args) != 3 or args[2] != "int *":
            found.append(f"pylibsrtp srtp_protect has signature {kind.cname}")
    except (AttributeError, TypeError) as exc:
        found.append(f"pylibsrtp srtp_protect cannot be inspected ({exc})")
    if max_packet_bytes * SEND_PACKETS_MAX > SEND_BUFFER_BYTES:
        found.append(f"{SEND_PACKETS_MAX} packets of {max_packet_bytes} bytes overflow SEND_BUFFER")
    unknown = {p.openssl_profile for p in SRTP_PROFILES} - SRTP_TAG_BYTES.keys()
    if unknown:
        found.append(f"aiortc may negotiate SRTP profiles of unknown tag size: {sorted(unknown)}")
    found += _instance_problems()
    return found


def _instance_problems() -> list[str]:
    """Private attributes exist only on instances: make a sender that never connects."""
    found: list[str] = []
    loop = _loop_for_check()
    try:
        ice = RTCIceTransport(RTCIceGatherer())
        dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
        sender = RTCRtpSender("video", dtls)
        found += [f"RTCRtpSender has no {n}" for n in _SENDER_NAMES if not hasattr(sender, n)]
        found += [f"RTCDtlsTransport has no {n}" for n in _DTLS_NAMES if not hasattr(dtls, n)]
        connection = getattr(ice, "_connection", None)
        if not isinstance(getattr(connection, "_nominated", None), dict):
            found.append("aioice Connection has no _nominated dict")
    finally:
        if loop is not None:
            loop.close()
            asyncio.set_event_loop(None)
    return found


def _loop_for_check() -> asyncio.AbstractEventLoop | None:
    """aiortc's objects want an event loop; make one if none runs (start-up, tests)."""
    try:
        asyncio.get_running_loop()
        return None
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop


_installed = False


def install(max_packet_bytes: int) -> None:
    """Check every internal and apply the patches, once per process; CompatError names
    what is off."""
    global _installed
    if _installed:
        return
    found = problems(max_packet_bytes)
    if found:
        raise CompatError(
            "aiortc/aioice/pylibsrtp internals changed (setup.cfg pins the verified "
            "versions): " + "; ".join(found)
        )
    _patch_payload_types()
    _patch_consent()
    _patch_receiver_estimator()
    _patch_dtls_buffers()
    _installed = True
