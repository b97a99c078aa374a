"""Several gateway nodes on one PostgreSQL database (node.py puts the parts together)."""

from .directory import SessionDirectory
from .heartbeats import NodeConflict
from .messages import ClusterMessages
from .node import ClusterNode
from .peers import PATH, SIGNATURE_HEADER, PeerLink

__all__ = [
    "PATH",
    "SIGNATURE_HEADER",
    "ClusterMessages",
    "ClusterNode",
    "NodeConflict",
    "PeerLink",
    "SessionDirectory",
]
