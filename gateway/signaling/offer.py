"""The viewer's SDP offer: validation, the video codec we answer with, and what the
answer must carry. Which of its ICE candidates are kept is candidates.py's."""

from __future__ import annotations

from typing import NamedTuple

from aiortc import sdp

from gateway.egress.compat import h264_profile as _profile
from gateway.relay import h264

from .candidates import CandidatePolicy

# A viewer needs one video section; a browser adds audio and data. Hundreds of
# sections would make a huge answer and stall the event loop while it is built.
MAX_MEDIA_SECTIONS = 8


END_OF_CANDIDATES = "a=end-of-candidates"


class BadOffer(ValueError):
    """The offer cannot be answered; the message tells the viewer why."""


def parse_offer(
    body: bytes, policy: CandidatePolicy | None = None
) -> tuple[str, sdp.SessionDescription]:
    """Validate an offer (WHEP: a video section the viewer receives the camera in) and
    drop the candidates the gateway will not contact (CandidatePolicy)."""
    policy = policy or CandidatePolicy()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadOffer("offer is not UTF-8 text") from None
    if not text.startswith("v=0"):
        raise BadOffer("offer is not an SDP session description (must start with v=0)")
    sections = sum(1 for line in text.splitlines() if line.startswith("m="))
    if sections > MAX_MEDIA_SECTIONS:
        raise BadOffer(
            f"offer has {sections} media sections; at most {MAX_MEDIA_SECTIONS} are accepted"
        )
    lines = [line for line in text.splitlines() if policy.allows_line(line)]
    if len(lines) < len(text.splitlines()):
        # A candidate was left out: the viewer's own checks (peer-reflexive) are the
        # way in, and aioice gives up at once on "end of candidates" with none left.
        lines = [line for line in lines if line != END_OF_CANDIDATES]
    text = "\r\n".join(lines) + "\r\n"
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception:  # aiortc's parser raises whatever the bad line triggers
        raise BadOffer("offer is malformed SDP") from None
    video = [m for m in description.media if m.kind == "video"]
    if not video:
        raise BadOffer("offer has no video media section")
    # WHEP: sections the endpoint does not use are answered as not used. The camera
    # plays in the first video section; any other is answered inactive, and what a
    # player offers to send is never received.
    media = video[0]
    direction = media.direction or "sendrecv"
    if direction not in ("recvonly", "sendrecv"):
        raise BadOffer(
            f"offer's first video section is {direction}; the camera plays in it, so "
            "offer it recvonly (or sendrecv)"
        )
    if not (media.ice.usernameFragment and media.ice.password):
        raise BadOffer("offer lacks ICE credentials (a=ice-ufrag / a=ice-pwd)")
    if media.dtls is None or not media.dtls.fingerprints:
        raise BadOffer("offer lacks DTLS parameters (a=fingerprint, a=setup)")
    return text, description


def offered_video(offer: sdp.SessionDescription) -> sdp.MediaDescription:
    return next(m for m in offer.media if m.kind == "video")


def offers_h264(offer: sdp.SessionDescription) -> bool:
    return bool(_offered_h264_profiles(offer))


def offers_vp8(offer: sdp.SessionDescription) -> bool:
    return any(c.mimeType.lower() == "video/vp8" for c in offered_video(offer).rtp.codecs)


def with_rtcp_mux_only(answer: str) -> str:
    """WHEP (and RFC 8858 §3): every bundled media section carries a=rtcp-mux-only."""
    out = []
    for line in answer.splitlines():
        out.append(line)
        if line == "a=rtcp-mux":
            out.append("a=rtcp-mux-only")
    return "\r\n".join(out) + "\r\n"


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


# What a viewer's H.264 decoder is labelled as when it offers no profile that must
# play the camera's stream: the widest it offered. Decoders labelled Constrained
# Baseline (Firefox with OpenH264, stock aiortc, hardware players) play Main and
# High in practice; MediaMTX and go2rtc rely on that too.
WIDEST_FIRST = [
    P.PROFILE_HIGH,
    P.PROFILE_CONSTRAINED_HIGH,
    P.PROFILE_MAIN,
    P.PROFILE_CONSTRAINED_BASELINE,
    P.PROFILE_BASELINE,
]


def _offered_h264_profiles(offer: sdp.SessionDescription) -> set[sdp.H264Profile | None]:
    return {
        _profile(str(codec.parameters.get("profile-level-id", "42e01f")))
        for codec in offered_video(offer).rtp.codecs
        if codec.mimeType.lower() == "video/h264"
        and str(codec.parameters.get("packetization-mode", "0")) == "1"
    }


class LabelledProfile(NamedTuple):
    profile_level_id: str  # what the answer says
    exact: bool  # False: the camera's stream is labelled as a narrower profile


def answer_profile(
    profile_level_id: str, offer: sdp.SessionDescription, strict: bool = True
) -> LabelledProfile:
    """The profile-level-id to answer with: the camera's own if the viewer offers it,
    else the narrowest offered profile whose decoders must play the camera's stream;
    unless `strict`, else the widest profile the viewer offered."""
    offered = _offered_h264_profiles(offer)
    camera = _profile(profile_level_id)
    for profile in DECODABLE_AS.get(camera, [camera]) if camera else []:
        if profile in offered:
            if profile == camera:
                return LabelledProfile(profile_level_id, True)
            return LabelledProfile(PROFILE_PREFIX[profile] + profile_level_id[4:], True)
    if not strict:
        for profile in WIDEST_FIRST:
            if profile in offered:
                return LabelledProfile(PROFILE_PREFIX[profile] + profile_level_id[4:], False)
    raise BadOffer(
        f"offer does not accept H.264 {h264.profile_name(profile_level_id)} "
        "(packetization-mode=1), which this camera sends"
    )
