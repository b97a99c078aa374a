"""Several gateway nodes on one PostgreSQL database (node.py puts the parts together)."""

from .directory import SessionDirectory
from .heartbeats import NodeConflict
from .messages import ClusterMessages
from .node import ClusterNode
from .origin import CONTENT_TYPE, OriginStreams
from .peers import PATH, SIGNATURE_HEADER, PeerLink
from .reach import NODE_ISOLATED, Reach
from .spreading import SENT_AT_HEADER, STREAM_PATH, Spread, Spreading, Via

__all__ = [
    "CONTENT_TYPE",
    "NODE_ISOLATED",
    "PATH",
    "SENT_AT_HEADER",
    "SIGNATURE_HEADER",
    "STREAM_PATH",
    "ClusterMessages",
    "ClusterNode",
    "NodeConflict",
    "OriginStreams",
    "PeerLink",
    "Reach",
    "SessionDirectory",
    "Spread",
    "Spreading",
    "Via",
]
