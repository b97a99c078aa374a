"""Media out: a viewer's WebRTC session, its answer, and the RTP/SRTP send path.

Every private aiortc/aioice/pylibsrtp name and every patch to them lives in
compat.py, checked and installed once at start-up.
"""

from .offer import BadOffer, CandidatePolicy, parse_offer
from .session import (
    CONNECTION_LOST,
    MEDIA_FAILED,
    NEVER_CONNECTED,
    VIEWER_CLOSED,
    EgressOptions,
    Ending,
    IceRestartUnsupported,
    ViewerSession,
    rtc_configuration,
)

__all__ = [
    "CONNECTION_LOST",
    "MEDIA_FAILED",
    "NEVER_CONNECTED",
    "VIEWER_CLOSED",
    "BadOffer",
    "CandidatePolicy",
    "EgressOptions",
    "Ending",
    "IceRestartUnsupported",
    "ViewerSession",
    "parse_offer",
    "rtc_configuration",
]
