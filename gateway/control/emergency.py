"""EmergencyAccess: opening a camera without a grant, under 要點第五條 (an imminent
danger to a person's life, body, freedom or property), and looking back at it.

It is not a back door. The account must be allowed it (`[governance]
emergency_accounts` or a group claim), states the danger in words, and gets at most
`emergency_minutes`, for at most `emergency_cameras` cameras at once. The access is
written to the audit log (`emergency_access`) before it opens anything; then the
viewer opens the camera with WHEP as usual, with the same token checks, limits,
revocation and audit as any session. Every administrator's and liaison's console
hears it at once. A liaison (or an administrator) can end it early, on every node;
it ends by itself at its minutes on every node (each session's own deadline). Each
use is reviewed afterwards, justified or not, with a note.
"""

from __future__ import annotations

from typing import Any

from gateway.access.emergency import Emergency, danger_of, minutes_of, review_of
from gateway.access.grants import RuleBroken
from gateway.access.tokens import Identity
from gateway.config import GovernanceSettings
from gateway.relay import CameraHubs
from gateway.store import Store, StoreUnavailable, WritePending
from gateway.store import audit as events
from gateway.store.audit import AuditLog
from gateway.store.grants import GrantStore

from .administration import record_read
from .cluster import ClusterNode
from .enforcer import GrantEnforcer
from .events import EventBus
from .refusals import Denied, RecordPending, undecidable

TOO_LONG = "emergency_too_long"
SELF_REVIEW = "self_review"
WATCHERS = ("police_liaison",)  # besides administrators, who hear everything


class EmergencyAccess:
    def __init__(
        self,
        settings: GovernanceSettings,
        store: Store,
        hubs: CameraHubs,
        bus: EventBus,
        enforcer: GrantEnforcer,
        cluster: ClusterNode | None = None,
    ) -> None:
        self.minutes = settings.emergency_minutes
        self.cameras = settings.emergency_cameras
        self.store = store
        self.hubs = hubs
        self.bus = bus
        self.enforcer = enforcer
        self.cluster = cluster

    async def open(
        self, who: Identity, remote: str, camera_id: str, body: dict[str, Any]
    ) -> tuple[Emergency, bool]:
        """(the emergency access, whether it is new). The same camera asked again
        while its access lasts gives the one already open."""
        if self.hubs.get(camera_id) is None:
            raise Denied("unknown_camera", f"no camera with id {camera_id!r}")
        danger = danger_of(body.get("danger"))
        asked = body.get("minutes")
        if isinstance(asked, int) and not isinstance(asked, bool) and asked > self.minutes:
            raise RuleBroken(
                TOO_LONG, "minutes", f"emergency access lasts at most {self.minutes} minutes"
            )
        minutes = minutes_of(asked, self.minutes)
        ended = self.enforcer.overlay.ended_emergencies

        def open_one(grants: GrantStore, audit: AuditLog) -> tuple[Emergency, bool]:
            active = [e for e in grants.emergencies.active_for(who.account) if e.id not in ended]
            for emergency in active:
                if emergency.camera_id == camera_id:
                    return emergency, False
            if len({e.camera_id for e in active}) >= self.cameras:
                raise Denied(
                    "too_many",
                    f"emergency access is open on {self.cameras} cameras already, the most"
                    " at once; end one first",
                    10,
                )
            made = grants.emergencies.create(
                account=who.account,
                camera_id=camera_id,
                danger=danger,
                minutes=minutes,
                remote=remote,
            )
            _record(
                audit,
                events.EMERGENCY_ACCESS,
                who.account,
                remote,
                made,
                danger=danger,
                minutes=minutes,
                ends_at=made.ends_at,
            )
            return made, True

        try:
            emergency, new = await self.store.write(open_one)
        except StoreUnavailable:
            raise undecidable() from None
        if new:
            self._announce("emergency_started", emergency)
        return emergency, new

    async def end(self, who: Identity, remote: str, emergency_id: int, reason: str) -> Emergency:
        """Ended early, here and on every node; the record is queued ahead of the effect."""

        def end(grants: GrantStore, audit: AuditLog) -> Emergency:
            done = grants.emergencies.end(emergency_id, by=who.account, reason=reason)
            _record(audit, events.EMERGENCY_ENDED, who.account, remote, done, reason=reason)
            return done

        try:
            found = await self.store.read(
                lambda grants, _: grants.emergencies.find_many([emergency_id])
            )
            if emergency_id not in found:
                raise Denied("unknown_emergency", "no such emergency access")
        except StoreUnavailable:
            pass  # cannot be read: ended by id, from memory, all the same
        done = self.store.submit(end)
        await self.enforcer.emergency_ended_by_id(emergency_id)
        if self.cluster is not None:
            self.cluster.end_emergency(emergency_id)
        try:
            await self.store.landed(done)
        except WritePending:
            raise RecordPending("the end of the emergency access waits for the database") from None
        emergency: Emergency = done.result()
        self._announce("emergency_ended", emergency)
        return emergency

    async def review(
        self, who: Identity, remote: str, emergency_id: int, body: dict[str, Any]
    ) -> Emergency:
        """Justified or not, with a note: written down before it counts."""
        justified, note = review_of(body.get("justified"), body.get("note"))

        def review(grants: GrantStore, audit: AuditLog) -> Emergency:
            if grants.emergencies.get(emergency_id).account == who.account:
                raise RuleBroken(SELF_REVIEW, "emergency", "its own user cannot review it")
            done = grants.emergencies.review(
                emergency_id, by=who.account, justified=justified, note=note
            )
            _record(
                audit,
                events.EMERGENCY_REVIEWED,
                who.account,
                remote,
                done,
                justified=justified,
                note=note,
            )
            return done

        try:
            done: Emergency = await self.store.write(review)
        except StoreUnavailable:
            raise undecidable() from None
        self._announce("emergency_reviewed", done)
        return done

    async def listing(self, who: Identity, remote: str) -> list[dict[str, Any]]:
        """Every emergency access (its own for an account that only uses them),
        newest first; the unreviewed always among them. The read is written down
        first."""
        now = self.store.clock()
        try:
            found = await self.store.read(lambda grants, _: grants.emergencies.list())
        except StoreUnavailable:
            raise undecidable() from None
        if not who.has("admin", "police_liaison", "auditor"):
            found = [e for e in found if e.account == who.account]
        await record_read(self.store, who, remote, what="emergencies", rows=len(found))
        return [e.to_json(now) for e in found]

    def cameras_json(self) -> list[dict[str, str]]:
        """Every camera an emergency may open: id, name and district, never a source."""
        return [
            {"id": h.id, "name": h.camera.name, "district": h.camera.district} for h in self.hubs
        ]

    def limits(self) -> dict[str, int]:
        return {"minutes": self.minutes, "cameras": self.cameras}

    def _announce(self, kind: str, emergency: Emergency) -> None:
        data = {"emergency": emergency.to_json(self.store.clock())}
        self.bus.publish(kind, data, [emergency.account], roles=WATCHERS)


def _record(
    audit: AuditLog, event: str, account: str, remote: str, emergency: Emergency, **detail: Any
) -> None:
    audit.record(
        event,
        account=account,
        camera_id=emergency.camera_id,
        remote=remote,
        emergency_id=emergency.id,
        # As it now is: `gateway audit verify` compares the row with it.
        emergency_hash=emergency.content_hash(),
        user=emergency.account,
        **detail,
    )
