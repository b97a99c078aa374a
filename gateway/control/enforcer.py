"""GrantEnforcer: ends every session whose grant no longer lets it watch.

It re-reads each bound grant twice a second, so a grant that ends, is revoked, or
loses the member or camera (through the API, or in the file by another process)
ends its sessions within about a second. What a grant allows is
access/decision.py's `check`, the same rule admission uses.

It fails closed: a change made through this gateway applies from memory at once
(GrantOverlay), and when the grants cannot be read each session still ends at the
end of the window it was admitted under (SessionRegistry keeps that deadline).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from gateway.access import decision
from gateway.access.grants import Grant
from gateway.signaling import Ending, SessionRegistry, ViewerSession
from gateway.store import Store, StoreUnavailable

from .overlay import GrantOverlay

log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.5
READ_SECONDS = 0.4  # a sweep never waits on the database longer than its own period

# How a session ends when its grant stops allowing it, by the rule that failed.
ENDINGS = {
    decision.NO_GRANT: Ending("grant_removed", "grant removed"),
    decision.GRANT_REVOKED: Ending("grant_revoked", "grant revoked"),
    decision.NOT_YET_STARTED: Ending("not_yet_started", "grant not yet started"),
    decision.GRANT_ENDED: Ending("grant_ended", "grant ended"),
    decision.REMOVED_FROM_GRANT: Ending("removed_from_grant", "removed from grant"),
    decision.CAMERA_REMOVED_FROM_GRANT: Ending(
        "camera_removed_from_grant", "camera removed from grant"
    ),
}


class GrantEnforcer:
    def __init__(self, store: Store, overlay: GrantOverlay, sessions: SessionRegistry) -> None:
        self.store = store
        self.overlay = overlay
        self.sessions = sessions

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("grant sweep failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def sweep(self) -> None:
        sessions = list(self.sessions)
        ids = {s.viewer.grant_id for s in sessions if s.viewer.grant_id is not None}
        try:
            stored: dict[int, Grant] | None = await self.store.read(
                lambda grants, _: grants.find_many(ids), READ_SECONDS
            )
        except StoreUnavailable:
            stored = None  # only what is known in memory applies, and the windows
        await self.enforce(sessions, stored)

    async def apply(self, grant: Grant) -> int:
        """A grant changed through this gateway: end what it no longer allows, now."""
        bound = [s for s in self.sessions if s.viewer.grant_id == grant.id]
        return await self.enforce(bound, {grant.id: grant})

    async def revoked_by_id(self, grant_id: int) -> int:
        """A grant revoked while it could not be read here (by an administrator on this
        node, or on another node that said so): it stays revoked in memory, and its
        sessions end by the id they are bound to."""
        self.overlay.revoked_ids.add(grant_id)
        bound = [s for s in self.sessions if s.viewer.grant_id == grant_id]
        return await self.sessions.end_many(bound, ENDINGS[decision.GRANT_REVOKED])

    async def enforce(self, sessions: list[ViewerSession], stored: dict[int, Grant] | None) -> int:
        now = self.store.clock()
        ending: dict[Ending, list[ViewerSession]] = defaultdict(list)
        for session in sessions:
            grant_id = session.viewer.grant_id
            if grant_id in self.overlay.revoked_ids:
                ending[ENDINGS[decision.GRANT_REVOKED]].append(session)
                continue
            grant = self.overlay.get(grant_id)
            if grant is None and stored is not None:
                grant = stored.get(grant_id) if grant_id is not None else None
            elif grant is None:
                continue  # cannot be read: the session's own window deadline holds
            rule = decision.check(grant, session.account, session.camera_id, now)
            if rule is not None:
                ending[ENDINGS[rule]].append(session)
            elif grant is not None and grant.ends_at != session.window_ends_at:
                session.window_ends_at = grant.ends_at  # moved by an administrator
                self.sessions.reschedule(session)
        ended = 0
        for end, bound in ending.items():
            ended += await self.sessions.end_many(bound, end)
        return ended
