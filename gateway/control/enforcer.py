"""GrantEnforcer: ends every session whose grant no longer lets it watch.

It re-reads each bound grant from the database twice a second, so a grant that
ends, is revoked, or loses the member or camera (through the API, or in the
file by another process) ends its sessions within about a second. What a grant
allows is access/decision.py's `check`, the same rule admission uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from gateway.access import decision
from gateway.access.grants import Grant
from gateway.egress import Ending, ViewerSession
from gateway.store.grants import GrantNotFound, GrantStore

from .sessions import SessionRegistry

log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.5

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
    def __init__(self, grants: GrantStore, sessions: SessionRegistry) -> None:
        self.grants = grants
        self.sessions = sessions

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("grant sweep failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def sweep(self) -> None:
        now = self.grants.clock()
        bound: dict[int | None, list[ViewerSession]] = defaultdict(list)
        for session in self.sessions:
            bound[session.viewer.grant_id].append(session)
        for grant_id, sessions in bound.items():
            grant = self._load(grant_id)  # once per grant, not per session
            for session in sessions:
                rule = decision.check(grant, session.account, session.camera_id, now)
                if rule is not None:
                    await self.sessions.end(session.id, ENDINGS[rule])

    def _load(self, grant_id: int | None) -> Grant | None:
        if grant_id is None:
            return None
        try:
            return self.grants.get(grant_id)
        except GrantNotFound:
            return None
