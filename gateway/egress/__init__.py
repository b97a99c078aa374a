"""Media out: a viewer's WebRTC session, its answer, and the RTP/SRTP send path.

Every private aiortc/aioice/pylibsrtp name and every patch to them lives in
compat.py, checked and installed once at start-up.
"""

from .offer import BadOffer, parse_offer
from .session import CONNECTION_LOST, NEVER_CONNECTED, Ending, ViewerSession, rtc_configuration

__all__ = [
    "CONNECTION_LOST",
    "NEVER_CONNECTED",
    "BadOffer",
    "Ending",
    "ViewerSession",
    "parse_offer",
    "rtc_configuration",
]
