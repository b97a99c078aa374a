"""SessionRegistry: every live viewer session, by id, and how each one ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

from gateway.access.decision import Viewer
from gateway.egress import EgressOptions, Ending, ViewerSession, parse_offer
from gateway.relay import CameraHub

log = logging.getLogger(__name__)

# A player may close its connection before it sends DELETE (Medooze's stop() does):
# the session has ended by then, and the DELETE still gets its 200 for this long.
ENDED_MEMORY_SECONDS = 120.0
ENDED_MEMORY_MAX = 10_000


class EndedSession(NamedTuple):
    id: str
    account: str
    camera_id: str
    ending: Ending
    at: float  # time.monotonic()


VIEWER_LEFT = Ending("viewer_left", "viewer left")
SHUTDOWN = Ending("shutdown", "gateway shutdown")
NOT_RECORDED = Ending("not_recorded", "not recorded")


class SessionRegistry:
    def __init__(self, options: EgressOptions) -> None:
        self._sessions: dict[str, ViewerSession] = {}
        self._ended: OrderedDict[str, EndedSession] = OrderedDict()
        self.options = options
        self._pending: set[asyncio.Task[bool]] = set()
        # Observers, e.g. the audit log and the event bus. A start observer that
        # raises refuses the session: nobody watches without the record written.
        self.on_start: list[Callable[[ViewerSession], None]] = []
        self.on_end: list[Callable[[ViewerSession], None]] = []
        # Told of each trickle PATCH: (session, candidates added, who, remote address).
        self.on_trickle: list[Callable[[ViewerSession, int, str, str], None]] = []

    async def open(
        self, hub: CameraHub, body: bytes, remote: str, viewer: Viewer
    ) -> tuple[ViewerSession, str]:
        """Validate the offer, join the camera and answer. Raises BadOffer, CameraUnavailable."""
        offer_sdp, offer = parse_offer(body, self.options.candidates)
        session, answer = await ViewerSession.negotiate(
            hub, offer_sdp, offer, remote, viewer, self.options, self._lost
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

    def recently_ended(self, session_id: str) -> EndedSession | None:
        """A session that ended within the last ENDED_MEMORY_SECONDS."""
        self._forget_old()
        return self._ended.get(session_id)

    def _forget_old(self) -> None:
        horizon = time.monotonic() - ENDED_MEMORY_SECONDS
        while self._ended and (
            len(self._ended) > ENDED_MEMORY_MAX or next(iter(self._ended.values())).at < horizon
        ):
            self._ended.popitem(last=False)

    def __iter__(self) -> Iterator[ViewerSession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    async def trickle(self, session: ViewerSession, fragment: str, by: str, remote: str) -> int:
        """Add a viewer's trickled candidates. Raises ValueError (malformed) and
        IceRestartUnsupported (new ICE credentials), both leaving the session as it was."""
        added = await session.add_candidates(fragment)
        for observer in self.on_trickle:
            observer(session, added, by, remote)
        return added

    async def end(self, session_id: str, ending: Ending, by: str | None = None) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.ended_by = by
        if not await session.close(ending):
            return False
        self._ended[session.id] = EndedSession(
            session.id, session.account, session.camera_id, ending, time.monotonic()
        )
        self._forget_old()
        for observer in self.on_end:
            observer(session)
        return True

    def _lost(self, session: ViewerSession, ending: Ending) -> None:
        task = asyncio.ensure_future(self.end(session.id, ending))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self, ending: Ending = SHUTDOWN) -> None:
        await asyncio.gather(*(self.end(s.id, ending) for s in self))
