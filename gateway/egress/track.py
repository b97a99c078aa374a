"""ViewerTrack: a viewer's feed as the aiortc video track its transceiver sends."""

from __future__ import annotations

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from gateway.relay import FeedEnded, ViewerFeed


class ViewerTrack(MediaStreamTrack):
    """aiortc's own sender pulls frames with `recv`; RelaySender pushes them instead
    (ViewerFeed.attach). Either way the feed decides what a slow viewer skips."""

    kind = "video"

    def __init__(self, feed: ViewerFeed) -> None:
        super().__init__()
        self.feed = feed

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            return await self.feed.next()
        except FeedEnded:
            raise MediaStreamError from None

    def stop(self) -> None:
        super().stop()
        self.feed.stop()
