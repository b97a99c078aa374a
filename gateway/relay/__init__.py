"""Media in: one pull per camera, fanned out to every viewer's feed. No WebRTC here."""

from .errors import SourceError
from .feed import FeedEnded, FrameSink, Replayed, ViewerFeed
from .hub import MASK_FAILED, CameraHub, CameraHubs, CameraUnavailable, FeedFailure, InventoryChange
from .police_api import PoliceApi, PoliceApiError
from .rendition import Rendition, RenditionSpec, lighter_picture, vp8_for_browsers
from .source import StreamInfo

__all__ = [
    "MASK_FAILED",
    "CameraHub",
    "CameraHubs",
    "CameraUnavailable",
    "FeedEnded",
    "FeedFailure",
    "FrameSink",
    "InventoryChange",
    "PoliceApi",
    "PoliceApiError",
    "Rendition",
    "RenditionSpec",
    "Replayed",
    "SourceError",
    "StreamInfo",
    "ViewerFeed",
    "lighter_picture",
    "vp8_for_browsers",
]
