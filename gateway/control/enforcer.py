"""GrantEnforcer: ends every session whose grant no longer lets it watch.

It re-reads each bound grant twice a second, so a grant that ends, is revoked, or
loses the member or camera (through the API, or in the file by another process)
ends its sessions within about a second. What a grant allows is
access/decision.py's `check`, the same rule admission uses.

It fails closed: a change made through this gateway, or taken away on another node
of a cluster, applies from memory at once (GrantOverlay), and when the grants
cannot be read each session still ends at the end of the window it was admitted
under (SessionRegistry keeps that deadline).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from datetime import datetime

from gateway.access import decision
from gateway.access.emergency import Emergency
from gateway.access.grants import Grant
from gateway.signaling import EMERGENCY_ENDED, Ending, SessionRegistry, ViewerSession
from gateway.store import Store, StoreUnavailable

from .overlay import GrantOverlay

log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.5
READ_SECONDS = 0.4  # a sweep never waits on the database longer than its own period
REMEMBER_EVERY = 20  # sweeps: every grant is read again every 10 s

# How a session ends when its grant stops allowing it, by the rule that failed.
ENDINGS = {
    decision.NO_GRANT: Ending("grant_removed", "grant removed"),
    decision.GRANT_REVOKED: Ending("grant_revoked", "grant revoked"),
    decision.NOT_YET_STARTED: Ending("not_yet_started", "grant not yet started"),
    decision.GRANT_PENDING: Ending("grant_pending", "grant waits for approval"),
    decision.AUTHORIZATION_WITHDRAWN: Ending(
        "authorization_withdrawn", "the police withdrew their authorization"
    ),
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
        sweeps = 0
        while True:
            try:
                await self.sweep()
                if sweeps % REMEMBER_EVERY == 0:
                    await self.remember()
            except Exception:
                log.exception("grant sweep failed")
            sweeps += 1
            await asyncio.sleep(SWEEP_SECONDS)

    async def remember(self) -> None:
        """Read every grant not over, so that while the database cannot be read a
        change that only takes access away can still be made from what it last said
        (GrantOverlay.last_read)."""
        try:
            found = await self.store.read(
                lambda grants, _: grants.list(include_ended=False), READ_SECONDS
            )
        except StoreUnavailable:
            return
        self.overlay.apply(found, self.store.clock())

    async def sweep(self) -> None:
        sessions = list(self.sessions)
        ids = {s.viewer.grant_id for s in sessions if s.viewer.grant_id is not None}
        urgent = {s.viewer.emergency_id for s in sessions if s.viewer.emergency_id is not None}
        try:
            stored, emergencies = await self.store.read(
                lambda grants, _: (
                    grants.find_many(ids),
                    grants.emergencies.find_many(urgent) if urgent else {},
                ),
                READ_SECONDS,
            )
        except StoreUnavailable:
            stored = emergencies = None  # only what is known in memory applies, and the windows
        await self.enforce(sessions, stored, emergencies)

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

    async def heard(self, grant: Grant) -> int:
        """Another node took access away from `grant`, and says what it now is: it
        narrows what this node knows of it, and what it no longer allows ends now."""
        self.overlay.hear(grant)
        bound = [s for s in self.sessions if s.viewer.grant_id == grant.id]
        return await self.enforce(bound, None)

    async def withdrawn_by_id(self, authorization_id: int) -> int:
        """The police withdrew an authorization (here, or on another node that said
        so): every session under it ends now, by the id it is bound to."""
        self.overlay.withdrawn_authorizations.add(authorization_id)
        bound = [s for s in self.sessions if s.viewer.authorization_id == authorization_id]
        return await self.sessions.end_many(bound, ENDINGS[decision.AUTHORIZATION_WITHDRAWN])

    async def emergency_ended_by_id(self, emergency_id: int) -> int:
        """An emergency access ended early (here, or on another node that said so)."""
        self.overlay.ended_emergencies.add(emergency_id)
        bound = [s for s in self.sessions if s.viewer.emergency_id == emergency_id]
        return await self.sessions.end_many(bound, EMERGENCY_ENDED)

    async def enforce(
        self,
        sessions: list[ViewerSession],
        stored: dict[int, Grant] | None,
        emergencies: dict[int, Emergency] | None = None,
    ) -> int:
        """End the sessions their grants no longer allow; `stored`: the grants as read
        from the database, None when it cannot be read (and `emergencies` likewise)."""
        now = self.store.clock()
        ending: dict[Ending, list[ViewerSession]] = defaultdict(list)
        for session in sessions:
            grant_id = session.viewer.grant_id
            emergency_id = session.viewer.emergency_id
            if session.viewer.authorization_id in self.overlay.withdrawn_authorizations:
                ending[ENDINGS[decision.AUTHORIZATION_WITHDRAWN]].append(session)
                continue
            if emergency_id is not None:
                # Admitted by emergency access, not a grant: it lasts while that does
                # (its end is also the session's own deadline, kept in memory).
                found = None if emergencies is None else emergencies.get(emergency_id)
                over = emergency_id in self.overlay.ended_emergencies or (
                    emergencies is not None and (found is None or found.status(now) == "ended")
                )
                if over:
                    ending[EMERGENCY_ENDED].append(session)
                continue
            if grant_id in self.overlay.revoked_ids:
                ending[ENDINGS[decision.GRANT_REVOKED]].append(session)
                continue
            grant = self.overlay.get(grant_id)
            may_extend = True  # the grant as it is, not only what was taken from it
            if grant is None and stored is not None:
                read = stored.get(grant_id) if grant_id is not None else None
                grant = None if read is None else self.overlay.known(read, now)
            elif grant is None:
                # Cannot be read: what another node took away still applies, and the
                # session's own window deadline holds.
                grant, may_extend = self.overlay.heard(grant_id), False
                if grant is None:
                    continue
            if (
                grant is not None
                and grant.authorization_id in self.overlay.withdrawn_authorizations
            ):
                grant = dataclasses.replace(grant, withdrawn=True)
            rule = decision.check(grant, session.account, session.camera_id, now)
            if rule is not None:
                ending[ENDINGS[rule]].append(session)
            elif grant is not None and _moved(session.window_ends_at, grant.ends_at, may_extend):
                session.window_ends_at = grant.ends_at  # moved by an administrator
                self.sessions.reschedule(session)
        ended = 0
        for end, bound in ending.items():
            ended += await self.sessions.end_many(bound, end)
        return ended


def _moved(window: datetime | None, ends_at: datetime, may_extend: bool) -> bool:
    """The session's window moves to `ends_at`: always when that is sooner."""
    if ends_at == window:
        return False
    return may_extend or window is None or ends_at < window
