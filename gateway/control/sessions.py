"""SessionRegistry: every live viewer session, by id, and how each one ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from gateway.access.decision import Viewer
from gateway.egress import Ending, ViewerSession, parse_offer
from gateway.relay import CameraHub

if TYPE_CHECKING:
    from aiortc import RTCConfiguration

log = logging.getLogger(__name__)

VIEWER_LEFT = Ending("viewer_left", "viewer left")
SHUTDOWN = Ending("shutdown", "gateway shutdown")
NOT_RECORDED = Ending("not_recorded", "not recorded")


class SessionRegistry:
    def __init__(self, configuration: RTCConfiguration) -> None:
        self._sessions: dict[str, ViewerSession] = {}
        self._configuration = configuration
        self._pending: set[asyncio.Task[bool]] = set()
        # Observers, e.g. the audit log and the event bus. A start observer that
        # raises refuses the session: nobody watches without the record written.
        self.on_start: list[Callable[[ViewerSession], None]] = []
        self.on_end: list[Callable[[ViewerSession], None]] = []

    async def open(
        self, hub: CameraHub, body: bytes, remote: str, viewer: Viewer
    ) -> tuple[ViewerSession, str]:
        """Validate the offer, join the camera and answer. Raises BadOffer, CameraUnavailable."""
        offer_sdp, offer = parse_offer(body)
        session, answer = await ViewerSession.negotiate(
            hub, offer_sdp, offer, remote, viewer, self._configuration, self._lost
        )
        try:
            for observer in self.on_start:
                observer(session)
        except BaseException:
            await session.close(NOT_RECORDED)  # never registered: no end observers
            raise
        self._sessions[session.id] = session
        log.info(
            "session %s started: camera %s",
            session.id,
            hub.id,
            extra={"session_id": session.id, "camera_id": hub.id},
        )
        return session, answer

    def get(self, session_id: str) -> ViewerSession | None:
        return self._sessions.get(session_id)

    def __iter__(self) -> Iterator[ViewerSession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    async def end(self, session_id: str, ending: Ending) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None or not await session.close(ending):
            return False
        for observer in self.on_end:
            observer(session)
        return True

    def _lost(self, session: ViewerSession, ending: Ending) -> None:
        task = asyncio.ensure_future(self.end(session.id, ending))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self, ending: Ending = SHUTDOWN) -> None:
        await asyncio.gather(*(self.end(s.id, ending) for s in self))
