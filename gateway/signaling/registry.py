"""SessionRegistry: every live viewer session, by id, until when it may last, and how
each one ends."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from gateway.access.decision import Viewer
from gateway.relay import CameraHub, RenditionSpec

from .offer import parse_offer
from .session import Ending, SessionOptions, ViewerSession

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
WINDOW_ENDED = Ending("grant_ended", "grant ended")
# A session admitted by emergency access (要點第五條) ends with it.
EMERGENCY_ENDED = Ending("emergency_ended", "emergency access ended")
SIGN_IN_EXPIRED = Ending("token_expired", "sign-in expired")


class TooManySessions(Exception):
    """The account has its maximum of sessions, counting those still negotiating."""


class EndedWhileOpening(Exception):
    """The session was ended (revoked, the gateway stopping) before it went live: its
    answer is never sent, so no media flows. Carries why."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.reason)
        self.ending = ending


class Opening:
    """An offer being answered: it counts against its account from the moment it is
    taken until its session ends, and a revocation of its account reaches it."""

    __slots__ = ("account", "ending")

    def __init__(self, account: str) -> None:
        self.account = account
        self.ending: Ending | None = None  # revoked before its session went live


class Directory(Protocol):
    """A cluster's directory of live sessions, every node's (control/cluster/)."""

    async def list(self, row: dict[str, Any], limit: int) -> bool:
        """List a session as it is admitted; False if its account holds `limit`
        sessions across the cluster (counted and listed in one step)."""
        ...

    def strike_off(self, session_id: str) -> None: ...

    async def rows(self) -> list[dict[str, Any]]:
        """The other nodes' sessions."""
        ...


