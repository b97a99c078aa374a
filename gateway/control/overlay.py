"""GrantOverlay: grant changes this gateway made that the database may not show yet.

A revocation, or a change that takes access away, takes effect in memory at once:
sessions end, and admission and the grant sweep see the grant as it now is, even
while the database cannot be written (full disk, a lock). The entry goes once the
database has the change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from gateway.access.grants import Grant


class GrantOverlay:
    def __init__(self) -> None:
        self._grants: dict[int, Grant] = {}
        # Revoked while the grant itself could not be read: known by id only.
        self.revoked_ids: set[int] = set()
        # Police authorizations withdrawn, and emergency accesses ended, through this
        # gateway or another node: for good, so kept until the process ends.
        self.withdrawn_authorizations: set[int] = set()
        self.ended_emergencies: set[int] = set()

    def put(self, grant: Grant) -> None:
        self._grants[grant.id] = grant

    def get(self, grant_id: int | None) -> Grant | None:
        return None if grant_id is None else self._grants.get(grant_id)

    def apply(self, grants: Iterable[Grant], now: datetime) -> list[Grant]:
        """The grants as this gateway knows them now."""
        known = [self._grants.get(g.id, g) for g in grants]
        return [
            dataclasses.replace(g, revoked_at=g.revoked_at or now)
            if g.id in self.revoked_ids
            else g
            for g in (
                dataclasses.replace(g, withdrawn=True)
                if g.authorization_id in self.withdrawn_authorizations
                else g
                for g in known
            )
        ]

    def written(self, change: Grant | int) -> None:
        """The database has the change that put `change` (a grant, or a revoked id);
        forget it, unless another change was put since."""
        if isinstance(change, int):
            self.revoked_ids.discard(change)
        elif self._grants.get(change.id) is change:
            del self._grants[change.id]

    def __len__(self) -> int:
        return len(self._grants) + len(self.revoked_ids)
