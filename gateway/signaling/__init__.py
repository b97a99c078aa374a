"""The viewer's negotiated session: the thing that can be listed, renewed and ended.

offer.py validates the WHEP offer and picks the codec to answer with;
candidates.py decides which of the viewer's ICE candidates may be contacted;
turn.py makes each session's TURN credential; session.py is one viewer's peer
connection from offer to end; registry.py holds every live session and ends each
at its deadlines.
"""

from .candidates import CandidatePolicy
from .offer import BadOffer, parse_offer
from .registry import (
    EMERGENCY_ENDED,
    NOT_RECORDED,
    SHUTDOWN,
    SIGN_IN_EXPIRED,
    VIEWER_LEFT,
    WINDOW_ENDED,
    Directory,
    EndedSession,
    EndedWhileOpening,
    SessionRegistry,
    TooManySessions,
)
from .session import (
    CONNECTION_LOST,
    MEDIA_FAILED,
    NEVER_CONNECTED,
    VIEWER_CLOSED,
    Ending,
    IceRestartUnsupported,
    SessionOptions,
    ViewerSession,
    rtc_configuration,
)
from .turn import TurnCredential, TurnServers

__all__ = [
    "CONNECTION_LOST",
    "EMERGENCY_ENDED",
    "MEDIA_FAILED",
    "NEVER_CONNECTED",
    "NOT_RECORDED",
    "SHUTDOWN",
    "SIGN_IN_EXPIRED",
    "VIEWER_CLOSED",
    "VIEWER_LEFT",
    "WINDOW_ENDED",
    "BadOffer",
    "CandidatePolicy",
    "Directory",
    "EndedSession",
    "EndedWhileOpening",
    "Ending",
    "IceRestartUnsupported",
    "SessionOptions",
    "SessionRegistry",
    "TooManySessions",
    "TurnCredential",
    "TurnServers",
    "ViewerSession",
    "parse_offer",
    "rtc_configuration",
]
