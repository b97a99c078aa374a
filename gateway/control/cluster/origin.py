"""OriginStreams: an owner node's side of spreading: a camera's frames for an edge node.

The edge asks (`GET /cluster/cameras/<camera>`, signed with the cluster's key) and
gets, for as long as it reads, what the camera's hub sends any viewer: the stream's
description, the current GOP (so the edge's first viewer starts at once), then every
frame, with a keepalive in each silent second. The edge is one more feed of the hub:
it keeps the pull going while the owner's own viewers leave, and falls behind like a
slow viewer would (skipping to a keyframe), never slowing anyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.relay import CameraHub, CameraHubs, CameraUnavailable, FeedEnded, Replayed, ViewerFeed
from gateway.relay.node_stream import (
    CONTENT_TYPE,
    KEEPALIVE_SECONDS,
    frame_record,
    info_record,
    keepalive_record,
)

from ..refusals import Denied
from .spreading import Spreading

__all__ = ["CONTENT_TYPE", "OriginStreams"]


class OriginStreams:
    def __init__(self, hubs: CameraHubs, spreading: Spreading) -> None:
        self.hubs = hubs
        self.spreading = spreading
        self._feeds: set[ViewerFeed] = set()

    async def open(
        self, camera_id: str, path: str, sent_at: str, signature: str
    ) -> AsyncIterator[bytes]:
        """The camera's stream for another node (Denied: not a node's request, an
        unknown or masked camera, or one that cannot be pulled now)."""
        self.spreading.check_stream_request(path, sent_at, signature)
        hub = self.hubs.get(camera_id)
        if hub is None:
            raise Denied("unknown_camera", "unknown camera")
        if hub.masks:
            raise Denied("camera_unavailable", "a masked camera is not spread", retry_after=5)
        try:
            feed = await hub.join()
        except CameraUnavailable as exc:
            raise Denied(exc.code, str(exc), retry_after=exc.retry_after) from None
        self._feeds.add(feed)
        return self._records(hub, feed)

    async def _records(self, hub: CameraHub, feed: ViewerFeed) -> AsyncIterator[bytes]:
        sent = None
        try:
            while True:
                packet = None
                try:
                    if sent is not None or hub.info is None:  # the description goes first
                        packet = await asyncio.wait_for(feed.next(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield keepalive_record()
                    continue
                if hub.info is not None and hub.info is not sent:
                    sent = hub.info  # first, and again after the camera reconnected here
                    yield info_record(sent)
                if packet is not None:
                    yield frame_record(packet, isinstance(packet.opaque, Replayed))
        except FeedEnded:
            return
        finally:
            self._feeds.discard(feed)
            hub.leave(feed)

    def close(self) -> None:
        """At shutdown: every edge's stream ends (each edge then pulls the camera itself)."""
        for feed in list(self._feeds):
            feed.stop()
