"""AccessAdmin: what administrators do to grants and sessions, each step written down.

Taking access away never waits for the database: sessions end in memory first
(within the call), and the change and its audit rows are queued to be written, in
order, never dropped. If they cannot be written yet, the caller hears that access
has ended and the record is pending (RecordPending). Giving access (creating,
extending) happens only once the database has taken it.

On a node of a cluster, a session or an account revoked here may live on another
node: the cluster's directory finds it, the revocation is recorded here, and the
node that holds it ends it (ClusterNode). A grant change makes every node sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Any

from gateway.access.grants import Grant, changed
from gateway.access.tokens import Identity
from gateway.signaling import Ending, SessionRegistry, ViewerSession
from gateway.store import Store, StoreUnavailable, WritePending
from gateway.store import audit as events
from gateway.store.audit import AuditLog
from gateway.store.grants import GrantStore

from .cluster import ClusterNode
from .enforcer import GrantEnforcer
from .events import EventBus
from .known_grants import KnownGrants
from .overlay import narrowest, narrows
from .refusals import Denied, RecordPending, undecidable


class AccessAdmin:
    def __init__(
        self,
        store: Store,
        grants: KnownGrants,
        bus: EventBus,
        sessions: SessionRegistry,
        enforcer: GrantEnforcer,
        cluster: ClusterNode | None = None,  # on a node of a cluster
        approval: str = "second_admin",  # [governance] approval
    ) -> None:
        self.approval = approval
        self.store = store
        self.grants = grants
        self.overlay = grants.overlay
        self.bus = bus
        self.sessions = sessions
        self.enforcer = enforcer
        self.cluster = cluster

    @property
    def needs_approval(self) -> bool:
        return self.approval != "none"

    async def create_grant(self, admin: Identity, remote: str, fields: dict[str, Any]) -> Grant:
        """A grant under a police authorization (named by `authorization_id` or its
        reference, `authorization_ref`), inside it; `pending` until a second person
        approves, unless `[governance] approval = "none"`."""
        fields = dict(fields)

        def create(grants: GrantStore, audit: AuditLog) -> Grant:
            grant = grants.create(created_by=admin.account, pending=self.needs_approval, **fields)
            pending = {"pending": True} if grant.approval else {}
            _record(audit, events.GRANT_CREATED, admin, remote, grant, **_summary(grant), **pending)
            return grant

        grant = await self._give(create)
        if grant.approval is not None:
            self._announce_waiting(grant)  # its members hear of it once approved
        else:
            self.announce("grant_created", grant, grant.members)
        return grant

    async def approve_grant(self, approver: Identity, remote: str, grant_id: int) -> Grant:
        """A second person approves what waits (a new grant, or a change that widens):
        written to the audit log with the change, before it takes effect."""

        def approve(grants: GrantStore, audit: AuditLog) -> Grant:
            before, after = grants.approve(grant_id, by=approver.account)
            assert before.approval is not None
            _record(
                audit,
                events.GRANT_APPROVED,
                approver,
                remote,
                after,
                kind=before.approval.kind,
                asked_by=list(before.approval.asked_by),
                changes=_diff(before, after),
            )
            return after

        grant = await self._give(approve)
        self.announce("grant_updated", grant, grant.members)
        self._tell_nodes(grant_id)
        return grant

    async def decline_grant(
        self, approver: Identity, remote: str, grant_id: int, reason: str
    ) -> Grant:
        """What waits is turned down: a new grant is revoked, a waiting change dropped.
        Nothing that admits anyone changes, so it lands before it is answered."""

        def decline(grants: GrantStore, audit: AuditLog) -> Grant:
            before, after = grants.decline(grant_id, by=approver.account, reason=reason)
            assert before.approval is not None
            _record(
                audit,
                events.GRANT_DECLINED,
                approver,
                remote,
                after,
                kind=before.approval.kind,
                asked_by=list(before.approval.asked_by),
                reason=reason,
            )
            return after

        grant = await self._give(decline)
        self.announce("grant_updated", grant, frozenset())
        return grant

    async def waiting(self) -> list[dict[str, Any]]:
        """Grants with something waiting for approval, oldest request first, each with
        the change as a diff against the grant as it is now."""
        now = self.store.clock()
        found = [g for g in await self.grants.listing(True) if g.approval is not None]
        found = [g for g in found if g.status(now) not in ("revoked", "ended")]
        found.sort(key=lambda g: g.approval.asked_at if g.approval else now)
        return [self.grants_json(g, now) for g in found]

    async def update_grant(
        self, admin: Identity, remote: str, grant_id: int, changes: dict[str, Any]
    ) -> Grant:
        try:
            before, readable = await self.grants.get(grant_id), True
        except StoreUnavailable:
            # As last read: a change that only takes access away goes ahead all the same.
            before, readable = self.overlay.last_read(grant_id, self.store.clock()), False
            if before is None:
                raise undecidable() from None
        grants = self.store.grants
        changes = dict(changes)
        moving = "authorization_id" in changes or "authorization_ref" in changes
        after = changed(
            before,
            known_cameras=grants.camera_ids,
            max_days=grants.max_days,
            now=self.store.clock(),
            **{
                k: v
                for k, v in changes.items()
                if k not in ("authorization_id", "authorization_ref")
            },
        )
        if after is before and not moving:
            return before
        if not readable and (moving or narrows(after, before)):
            raise undecidable()  # it gives something, or moves it: that needs the database
        if self.needs_approval and before.approval is None and before.widening(after):
            after = before.narrowed_toward(after)  # the rest waits for approval

        def update(grants: GrantStore, audit: AuditLog) -> Grant:
            fields = dict(changes)
            if moving:
                fields["authorization_id"] = grants.authorization_named(fields)
            old, new = grants.update(
                grant_id, by=admin.account, needs_approval=self.needs_approval, **fields
            )
            if new is not old:
                diff = _diff(old, new)
                if diff:
                    _record(audit, events.GRANT_UPDATED, admin, remote, new, changes=diff)
                if new.approval is not None and new.approval != old.approval:
                    _record(
                        audit,
                        events.GRANT_CHANGE_REQUESTED,
                        admin,
                        remote,
                        new,
                        kind=new.approval.kind,
                        change=new.approval.change,
                    )
            return new

        if after is not before and narrows(before, after):
            # What it takes away goes first, from memory, here and straight to the
            # other nodes; the change is written after, and waits. What it gives
            # (a member swapped in) waits for the database, as any widening does.
            taken = narrowest(after, before)  # as of this change (its updated_at)
            self.overlay.put(taken)
            if self.cluster is not None:
                self.cluster.narrow_grant(taken)
            await self.enforcer.apply(taken)
            # Only to who is in it now: a removed member hears no more of this grant
            # (its sessions end with removed_from_grant, which says what it needs).
            self.announce("grant_updated", after, after.members)
            done = self.store.submit(update)
            self._tell_nodes(grant_id)  # goes out once the change is written
            written = await self._take(done, taken)
        else:
            written = await self._give(update)
            self.announce("grant_updated", written, written.members)
            self._tell_nodes(grant_id)
        if written.approval is not None and written.approval != before.approval:
            self._announce_waiting(written)
        return written

    async def revoke_grant(self, admin: Identity, remote: str, grant_id: int, reason: str) -> Grant:
        try:
            before: Grant | None = await self._current(grant_id)
        except Denied:
            before = None  # cannot be read: revoke by id, from memory, all the same
        if before is not None:
            now = self.store.clock()
            revoked = dataclasses.replace(
                before, revoked_at=now, revoked_by=admin.account, revoke_reason=reason
            )
            self.overlay.put(revoked)
            await self.enforcer.apply(revoked)
            self.announce("grant_revoked", revoked, revoked.members)
        else:
            await self.enforcer.revoked_by_id(grant_id)
        if self.cluster is not None:
            self.cluster.revoke_grant(grant_id)  # the other nodes, now, database or not

        def revoke(grants: GrantStore, audit: AuditLog) -> Grant:
            grant = grants.revoke(grant_id, by=admin.account, reason=reason)
            _record(audit, events.GRANT_REVOKED, admin, remote, grant, reason=reason)
            return grant

        done = self.store.submit(revoke)
        self._tell_nodes(grant_id)  # goes out once the revocation is written
        return await self._take(done, revoked if before is not None else grant_id)

    async def revoke_session(
        self, admin: Identity, remote: str, session_id: str, reason: str
    ) -> bool:
        ending = revoked_by_admin(reason)
        session = self.sessions.get(session_id)
        if session is None:
            if self.cluster is None:
                return False
            try:
                row = await self.cluster.directory.find(session_id)
            except StoreUnavailable:
                # The directory cannot be read: the id names the node that holds it.
                row = self.cluster.unlisted(session_id)
                if row is None:
                    raise
            if row is None:
                return False
            landed = self._record_revocation(admin, remote, row, reason)
            self.cluster.revoke_session(row, ending, admin.account)
            await self._landed([landed])
            return True
        landed = self._record_revocation(admin, remote, _listed(session), reason)
        ended = await self.sessions.end(session_id, ending, admin.account)
        await self._landed([landed])
        return ended

    async def revoke_account(self, admin: Identity, remote: str, account: str, reason: str) -> int:
        """End the account's sessions here, and on every other node; returns how many."""
        ending = revoked_by_admin(reason)
        sessions = [s for s in self.sessions if s.account == account]
        elsewhere: list[dict[str, Any]] = []
        if self.cluster is not None:
            # Sent whatever the directory says: a node whose sessions it cannot list
            # still ends them when the message reaches it.
            self.cluster.revoke_account(account, ending, admin.account)
            try:
                rows = await self.cluster.directory.rows()
            except StoreUnavailable:
                rows = []
            elsewhere = [row for row in rows if row["account"] == account]
        landed = [
            self._record_revocation(admin, remote, row, reason)
            for row in [_listed(s) for s in sessions] + elsewhere
        ]
        # Offers of the account still being answered are ended too, never answered.
        ended = await self.sessions.end_account(account, ending, admin.account)
        await self._landed(landed)
        return ended + len(elsewhere)

    async def listing(self, include_ended: bool = True) -> list[dict[str, Any]]:
        """Every grant as the console shows it (StoreUnavailable if it cannot be read)."""
        now = self.store.clock()
        return [self.grants_json(g, now) for g in await self.grants.listing(include_ended)]

    async def grant(self, grant_id: int) -> dict[str, Any]:
        return self.grants_json(await self.grants.get(grant_id))

    async def live_sessions(self, admin: Identity, remote: str) -> list[dict[str, Any]]:
        """Every live session, on every node (StoreUnavailable when other nodes'
        cannot be read). Who watches what, from where, is personal data too: reading
        it is written down before the rows go out."""
        sessions = await self.sessions.everywhere()
        await record_read(
            self.store, admin, remote, what="sessions", format="json", rows=len(sessions)
        )
        return sessions

    async def audit_rows(
        self, admin: Identity, remote: str, filters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Audit rows matching `filters` (AuditLog.query's), the read written down first."""
        return await self._audit(admin, remote, filters, "json")

    async def audit_csv(self, admin: Identity, remote: str, filters: dict[str, Any]) -> str:
        """The same as CSV, safe to open in a spreadsheet."""
        return AuditLog.to_csv(await self._audit(admin, remote, filters, "csv"))

    async def _audit(
        self, admin: Identity, remote: str, filters: dict[str, Any], format: str
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self.store.read(lambda _, audit: audit.query(**filters))
        await record_read(
            self.store, admin, remote, what="audit", format=format, filters=filters, rows=len(rows)
        )
        return rows

    # --- helpers ------------------------------------------------------------------

    async def _current(self, grant_id: int) -> Grant:
        try:
            return await self.grants.get(grant_id)
        except StoreUnavailable:
            raise undecidable() from None

    async def _give(self, job: Any) -> Grant:
        """A change that gives access lands before it takes effect, or not at all."""
        try:
            return await self.store.write(job)
        except StoreUnavailable:
            raise undecidable() from None

    def _tell_nodes(self, grant_id: int) -> None:
        """Every other node sweeps its sessions at once (after the change is written)."""
        if self.cluster is not None:
            self.cluster.grant_changed(grant_id)

    async def _take(self, done: asyncio.Future[Any], in_memory: Grant | int) -> Grant:
        """A change that takes access away: already in effect, and queued (`done`, from
        Store.submit) to be written in order. The in-memory change (a grant, or a
        revoked grant's id) stays until the database has it, or refuses it by its own
        rules."""
        done.add_done_callback(lambda _: self.overlay.written(in_memory))
        try:
            await self.store.landed(done)
        except WritePending:
            raise RecordPending("the change waits for the database") from None
        return done.result()

    def _record_revocation(
        self, admin: Identity, remote: str, session: dict[str, Any], reason: str
    ) -> Any:
        """`session` as the directory lists it (id, account, camera, grant, project)."""
        return self.store.record(
            events.SESSION_REVOKED,
            account=session["account"],
            camera_id=session["camera_id"],
            grant_id=session["grant_id"],
            project=session["project"],
            remote=remote,
            session_id=session["id"],
            by=admin.account,
            reason=reason,
        )

    async def _landed(self, records: list[Any]) -> None:
        for record in records:
            try:
                await self.store.landed(record)
            except WritePending:
                raise RecordPending("the record waits for the database") from None

    def announce(self, kind: str, grant: Grant, members: frozenset[str]) -> None:
        # Administrators get the whole grant; its members only what they need of it.
        self.bus.publish(
            kind,
            {"grant": self.grants_json(grant)},
            accounts=members,
            viewer_data={"grant": grant.to_viewer_json(self.store.clock())},
        )

    def _announce_waiting(self, grant: Grant) -> None:
        """Who may approve hears that something waits (administrators always do)."""
        roles = ("police_liaison",) if self.approval == "police_liaison" else ()
        self.bus.publish("approval_requested", {"grant": self.grants_json(grant)}, roles=roles)

    def grants_json(self, grant: Grant, now: datetime | None = None) -> dict[str, Any]:
        """A grant as the console shows it, with the cameras that left the inventory,
        and what waits for approval as a diff against the grant as it is."""
        gone = grant.cameras - self.store.grants.camera_ids
        found = {**grant.to_json(now or self.store.clock()), "cameras_gone": sorted(gone)}
        if grant.approval is not None:
            found["approval"]["diff"] = waiting_diff(grant)
        return found


async def record_read(store: Store, who: Identity, remote: str, **detail: Any) -> None:
    """A read of personal data (who watches, who may, who asked), recorded before the
    rows go out: a read that cannot be recorded sends none (WritePending)."""
    written = store.record(events.ADMIN_READ, account=who.account, remote=remote, **detail)
    await store.landed(written)


def _listed(session: ViewerSession) -> dict[str, Any]:
    """A session of this node, as the cluster's directory lists one."""
    return {
        "id": session.id,
        "account": session.account,
        "camera_id": session.camera_id,
        "grant_id": session.viewer.grant_id,
        "project": session.viewer.project,
    }


def revoked_by_admin(reason: str) -> Ending:
    return Ending("revoked", f"revoked by an administrator: {reason}")


def _record(
    audit: AuditLog, event: str, admin: Identity, remote: str, grant: Grant, **detail: Any
) -> None:
    audit.record(
        event,
        account=admin.account,
        grant_id=grant.id,
        project=grant.project,
        remote=remote,
        # The grant as it now is: `gateway audit verify` compares the row with it.
        grant_hash=grant.content_hash(),
        **detail,
    )


def _diff(old: Grant, new: Grant) -> dict[str, Any]:
    before, after = _summary(old), _summary(new)
    return {
        key: {"from": value, "to": after[key]}
        for key, value in before.items()
        if value != after[key]
    }


def waiting_diff(grant: Grant) -> dict[str, Any]:
    """What a waiting change would do to `grant` as it is now, field by field (sets as
    added and removed): what the approver sees."""
    if grant.approval is None or grant.approval.kind == "new":
        return {}
    now = grant.to_json(grant.updated_at)
    diff: dict[str, Any] = {}
    for key, value in grant.approval.change.items():
        current = now.get(key)
        if isinstance(value, list) and isinstance(current, list):
            added, removed = sorted(set(value) - set(current)), sorted(set(current) - set(value))
            if added or removed:
                diff[key] = {"added": added, "removed": removed}
        elif value != current:
            diff[key] = {"from": current, "to": value}
    return diff


def _summary(grant: Grant) -> dict[str, Any]:
    """What a grant change is recorded as: who, which cameras, when, on what authority."""
    return {
        "members": sorted(grant.members),
        "cameras": sorted(grant.cameras),
        "starts_at": grant.starts_at.isoformat(),
        "ends_at": grant.ends_at.isoformat(),
        "purpose": grant.purpose,
        "authorization_ref": grant.authorization_ref,
        "authorization_id": grant.authorization_id,
    }
