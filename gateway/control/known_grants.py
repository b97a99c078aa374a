"""KnownGrants: the grants as this gateway knows them now.

That is the store's grants with the GrantOverlay applied: a revocation or a change
that took access away, made here, counts at once, even while the database does
not show it yet (a full disk, a lock). Every reader of grants (admission, the
cameras a viewer sees, the console, administration) reads them through `read`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from gateway.access.grants import Grant
from gateway.store import Store
from gateway.store.grants import GrantNotFound, GrantStore

from .overlay import GrantOverlay

READ_SECONDS = 2.0


class KnownGrants:
    def __init__(self, store: Store, overlay: GrantOverlay) -> None:
        self.store = store
        self.overlay = overlay

    def now(self) -> datetime:
        return self.store.clock()

    async def read(
        self, query: Callable[[GrantStore], Iterable[Grant]], timeout: float = READ_SECONDS
    ) -> list[Grant]:
        """`query`'s grants with this gateway's own changes applied; StoreUnavailable
        when the database cannot answer by `timeout`."""
        found = await self.store.read(lambda grants, _: list(query(grants)), timeout)
        return self.overlay.apply(found, self.now())

    async def naming(self, account: str, camera_id: str) -> list[Grant]:
        """The grants that name `account` and `camera_id`, in any state."""
        return await self.read(lambda grants: grants.naming(account, camera_id))

    async def active_for(self, account: str) -> list[Grant]:
        """The grants that let `account` watch now."""
        now = self.now()
        found = await self.read(lambda grants: grants.active_for(account))
        return [g for g in found if g.is_active(now)]

    async def listing(self, include_ended: bool = True) -> list[Grant]:
        return await self.read(lambda grants: grants.list(include_ended=include_ended))

    async def find(self, grant_id: int) -> Grant | None:
        """One grant: a change made here first, without asking the database."""
        if (changed := self.overlay.get(grant_id)) is not None:
            return changed
        found = await self.read(lambda grants: _one(grants.find(grant_id)))
        return found[0] if found else None

    async def get(self, grant_id: int) -> Grant:
        """As `find`; GrantNotFound if there is no such grant."""
        grant = await self.find(grant_id)
        if grant is None:
            raise GrantNotFound(f"grant {grant_id} not found")
        return grant


def _one(grant: Grant | None) -> list[Grant]:
    return [] if grant is None else [grant]
