"""Media: one pull per camera, fanned out to bounded per-viewer queues."""

from .hub import CameraHub, CameraHubs, CameraUnavailable
from .source import SourceError, StreamInfo
from .track import ViewerTrack

__all__ = [
    "CameraHub",
    "CameraHubs",
    "CameraUnavailable",
    "SourceError",
    "StreamInfo",
    "ViewerTrack",
]
