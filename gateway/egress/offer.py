"""The viewer's SDP offer: validation, mDNS candidates, and the H.264 we answer with."""

from __future__ import annotations

from aiortc import sdp

from gateway.relay import h264

from .compat import h264_profile as _profile

# A viewer needs one video section; a browser adds audio and data. Hundreds of
# sections would make a huge answer and stall the event loop while it is built.
MAX_MEDIA_SECTIONS = 8


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
    sections = sum(1 for line in text.splitlines() if line.startswith("m="))
    if sections > MAX_MEDIA_SECTIONS:
        raise BadOffer(
            f"offer has {sections} media sections; at most {MAX_MEDIA_SECTIONS} are accepted"
        )
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
