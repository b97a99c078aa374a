"""PoliceConsent: what police liaisons (and administrators for them) do with the
police's consent: record it, confirm it, withdraw it.

Recording and confirming give access a footing, so they land in the database (with
their audit rows, in one transaction) before they are answered. A withdrawal takes
access away and never waits: its audit row and the change are queued first, then
every session under the authorization ends here and on every other node (code
`authorization_withdrawn`), and the caller hears `record_pending` if the record
cannot land yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.access.authorizations import Authorization, fields_of
from gateway.access.grants import Grant
from gateway.access.tokens import Identity
from gateway.store import Store, StoreUnavailable, WritePending
from gateway.store import audit as events
from gateway.store.audit import AuditLog
from gateway.store.grants import GrantStore

from .administration import AccessAdmin, record_read
from .cluster import ClusterNode
from .enforcer import GrantEnforcer
from .events import EventBus
from .known_grants import KnownGrants
from .refusals import Denied, RecordPending, undecidable

LIAISONS = ("police_liaison",)


class PoliceConsent:
    def __init__(
        self,
        store: Store,
        grants: KnownGrants,
        bus: EventBus,
        enforcer: GrantEnforcer,
        admin: AccessAdmin,
        cluster: ClusterNode | None = None,
    ) -> None:
        self.admin = admin  # tells who hears of grants that the withdrawal ended
        self.store = store
        self.grants = grants
        self.bus = bus
        self.enforcer = enforcer
        self.cluster = cluster

    async def record(self, who: Identity, remote: str, body: dict[str, Any]) -> Authorization:
        """A liaison's record is confirmed; an administrator's, entered on a liaison's
        behalf, waits unconfirmed for a liaison."""
        fields = fields_of(body, self.store.grants.camera_ids)
        confirmed = who.is_liaison

        def record(grants: GrantStore, audit: AuditLog) -> Authorization:
            made = grants.authorizations.create(fields, by=who.account, confirmed=confirmed)
            _record(audit, events.AUTHORIZATION_RECORDED, who, remote, made, **_summary(made))
            return made

        made = await self._land(record)
        self._announce("authorization_recorded", made)
        return made

    async def confirm(
        self, liaison: Identity, remote: str, authorization_id: int, purpose: object
    ) -> Authorization:
        def confirm(grants: GrantStore, audit: AuditLog) -> Authorization:
            done = grants.authorizations.confirm(
                authorization_id, by=liaison.account, purpose=purpose
            )
            _record(
                audit,
                events.AUTHORIZATION_CONFIRMED,
                liaison,
                remote,
                done,
                purpose_class=done.purpose_class,
            )
            return done

        done = await self._land(confirm)
        self._announce("authorization_confirmed", done)
        return done

    async def withdraw(
        self, liaison: Identity, remote: str, authorization_id: int, reason: str
    ) -> Authorization:
        """Every grant under it is revoked and every session on them ends, on every
        node, before this returns; the record is queued ahead of the effect."""

        ended: list[Grant] = []

        def withdraw(grants: GrantStore, audit: AuditLog) -> Authorization:
            ended.clear()  # a retried job starts afresh
            done = grants.authorizations.withdraw(
                authorization_id, by=liaison.account, reason=reason
            )
            _record(audit, events.AUTHORIZATION_WITHDRAWN, liaison, remote, done, reason=reason)
            for grant in grants.under(authorization_id):
                if grant.revoked_at is not None:
                    continue
                revoked = grants.revoke(
                    grant.id, by=liaison.account, reason=f"authorization withdrawn: {reason}"
                )
                audit.record(
                    events.GRANT_REVOKED,
                    account=liaison.account,
                    grant_id=revoked.id,
                    project=revoked.project,
                    remote=remote,
                    grant_hash=revoked.content_hash(),
                    reason=revoked.revoke_reason,
                    authorization_id=authorization_id,
                )
                ended.append(revoked)
            return done

        try:
            current = await self.find(authorization_id)
            if current is None:
                raise Denied("unknown_authorization", "no such police authorization")
            if current.state == "withdrawn":
                raise Denied(
                    "invalid_field", "authorization: already withdrawn", field="authorization"
                )
        except StoreUnavailable:
            pass  # cannot be read: withdrawn by id, from memory, all the same
        # Queued first, never dropped: the record goes ahead of the effect.
        done = self.store.submit(withdraw)
        await self.enforcer.withdrawn_by_id(authorization_id)
        if self.cluster is not None:
            self.cluster.withdraw_authorization(authorization_id)
        self.bus.publish(
            "authorization_withdrawn",
            {"authorization_id": authorization_id, "reason": reason},
            roles=LIAISONS,
        )
        try:
            await self.store.landed(done)
        except WritePending:
            raise RecordPending("the withdrawal waits for the database") from None
        withdrawn: Authorization = done.result()
        for grant in ended:
            self.admin.announce("grant_revoked", grant, grant.members)
        return withdrawn

    async def find(self, authorization_id: int) -> Authorization | None:
        return await self.store.read(lambda grants, _: grants.authorizations.find(authorization_id))

    async def listing(self, who: Identity, remote: str) -> list[dict[str, Any]]:
        """Every authorization, newest first, each with the grants under it (what was
        granted on the police's consent); the read is written down first."""
        now = self.store.clock()

        def read(grants: GrantStore, _: AuditLog) -> list[tuple[Authorization, list[Grant]]]:
            return [(a, grants.under(a.id)) for a in grants.authorizations.list()]

        try:
            found = await self.store.read(read)
        except StoreUnavailable:
            raise undecidable() from None
        await record_read(self.store, who, remote, what="authorizations", rows=len(found))
        return [
            {
                **a.to_json(now),
                "grants": [_grant_line(g, now) for g in self.grants.overlay.apply(under, now)],
            }
            for a, under in found
        ]

    async def _land(self, job: Any) -> Any:
        try:
            return await self.store.write(job)
        except StoreUnavailable:
            raise undecidable() from None

    def _announce(self, kind: str, authorization: Authorization) -> None:
        self.bus.publish(
            kind, {"authorization": authorization.to_json(self.store.clock())}, roles=LIAISONS
        )


def _grant_line(grant: Grant, now: datetime) -> dict[str, Any]:
    return {
        "id": grant.id,
        "project": grant.project,
        "members": sorted(grant.members),
        "cameras": sorted(grant.cameras),
        "starts_at": grant.to_json(now)["starts_at"],
        "ends_at": grant.to_json(now)["ends_at"],
        "status": grant.status(now),
    }


def _record(
    audit: AuditLog,
    event: str,
    who: Identity,
    remote: str,
    authorization: Authorization,
    **detail: Any,
) -> None:
    audit.record(
        event,
        account=who.account,
        remote=remote,
        authorization_id=authorization.id,
        # As it now is: `gateway audit verify` compares the row with it.
        authorization_hash=authorization.content_hash(),
        **detail,
    )


def _summary(authorization: Authorization) -> dict[str, Any]:
    return {
        "reference": authorization.reference,
        "cameras": sorted(authorization.cameras),
        "districts": sorted(authorization.districts),
        "starts_at": authorization.starts_at.isoformat(),
        "ends_at": authorization.ends_at.isoformat(),
        "purpose_class": authorization.purpose_class,
        "state": authorization.state,
        "on_behalf_of": authorization.on_behalf_of,
    }
