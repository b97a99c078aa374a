"""Media out: a viewer's video track and the RTP/SRTP send path.

Every private aiortc/aioice/pylibsrtp name and every patch to them lives in
compat.py, checked and installed once at start-up.
"""

from .datagrams import MAX_OVERHEAD
from .sender import RelaySender, send_feed

__all__ = ["MAX_OVERHEAD", "RelaySender", "send_feed"]
