"""GrantOverlay: grant changes that take access away, known before the database has them.

A revocation, or a change that takes access away, takes effect in memory at once:
sessions end, and admission and the grant sweep see the grant as it now is, even
while the database cannot be written (full disk, a lock). The entry goes once the
database has the change.

On a node of a cluster, what another node took away from a grant arrives straight
from it (ClusterNode), also while PostgreSQL is away, and is `heard` here. A heard
change only ever narrows what the database says (members and cameras both must
keep, the later start, the earlier end): a message between nodes can end access,
never give it. It goes once the database shows that change or a later one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from gateway.access.grants import Grant


def narrowest(grant: Grant, other: Grant) -> Grant:
    """`grant` allowing only what `other` allows too."""
    return dataclasses.replace(
        grant,
        members=grant.members & other.members,
        cameras=grant.cameras & other.cameras,
        starts_at=max(grant.starts_at, other.starts_at),
        ends_at=min(grant.ends_at, other.ends_at),
        revoked_at=grant.revoked_at or other.revoked_at,
    )


def narrows(before: Grant, after: Grant) -> bool:
    """`after` takes something from `before`: a member, a camera, or time."""
    return narrowest(before, after) != before


class GrantOverlay:
    def __init__(self) -> None:
        self._grants: dict[int, Grant] = {}
        # Revoked while the grant itself could not be read: known by id only.
        self.revoked_ids: set[int] = set()
        # Police authorizations withdrawn, and emergency accesses ended, through this
        # gateway or another node: for good, so kept until the process ends.
        self.withdrawn_authorizations: set[int] = set()
        self.ended_emergencies: set[int] = set()
        # What other nodes took away, as each last said the grant now is.
        self._heard: dict[int, Grant] = {}
        # Each grant as the database last showed it: while it cannot be read, a
        # change that only takes access away can still be made from it.
        self._read: dict[int, Grant] = {}

    def put(self, grant: Grant) -> None:
        self._grants[grant.id] = grant

    def get(self, grant_id: int | None) -> Grant | None:
        """A change made here, narrowed by what other nodes took away since."""
        if grant_id is None or (grant := self._grants.get(grant_id)) is None:
            return None
        heard = self._heard.get(grant_id)
        return grant if heard is None else narrowest(grant, heard)

    def hear(self, grant: Grant) -> None:
        """Another node took access away from `grant` (it says what it now is)."""
        before = self._heard.get(grant.id)
        if before is not None:  # kept until the database has the later of the two
            later = max(before.updated_at, grant.updated_at)
            grant = dataclasses.replace(narrowest(before, grant), updated_at=later)
        self._heard[grant.id] = grant

    def heard(self, grant_id: int | None) -> Grant | None:
        """What another node said a grant now is: all that is known of it while the
        database cannot be read. It may only end access."""
        return None if grant_id is None else self._heard.get(grant_id)

    def apply(self, grants: Iterable[Grant], now: datetime) -> list[Grant]:
        """The grants as this gateway knows them now."""
        return [self.known(g, now) for g in grants]

    def last_read(self, grant_id: int, now: datetime) -> Grant | None:
        """A grant as the database last showed it, as this gateway knows it now."""
        stored = self._read.get(grant_id)
        return None if stored is None else self.known(stored, now)

    def known(self, stored: Grant, now: datetime) -> Grant:
        """A grant read from the database, as this gateway knows it now."""
        self._read[stored.id] = stored
        grant = self._grants.get(stored.id, stored)
        heard = self._heard.get(stored.id)
        if heard is not None:
            if stored.updated_at >= heard.updated_at:
                del self._heard[stored.id]  # the database has that change, or a later one
            else:
                grant = narrowest(grant, heard)
        if grant.authorization_id in self.withdrawn_authorizations:
            grant = dataclasses.replace(grant, withdrawn=True)
        if grant.id in self.revoked_ids:
            grant = dataclasses.replace(grant, revoked_at=grant.revoked_at or now)
        return grant

    def written(self, change: Grant | int) -> None:
        """The database has the change that put `change` (a grant, or a revoked id);
        forget it, unless another change was put since."""
        if isinstance(change, int):
            self.revoked_ids.discard(change)
        elif self._grants.get(change.id) is change:
            del self._grants[change.id]

    def __len__(self) -> int:
        return len(self._grants) + len(self.revoked_ids) + len(self._heard)
