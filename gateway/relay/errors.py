"""SourceError: a camera failure, for the camera's source and the police API alike."""

from __future__ import annotations


class SourceError(Exception):
    """A camera failure, described without the camera URL or credentials."""
