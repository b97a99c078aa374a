"""PrivacyMasks: a camera's privacy masks as data administrators change, and lifts of
them for one grant (docs/masks.md).

A change is written to the audit log first (who, which camera, before, after, why),
in the same transaction as the masks themselves; if it cannot be written, nothing
changes (`audit_unavailable`). Then it is put in force on this node
(CameraHubs.set_masks: within a frame or two, nobody reconnects) and on every other
node (a `masks_changed` message, after the change is committed). Masks set here win
over the camera's [[cameras]] table and inventory, across reloads and restarts.

A lift shows one grant's viewers a camera's picture without masks for
`[governance] mask_lift_minutes`: asked for with a reason, approved by a second
person under the same rule as a grant's approval (`[governance] approval`; the one
who asked never approves), each step audited. Once approved it is in force on
every node (CameraHub.lift_masks); each hub ends it by itself when the time runs
out, and the first node to notice records the expiry. The grant's members hear
`masks_lifted` and `masks_restored` (their tiles say so).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from gateway.access.grants import RuleBroken, iso_z
from gateway.access.mask_lifts import MaskLift, check_decider, check_endable, check_liftable
from gateway.access.tokens import Identity
from gateway.config import MaskError, MaskSettings, parse_masks
from gateway.relay import CameraHubs
from gateway.store import Store, StoreUnavailable, WritePending
from gateway.store import audit as events
from gateway.store.audit import AuditLog
from gateway.store.grants import GrantStore
from gateway.store.masks import StoredMasks

from .administration import record_read
from .cluster import ClusterNode
from .events import EventBus
from .refusals import RETRY_SECONDS, Denied, RecordPending, undecidable

log = logging.getLogger(__name__)

INVALID_MASK = "invalid_mask"
NOT_MASKED = "not_masked"
REASON_MAX = 500
# Stored masks are taken as they were written, even if [relay] max_masks was lowered
# since: hiding more than the limit is safer than showing what they hid.
STORED_MAX = 256
# In force for a camera whose stored masks cannot be read (invariant 10).
WHOLE_PICTURE = MaskSettings(
    label="stored masks unreadable", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
)


def masks_json(masks: tuple[MaskSettings, ...]) -> list[dict[str, Any]]:
    return [
        {"label": m.label, "polygon": [list(p) for p in m.polygon], "fill": m.fill} for m in masks
    ]


def change_not_recorded() -> Denied:
    """The audit row comes first: a change that cannot be written down is refused."""
    return Denied(
        "audit_unavailable",
        "the change cannot be recorded right now, so nothing changed; try again shortly",
        RETRY_SECONDS,
    )


class PrivacyMasks:
    def __init__(
        self,
        store: Store,
        hubs: CameraHubs,
        bus: EventBus,
        *,
        max_masks: int,
        approval: str,
        lift_minutes: float,
        cluster: ClusterNode | None = None,
    ) -> None:
        self.store = store
        self.hubs = hubs
        self.bus = bus
        self.max_masks = max_masks
        self.approval = approval
        self.lift_seconds = max(1, round(lift_minutes * 60))
        self.cluster = cluster
        # (camera, grant) -> when to record the end of its lift, and its end
        self._ends: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self._until: dict[tuple[str, int], datetime] = {}
        self._lift_keys: dict[int, tuple[str, int]] = {}  # lift id -> (camera, grant)
        self._background: set[asyncio.Task[Any]] = set()
        if cluster is not None:
            cluster.messages.on("masks_changed", self._heard_masks)
            cluster.messages.on("masks_lifted", self._heard_lift)
            # Ending a lift early takes something away: it travels as a revocation.
            cluster.messages.on("masks_restored", self._heard_restore, once=True)
            # Notices sent while this node was not listening are lost: read afresh.
            cluster.messages.on_reconnect.append(lambda: self._spawn(self._reload()))

    # --- start and stop ---------------------------------------------------------------

    async def load(self) -> None:
        """The stored masks and the lifts in force, put in force here (at start-up,
        and when a cluster node listens again); lifts that ran out meanwhile are
        recorded as over."""

        def read(grants: GrantStore, _: AuditLog) -> tuple[list[StoredMasks], list[MaskLift]]:
            return grants.masks.every(), grants.masks.in_force()

        stored, lifts = await self.store.read(read)
        for row in stored:
            try:
                masks = parse_masks(row.masks, STORED_MAX)
            except MaskError as exc:  # written by hand, or by a newer version
                # Fail closed: what it hid is unknown, so the whole picture is hidden.
                log.error(
                    "camera %s: stored privacy masks unreadable, whole picture masked: %s",
                    row.camera_id,
                    exc,
                )
                masks = (WHOLE_PICTURE,)
            self.hubs.set_masks(row.camera_id, masks)
        for lift in lifts:
            self._put_lift(lift.id, lift.camera_id, lift.grant_id, lift.until)
        self._spawn(self._record_ends())

    async def _reload(self) -> None:
        try:
            await self.load()
        except StoreUnavailable as exc:  # the next reconnect tries again
            log.warning("privacy masks not read again: %s", exc)

    def close(self) -> None:
        for timer in self._ends.values():
            timer.cancel()
        self._ends.clear()
        for task in self._background:
            task.cancel()

    # --- a camera's masks -------------------------------------------------------------

    async def current(self, who: Identity, remote: str, camera_id: str) -> dict[str, Any]:
        """The masks in force for a camera, where they come from, and its lifts."""
        self._camera(camera_id)
        try:
            stored, lifts = await self.store.read(
                lambda grants, _: (grants.masks.get(camera_id), grants.masks.listing())
            )
        except StoreUnavailable:
            raise undecidable() from None
        await record_read(self.store, who, remote, what="masks", camera_id=camera_id)
        now = self.store.clock()
        return self._masks_json(camera_id, stored) | {
            "lifts": [lift.to_json(now) for lift in lifts if lift.camera_id == camera_id],
        }

    async def change(
        self, admin: Identity, remote: str, camera_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """New masks for a camera, with the reason: audited, stored, then in force on
        every node. Denied `invalid_mask` (422, naming the field) changes nothing."""
        self._camera(camera_id)
        reason = reason_of(body.get("reason"))
        if "masks" not in body:
            raise Denied(INVALID_MASK, "masks: required (a list, [] for none)", field="masks")
        try:
            masks = parse_masks(body["masks"], self.max_masks)
        except MaskError as exc:
            raise Denied(INVALID_MASK, str(exc), field=exc.field) from None
        before, after = masks_json(self._in_force(camera_id)), masks_json(masks)

        def write(grants: GrantStore, audit: AuditLog) -> StoredMasks:
            # The audit row first, in the change's own transaction.
            audit.record(
                events.MASKS_CHANGED,
                account=admin.account,
                camera_id=camera_id,
                remote=remote,
                before=before,
                after=after,
                reason=reason,
            )
            grants.masks.put(camera_id, after, by=admin.account, reason=reason)
            stored = grants.masks.get(camera_id)
            assert stored is not None
            return stored

        try:
            stored = await self.store.write(write)
        except StoreUnavailable:
            raise change_not_recorded() from None
        self.hubs.set_masks(camera_id, masks)
        if self.cluster is not None:
            # After the change is committed (the same ordered queue), to every node.
            self.cluster.messages.send(
                {"type": "masks_changed", "camera_id": camera_id, "masks": after}
            )
        found = self._masks_json(camera_id, stored)
        self.bus.publish("masks_changed", {"camera": found})  # administrators
        return found

    def _masks_json(self, camera_id: str, stored: StoredMasks | None) -> dict[str, Any]:
        hub = self._camera(camera_id)
        return {
            "camera_id": camera_id,
            "masks": masks_json(hub.masks),
            "source": "administrator" if self.hubs.masks_set(camera_id) else "configured",
            "configured": masks_json(self.hubs.configured_masks(camera_id)),
            "changed_by": stored.changed_by if stored else None,
            "changed_at": iso_z(stored.changed_at) if stored else None,
            "reason": stored.reason if stored else None,
            "max_masks": self.max_masks,
            # The grants whose viewers see this camera unmasked now, on this node.
            "lifted_for": sorted(g for g in hub.lifted_for if isinstance(g, int)),
        }

    # --- lifting them for one grant ---------------------------------------------------

    async def ask_lift(
        self, admin: Identity, remote: str, camera_id: str, body: dict[str, Any]
    ) -> MaskLift:
        """A lift for one grant, with the reason; it waits for a second person (or,
        with `[governance] approval = "none"`, is in force at once)."""
        hub = self._camera(camera_id)
        if not hub.masks:
            raise RuleBroken(NOT_MASKED, "camera_id", "this camera has no privacy masks to lift")
        reason = reason_of(body.get("reason"))
        grant_id = body.get("grant_id")
        if not isinstance(grant_id, int) or isinstance(grant_id, bool) or grant_id <= 0:
            raise Denied("unknown_grant", "grant_id: name the grant whose viewers see it")
        alone = self.approval == "none"

        def ask(grants: GrantStore, audit: AuditLog) -> tuple[MaskLift, frozenset[str]]:
            grant = grants.get(grant_id)
            check_liftable(grant, camera_id, grants.clock())
            lift = grants.masks.ask_lift(
                grant_id=grant_id,
                camera_id=camera_id,
                reason=reason,
                seconds=self.lift_seconds,
                by=admin.account,
            )
            who, project = admin.account, grant.project
            _record(audit, events.MASK_LIFT_REQUESTED, who, remote, lift, project)
            if alone:  # one person alone (a small deployment)
                lift = grants.masks.approve_lift(lift.id, by=who)
                _record(audit, events.MASK_LIFT_APPROVED, who, remote, lift, project)
            return lift, grant.members

        lift, members = await self._write(ask)
        if lift.state == "approved":
            self._lifted(lift, members)
        else:
            # Who may approve hears that something waits (administrators always do).
            roles = ("police_liaison",) if self.approval == "police_liaison" else ()
            self.bus.publish("mask_lift_requested", {"lift": self._lift_json(lift)}, roles=roles)
        return lift

    async def approve_lift(self, approver: Identity, remote: str, lift_id: int) -> MaskLift:
        """A second person approves: audited, then in force on every node."""

        def approve(grants: GrantStore, audit: AuditLog) -> tuple[MaskLift, frozenset[str]]:
            lift = grants.masks.lift(lift_id)
            check_decider(lift, approver.account, approving=True)
            grant = grants.get(lift.grant_id)
            check_liftable(grant, lift.camera_id, grants.clock())
            lift = grants.masks.approve_lift(lift_id, by=approver.account)
            _record(audit, events.MASK_LIFT_APPROVED, approver.account, remote, lift, grant.project)
            return lift, grant.members

        lift, members = await self._write(approve)
        self._lifted(lift, members)
        return lift

    async def decline_lift(self, who: Identity, remote: str, lift_id: int, reason: str) -> MaskLift:
        def decline(grants: GrantStore, audit: AuditLog) -> MaskLift:
            lift = grants.masks.lift(lift_id)
            check_decider(lift, who.account, approving=False)
            lift = grants.masks.decline_lift(lift_id, by=who.account, reason=reason)
            project = grants.get(lift.grant_id).project
            _record(audit, events.MASK_LIFT_DECLINED, who.account, remote, lift, project)
            return lift

        lift: MaskLift = await self._write(decline)
        self.bus.publish("mask_lift_declined", {"lift": self._lift_json(lift)})
        return lift

    async def end_lift(self, who: Identity, remote: str, lift_id: int, reason: str) -> MaskLift:
        """Ended early: the masks are back at once, here and on every node (from
        memory, database or not); its record is queued and lands in order."""
        try:
            lift = await self.store.read(lambda grants, _: grants.masks.lift(lift_id))
            check_endable(lift, self.store.clock())
            camera_id, grant_id = lift.camera_id, lift.grant_id
        except StoreUnavailable:
            # Cannot be read: a lift this node put in force ends from memory all the same.
            if (key := self._lift_keys.get(lift_id)) is None:
                raise undecidable() from None
            camera_id, grant_id = key
        self._restore(camera_id, grant_id)
        if self.cluster is not None:
            self.cluster.messages.revoke(
                {"type": "masks_restored", "camera_id": camera_id, "grant_id": grant_id}
            )

        def end(grants: GrantStore, audit: AuditLog) -> tuple[MaskLift, frozenset[str]]:
            done = grants.masks.end_lift(lift_id, by=who.account, reason=reason)
            grant = grants.get(done.grant_id)
            _record(audit, events.MASK_LIFT_ENDED, who.account, remote, done, grant.project)
            return done, grant.members

        written = self.store.submit(end)
        try:
            await self.store.landed(written)
        except WritePending:
            raise RecordPending("the end of the lift waits for the database") from None
        done, members = written.result()
        data = {"camera_id": done.camera_id, "grant_id": done.grant_id}
        self.bus.publish("masks_restored", data, members)
        return done

    def _restore(self, camera_id: str, grant_id: int) -> None:
        """On this node: the masks back for the grant's viewers now."""
        key = (camera_id, grant_id)
        if (timer := self._ends.pop(key, None)) is not None:
            timer.cancel()
        self._until.pop(key, None)
        self._lift_keys = {i: k for i, k in self._lift_keys.items() if k != key}
        if (hub := self.hubs.get(camera_id)) is not None:
            hub.restore_masks(grant_id)

    async def lifts(self, who: Identity, remote: str) -> list[dict[str, Any]]:
        try:
            found = await self.store.read(lambda grants, _: grants.masks.listing())
        except StoreUnavailable:
            raise undecidable() from None
        await record_read(self.store, who, remote, what="mask_lifts", rows=len(found))
        return [self._lift_json(lift) for lift in found]

    async def waiting(self) -> list[dict[str, Any]]:
        """Lifts waiting for a second person, oldest first, each with its grant's
        project; one on a grant that no longer admits anybody cannot be approved, and
        is left out (as a waiting change to an ended grant is)."""

        def read(grants: GrantStore, _: AuditLog) -> list[tuple[MaskLift, Any]]:
            asked = [lift for lift in grants.masks.listing() if lift.state == "requested"]
            return [(lift, grants.get(lift.grant_id)) for lift in asked]

        try:
            found = await self.store.read(read)
        except StoreUnavailable:
            raise undecidable() from None
        now = self.store.clock()
        return [
            lift.to_json(now) | {"project": grant.project}
            for lift, grant in sorted(found, key=lambda pair: pair[0].asked_at)
            if grant.status(now) in ("active", "scheduled")
        ]

    def _lift_json(self, lift: MaskLift) -> dict[str, Any]:
        return lift.to_json(self.store.clock())

    def _lifted(self, lift: MaskLift, members: frozenset[str]) -> None:
        """An approved lift: in force here and on every other node; its members hear."""
        assert lift.until is not None
        self._put_lift(lift.id, lift.camera_id, lift.grant_id, lift.until)
        if self.cluster is not None:
            self.cluster.messages.send(
                {
                    "type": "masks_lifted",
                    "lift_id": lift.id,
                    "camera_id": lift.camera_id,
                    "grant_id": lift.grant_id,
                    "until": lift.until.isoformat(),
                }
            )
        data = {"camera_id": lift.camera_id, "grant_id": lift.grant_id, "until": iso_z(lift.until)}
        self.bus.publish("masks_lifted", data, members)

    def _put_lift(
        self, lift_id: int | None, camera_id: str, grant_id: int, until: datetime | None
    ) -> None:
        """On this node: the hub lifts the masks until `until` and ends the lift by
        itself; the end is recorded then (by whichever node gets there first)."""
        hub = self.hubs.get(camera_id)
        if until is None or hub is None:
            return
        seconds = (until - self.store.clock()).total_seconds()
        if seconds <= 0:
            return
        hub.lift_masks(grant_id, seconds)
        loop = asyncio.get_running_loop()
        key = (camera_id, grant_id)
        if (old := self._ends.pop(key, None)) is not None:
            old.cancel()
        self._until[key] = until
        if lift_id is not None:
            self._lift_keys[lift_id] = key
        self._ends[key] = loop.call_later(
            seconds + 0.05, lambda: self._spawn(self._record_ends(key))
        )

    async def _record_ends(self, key: tuple[str, int] | None = None) -> None:
        """Lifts whose time ran out: recorded once (whichever node first), and the
        grant's members hear the masks are back."""
        if key is not None:
            self._ends.pop(key, None)
            self._until.pop(key, None)

        def end(grants: GrantStore, audit: AuditLog) -> list[tuple[MaskLift, Any]]:
            ended = []
            for lift in grants.masks.end_due():
                grant = grants.get(lift.grant_id)
                _record(audit, events.MASK_LIFT_EXPIRED, None, None, lift, grant.project)
                ended.append((lift, grant.members))
            return ended

        try:
            ended = await self.store.keep(end)
        except Exception as exc:  # the masks are back already: only the record waits
            log.warning("the end of a mask lift is not recorded yet: %s", exc)
            return
        for lift, members in ended:
            data = {"camera_id": lift.camera_id, "grant_id": lift.grant_id}
            self.bus.publish("masks_restored", data, members)

    def lifted_events(self, grant_ids: set[int] | None) -> list[dict[str, Any]]:
        """`masks_lifted` for each lift in force now of `grant_ids` (None: every one),
        for an event stream that opens meanwhile: its page shows them at once."""
        now = self.store.clock()
        return [
            {"type": "masks_lifted", "camera_id": camera, "grant_id": grant, "until": iso_z(until)}
            for (camera, grant), until in sorted(self._until.items())
            if until > now and (grant_ids is None or grant in grant_ids)
        ]

    # --- what other nodes say ---------------------------------------------------------

    def _heard_masks(self, message: dict[str, Any]) -> None:
        camera_id = message.get("camera_id")
        try:
            masks = parse_masks(message.get("masks"), STORED_MAX)
        except MaskError as exc:
            log.warning("cluster: a masks_changed message that is not one was ignored: %s", exc)
            return
        if isinstance(camera_id, str):
            self.hubs.set_masks(camera_id, masks)

    def _heard_lift(self, message: dict[str, Any]) -> None:
        camera_id, grant_id = message.get("camera_id"), message.get("grant_id")
        try:
            until = datetime.fromisoformat(str(message.get("until")))
        except ValueError:
            until = None
        lift_id = message.get("lift_id")
        lift_id = lift_id if isinstance(lift_id, int) else None
        if isinstance(camera_id, str) and isinstance(grant_id, int) and until and until.tzinfo:
            self._put_lift(lift_id, camera_id, grant_id, until)

    def _heard_restore(self, message: dict[str, Any]) -> None:
        camera_id, grant_id = message.get("camera_id"), message.get("grant_id")
        if isinstance(camera_id, str) and isinstance(grant_id, int):
            self._restore(camera_id, grant_id)

    # --- helpers ----------------------------------------------------------------------

    def _camera(self, camera_id: str) -> Any:
        hub = self.hubs.get(camera_id)
        if hub is None:
            raise Denied("unknown_camera", f"no camera with id {camera_id!r}")
        return hub

    def _in_force(self, camera_id: str) -> tuple[MaskSettings, ...]:
        hub = self.hubs.get(camera_id)
        return hub.masks if hub is not None else ()

    async def _write(self, job: Any) -> Any:
        """Written with its audit row before it takes effect, or refused."""
        try:
            return await self.store.write(job)
        except StoreUnavailable:
            raise change_not_recorded() from None

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def reason_of(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > REASON_MAX:
        words = f"reason: give why, in at most {REASON_MAX} characters"
        raise Denied("invalid_field", words, field="reason")
    return value.strip()


def _record(
    audit: AuditLog,
    event: str,
    account: str | None,
    remote: str | None,
    lift: MaskLift,
    project: str,
) -> None:
    audit.record(
        event,
        account=account,
        camera_id=lift.camera_id,
        grant_id=lift.grant_id,
        project=project,
        remote=remote,
        lift_id=lift.id,
        asked_by=lift.asked_by,
        reason=lift.reason,
        **({"until": iso_z(lift.until)} if lift.until else {}),
        **({"decline_reason": lift.decline_reason} if lift.decline_reason else {}),
        **({"end_reason": lift.end_reason} if lift.end_reason else {}),
    )
