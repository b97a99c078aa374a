"""GrantEnforcer: ends every session whose grant no longer lets it watch.

It re-reads each bound grant from the database twice a second, so a grant that
ends, is revoked, or loses the member or camera (through the API, or in the
file by another process) ends its sessions within about a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.signaling.registry import SessionRegistry
from gateway.signaling.session import ViewerSession

from .grants import Grant, GrantNotFound, GrantStore

log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.5


class GrantEnforcer:
    def __init__(
        self,
        grants: GrantStore,
        sessions: SessionRegistry,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.grants = grants
        self.sessions = sessions
        self.clock = clock

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("grant sweep failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def sweep(self) -> None:
        now = self.clock()
        bound: dict[int | None, list[ViewerSession]] = defaultdict(list)
        for session in self.sessions:
            bound[session.viewer.grant_id].append(session)
        for grant_id, sessions in bound.items():
            grant = self._load(grant_id)  # once per grant, not per session
            for session in sessions:
                reason = self._reason_to_end(grant, session, now)
                if reason:
                    await self.sessions.end(session.id, reason)

    def _load(self, grant_id: int | None) -> Grant | None:
        if grant_id is None:
            return None
        try:
            return self.grants.get(grant_id)
        except GrantNotFound:
            return None

    @staticmethod
    def _reason_to_end(grant: Grant | None, session: ViewerSession, now: datetime) -> str:
        if grant is None:
            return "grant removed"
        status = grant.status(now)
        if status == "revoked":
            return "grant revoked"
        if status != "active":
            return "grant ended"
        if session.account not in grant.members:
            return "removed from grant"
        if session.camera_id not in grant.cameras:
            return "camera removed from grant"
        return ""
