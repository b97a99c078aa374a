"""Media in: one pull per camera, fanned out to every viewer's feed. No WebRTC here."""

from .feed import FeedEnded, FrameSink, ViewerFeed
from .hub import CameraHub, CameraHubs, CameraUnavailable
from .rendition import Rendition, RenditionSpec, vp8_for_browsers
from .source import SourceError, StreamInfo

__all__ = [
    "CameraHub",
    "CameraHubs",
    "CameraUnavailable",
    "FeedEnded",
    "FrameSink",
    "Rendition",
    "RenditionSpec",
    "SourceError",
    "StreamInfo",
    "ViewerFeed",
    "vp8_for_browsers",
]