class SessionRegistry:
    """The live sessions. Each ends by itself at the end of the grant window it was
    admitted under, or of the sign-in that opened it, whatever the database says:
    those deadlines are kept here, in memory.

    On a node of a cluster, session ids start with the node's id ("<node>.<token>"),
    so the balancer can send a session's requests to the node that holds it, and
    `directory` is the cluster's directory: a session is listed there as it is
    admitted, which is where an account's limit is counted on every node at once.
    """

    def __init__(
        self,
        options: SessionOptions,
        max_per_account: int = 12,
        node_id: str = "",
        directory: Directory | None = None,
    ) -> None:
        self.node_id = node_id
        self.directory = directory
        self._sessions: dict[str, ViewerSession] = {}
        self._ended: OrderedDict[str, EndedSession] = OrderedDict()
        self.options = options
        self._max_per_account = max_per_account
        # Offers taken but not yet sessions of this registry (parsed, negotiating).
        self._openings: set[Opening] = set()
        self._pending: set[asyncio.Task[bool]] = set()
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        # While set, every offer is refused with it (a node cut off from its cluster).
        self.refusing: Ending | None = None
        # Observers, e.g. the audit log and the event bus. A start observer that
        # raises refuses the session: nobody watches without the record written.
        self.on_start: list[Callable[[ViewerSession], Awaitable[None]]] = []
        self.on_end: list[Callable[[ViewerSession], None]] = []
        self.on_renew: list[Callable[[ViewerSession, str], None]] = []
        # Told of each trickle PATCH: (session, candidates added, who, remote address).
        self.on_trickle: list[Callable[[ViewerSession, int, str, str], None]] = []

    async def open(
        self,
        hub: CameraHub,
        body: bytes,
        remote: str,
        viewer: Viewer,
        signed_in_until: datetime,
        still_allowed: Callable[[], Awaitable[None]] | None = None,
        rendition: RenditionSpec | None = None,
    ) -> tuple[ViewerSession, str]:
        """Validate the offer, join the camera (or its lighter `rendition`) and answer.

        One admission step that nothing can slip into: the offer counts against its
        account from the moment it is taken until its session ends, whatever it
        awaits in between (on a node of a cluster, by its listing in the directory),
        and its session joins the registry (where every revocation finds it) before
        the grant is asked again (`still_allowed`) and its start is written down
        (`on_start`). A session ended meanwhile is never answered: EndedWhileOpening.
        Raises BadOffer, CameraUnavailable, TooManySessions, StoreUnavailable (the
        directory cannot list it), or what `still_allowed` or a start observer raises.
        """
        if self.refusing is not None:
            raise EndedWhileOpening(self.refusing)
        opening = self._take(viewer.account)
        session_id = self._new_id()
        listed = False
        try:
            try:
                # Counted with this offer already in: offers racing each other all count.
                listed = await self._check_limit(opening, session_id, hub.id, remote, viewer)
                offer_sdp, offer = parse_offer(body, self.options.candidates)
                session, answer = await ViewerSession.negotiate(
                    hub,
                    offer_sdp,
                    offer,
                    remote,
                    viewer,
                    self.options,
                    self._lost,
                    session_id=session_id,
                    rendition=rendition,
                )
            finally:
                self._openings.discard(opening)
        except BaseException:
            if listed:
                self._strike_off(session_id)
            raise
        # From here it is a session of this registry, live or not: with no await since
        # the offer stopped counting as an opening, it never goes uncounted.
        session.window_ends_at = viewer.ends_at
        session.signed_in_until = signed_in_until
        self._sessions[session.id] = session
        try:
            if opening.ending is not None:  # its account was revoked while negotiating
                raise EndedWhileOpening(opening.ending)
            if still_allowed is not None:
                await still_allowed()
            for observer in self.on_start:
                if session.ending is not None:
                    break
                await observer(session)
            if session.ending is not None:  # revoked while its start was written
                raise EndedWhileOpening(session.ending)
        except BaseException:
            if self._sessions.pop(session.id, None) is not None:
                self._strike_off(session.id)
                await session.close(NOT_RECORDED)  # never answered
                if session.started_recorded:
                    for end in self.on_end:
                        end(session)
            raise
        self.reschedule(session)
        log.info(
            "session %s started: camera %s",
            session.id,
            hub.id,
            extra={"session_id": session.id, "camera_id": hub.id},
        )
        return session, answer

    def _take(self, account: str) -> Opening:
        opening = Opening(account)
        self._openings.add(opening)
        return opening

    async def _check_limit(
        self, opening: Opening, session_id: str, camera_id: str, remote: str, viewer: Viewer
    ) -> bool:
        """TooManySessions past the account's limit, counting this node's sessions and
        offers being answered; on a node of a cluster, then every node's, by listing
        the session in the directory (True: it is listed, and must be struck off)."""
        account = opening.account
        here = self.count(account) + sum(1 for o in self._openings if o.account == account)
        limit = self._max_per_account
        too_many = TooManySessions(f"this account has its maximum of {limit} sessions")
        if here > limit:
            raise too_many
        if self.directory is None:
            return False
        row = {
            "id": session_id,
            "account": account,
            "camera_id": camera_id,
            "grant_id": viewer.grant_id,
            "project": viewer.project,
            "remote": remote,
            "started_at": datetime.now(UTC).isoformat(),
        }
        if not await self.directory.list(row, limit):
            raise too_many
        return True

    def _strike_off(self, session_id: str) -> None:
        if self.directory is not None:
            self.directory.strike_off(session_id)

    def _new_id(self) -> str:
        token = secrets.token_urlsafe(16)
        return f"{self.node_id}.{token}" if self.node_id else token

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

    def to_json(self, session: ViewerSession) -> dict[str, Any]:
        return {**session.to_json(), "node": self.node_id or None}

    async def everywhere(self) -> list[dict[str, Any]]:
        """Every live session as JSON: this node's, and the other nodes' from the
        cluster's directory (without their byte counts and connection states)."""
        here = [self.to_json(s) for s in self]
        if self.directory is None:
            return here
        there = [{**row, "bytes_sent": None, "state": None} for row in await self.directory.rows()]
        return here + there

    def __iter__(self) -> Iterator[ViewerSession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def count(self, account: str) -> int:
        return sum(1 for s in self._sessions.values() if s.account == account)

    def reschedule(self, session: ViewerSession) -> None:
        """(Re)arm the session's end at its window's end or its sign-in's, whichever
        comes first, after either moved (a grant extended, a token renewed)."""
        if (timer := self._deadlines.pop(session.id, None)) is not None:
            timer.cancel()
        ends = [(t, e) for t, e in self._ends(session) if t is not None]
        if not ends:
            return
        moment, ending = min(ends, key=lambda pair: pair[0])
        delay = max(0.0, (moment - datetime.now(UTC)).total_seconds())
        loop = asyncio.get_running_loop()
        self._deadlines[session.id] = loop.call_later(delay, self._lost, session, ending)

    def renew(self, session: ViewerSession, until: datetime, remote: str) -> datetime:
        """A fresh sign-in of the same account: the session may last until `until`."""
        session.signed_in_until = max(until, session.signed_in_until or until)
        self.reschedule(session)
        for observer in self.on_renew:
            observer(session, remote)
        return session.signed_in_until

    @staticmethod
    def _ends(session: ViewerSession) -> list[tuple[datetime | None, Ending]]:
        window = EMERGENCY_ENDED if session.viewer.emergency_id is not None else WINDOW_ENDED
        return [(session.window_ends_at, window), (session.signed_in_until, SIGN_IN_EXPIRED)]

    async def trickle(self, session: ViewerSession, fragment: str, by: str, remote: str) -> int:
        """Add a viewer's trickled candidates. Raises ValueError (malformed) and
        IceRestartUnsupported (new ICE credentials), both leaving the session as it was."""
        added = await session.add_candidates(fragment)
        for observer in self.on_trickle:
            observer(session, added, by, remote)
        return added

    async def end(self, session_id: str, ending: Ending, by: str | None = None) -> bool:
        session = self._sessions.pop(session_id, None)
        if (timer := self._deadlines.pop(session_id, None)) is not None:
            timer.cancel()
        if session is None:
            return False
        self._strike_off(session_id)
        session.ended_by = by
        if not await session.close(ending):
            return False
        self._ended[session.id] = EndedSession(
            session.id, session.account, session.camera_id, ending, time.monotonic()
        )
        self._forget_old()
        if session.started_recorded:  # a start written down gets its end written too
            for observer in self.on_end:
                observer(session)
        return True

    async def end_account(self, account: str, ending: Ending, by: str | None = None) -> int:
        """End the account's sessions, those still being opened included (they are
        never answered); how many were live or opening."""
        opening = [o for o in self._openings if o.account == account]
        for offer in opening:
            offer.ending = offer.ending or ending
        mine = [s for s in self if s.account == account]
        return await self.end_many(mine, ending, by) + len(opening)

    async def end_many(
        self, sessions: list[ViewerSession], ending: Ending, by: str | None = None
    ) -> int:
        """End these sessions at once; one that fails to end never holds up the rest."""
        results = await asyncio.gather(
            *(self.end(s.id, ending, by) for s in sessions), return_exceptions=True
        )
        for session, result in zip(sessions, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "ending session %s failed: %r",
                    session.id,
                    result,
                    extra={"session_id": session.id, "camera_id": session.camera_id},
                )
        return sum(1 for r in results if r is True)

    def _lost(self, session: ViewerSession, ending: Ending) -> None:
        task = asyncio.ensure_future(self.end(session.id, ending))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self, ending: Ending = SHUTDOWN) -> None:
        """End every session, those still being opened included."""
        for offer in self._openings:
            offer.ending = offer.ending or ending
        await self.end_many(list(self), ending)
