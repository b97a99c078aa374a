"""Viewer sessions over WHEP: offer in, answer out, and the registry of who watches."""

from .offer import BadOffer
from .registry import SessionRegistry
from .session import ViewerSession

__all__ = ["BadOffer", "SessionRegistry", "ViewerSession"]
