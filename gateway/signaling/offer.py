"""The viewer's SDP offer: validation, mDNS candidates, and the H.264 we answer with."""

from __future__ import annotations

import copy

from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters, rtp, sdp
from aiortc import codecs as aiortc_codecs

from gateway.relay import h264

# Chromium also numbers its dynamic payload types from 35 to 63 (unassigned in
# RFC 3551). aiortc would answer such a codec with its own number, which the
# browser never offered, and the browser would drop every packet.
rtp.DYNAMIC_PAYLOAD_TYPES = range(35, 128)  # type: ignore[misc]


class BadOffer(ValueError):
    """The offer cannot be answered; the message tells the viewer why."""


def parse_offer(body: bytes) -> tuple[str, sdp.SessionDescription]:
    """Validate an offer and drop what would slow the answer down.

    Chromium hides host candidates behind mDNS `.local` names by default. aioice
    would try to resolve each for up to 1 s before answering; the browser's
    connectivity checks reach us anyway and become peer-reflexive candidates.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadOffer("offer is not UTF-8 text") from None
    if not text.startswith("v=0"):
        raise BadOffer("offer is not an SDP session description (must start with v=0)")
    lines = [
        line
        for line in text.splitlines()
        if not (line.startswith("a=candidate:") and ".local " in line)
    ]
    text = "\r\n".join(lines) + "\r\n"
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception:  # aiortc's parser raises whatever the bad line triggers
        raise BadOffer("offer is malformed SDP") from None
    video = [m for m in description.media if m.kind == "video"]
    if not video:
        raise BadOffer("offer has no video media section")
    for media in video:
        if not (media.ice.usernameFragment and media.ice.password):
            raise BadOffer("offer lacks ICE credentials (a=ice-ufrag / a=ice-pwd)")
        if media.dtls is None or not media.dtls.fingerprints:
            raise BadOffer("offer lacks DTLS parameters (a=fingerprint, a=setup)")
    return text, description


def _h264_parameters(profile_level_id: str) -> dict[str, str | int | None]:
    return {
        "level-asymmetry-allowed": "1",
        "packetization-mode": "1",
        "profile-level-id": profile_level_id,
    }


def register_h264_profile(profile_level_id: str) -> RTCRtpCodecCapability:
    """The aiortc codec that negotiates this H.264 profile, added if aiortc lacks it.

    aiortc only knows Constrained Baseline and Baseline; a High-profile camera
    must be described as what it is, or browsers may refuse to decode it.
    aiortc matches a viewer's codec to the first local codec of the same
    profile, so one entry per profile is used whatever its level.
    """
    profile = _profile(profile_level_id)
    codecs = aiortc_codecs.CODECS["video"]
    h264 = [c for c in codecs if c.mimeType == "video/H264"]
    existing = next(
        (c for c in h264 if _profile(str(c.parameters.get("profile-level-id"))) == profile),
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


P = sdp.H264Profile
# Profiles whose decoders also decode a stream of the key profile, narrowest first
# (ISO/IEC 14496-10 Annex A). Streams sent to viewers never have B-frames, so
# Constrained High covers Main and High. Debian's Chromium 156, for one, offers
# Main and High 4:4:4 but not High: a High camera is then announced as High
# 4:4:4, a profile the browser's decoder must and does play.
DECODABLE_AS = {
    P.PROFILE_CONSTRAINED_BASELINE: [
        P.PROFILE_CONSTRAINED_BASELINE,
        P.PROFILE_BASELINE,
        P.PROFILE_MAIN,
        P.PROFILE_CONSTRAINED_HIGH,
        P.PROFILE_HIGH,
        P.PROFILE_PREDICTIVE_HIGH_444,
    ],
    P.PROFILE_BASELINE: [P.PROFILE_BASELINE],
    P.PROFILE_MAIN: [
        P.PROFILE_MAIN,
        P.PROFILE_CONSTRAINED_HIGH,
        P.PROFILE_HIGH,
        P.PROFILE_PREDICTIVE_HIGH_444,
    ],
    P.PROFILE_CONSTRAINED_HIGH: [
        P.PROFILE_CONSTRAINED_HIGH,
        P.PROFILE_HIGH,
        P.PROFILE_PREDICTIVE_HIGH_444,
    ],
    P.PROFILE_HIGH: [P.PROFILE_HIGH, P.PROFILE_CONSTRAINED_HIGH, P.PROFILE_PREDICTIVE_HIGH_444],
}
PROFILE_PREFIX = {  # profile_idc and constraint flags of profile-level-id
    P.PROFILE_CONSTRAINED_BASELINE: "42e0",
    P.PROFILE_BASELINE: "4200",
    P.PROFILE_MAIN: "4d00",
    P.PROFILE_CONSTRAINED_HIGH: "640c",
    P.PROFILE_HIGH: "6400",
    P.PROFILE_PREDICTIVE_HIGH_444: "f400",
}


def answer_profile(profile_level_id: str, offer: sdp.SessionDescription) -> str:
    """The profile-level-id to answer with: the camera's own if the viewer offers it,
    else the narrowest offered profile whose decoders play the camera's stream."""
    offered = {
        _profile(str(codec.parameters.get("profile-level-id", "42e01f")))
        for media in offer.media
        if media.kind == "video"
        for codec in media.rtp.codecs
        if codec.mimeType.lower() == "video/h264"
        and str(codec.parameters.get("packetization-mode", "0")) == "1"
    }
    camera = _profile(profile_level_id)
    for profile in DECODABLE_AS.get(camera, [camera]) if camera else []:
        if profile in offered:
            if profile == camera:
                return profile_level_id
            return PROFILE_PREFIX[profile] + profile_level_id[4:]
    raise BadOffer(
        f"offer does not accept H.264 {h264.profile_name(profile_level_id)} "
        "(packetization-mode=1), which this camera sends"
    )


def _profile(profile_level_id: str) -> sdp.H264Profile | None:
    try:
        return sdp.parse_h264_profile_level_id(profile_level_id)[0]
    except ValueError:
        return None
