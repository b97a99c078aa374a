"""Accounting: every session's start and end lands in the audit log and on the event
bus, cameras going offline are announced, and a crash's loose ends are closed out."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from gateway.relay import CameraHub, CameraHubs, FeedFailure
from gateway.signaling import Ending, SessionRegistry, ViewerSession
from gateway.store import Store
from gateway.store import audit as events
from gateway.store.audit import AuditLog

from .events import EventBus

log = logging.getLogger(__name__)


def account_sessions(sessions: SessionRegistry, store: Store, bus: EventBus) -> None:
    """Every session start and end lands in the audit log and on the event bus.

    A start must be written before the picture flows (a raise refuses the session,
    and its end is recorded too); an end never waits for the database: its row is
    queued, in order, and lands when the database takes it.
    """

    async def started(session: ViewerSession) -> None:
        extra: dict[str, object] = {}
        if session.rendition is not None:
            extra["rendition"] = session.rendition  # a lighter picture
        if session.turn is not None:
            # The name the TURN server logs for this session's relay (never the
            # credential), so its logs can be matched with this row.
            extra["turn_username"] = session.turn.username
        written = store.record(
            events.SESSION_START,
            **_who(session),
            authorization_ref=session.viewer.authorization_ref,
            **extra,
        )
        session.started_recorded = True
        await store.landed(written)
        bus.publish("session_started", {"session": sessions.to_json(session)})

    def ended(session: ViewerSession) -> None:
        assert session.ending is not None
        by = {"ended_by": session.ended_by} if session.ended_by else {}
        store.record(
            events.SESSION_END,
            **_who(session),
            reason=session.ending.reason,
            code=session.ending.code,
            duration_seconds=round(session.duration_seconds, 3),
            bytes_sent=session.bytes_sent,
            **by,
        )
        bus.publish(
            "session_ended",
            {
                "session_id": session.id,
                "camera_id": session.camera_id,
                "reason": session.ending.reason,
                "code": session.ending.code,
            },
            accounts=[session.account],
        )

    def renewed(session: ViewerSession, remote: str) -> None:
        store.record(
            events.SESSION_RENEWED,
            **{**_who(session), "remote": remote},
            signed_in_until=session.signed_in_until,
        )

    def trickled(session: ViewerSession, added: int, by: str, remote: str) -> None:
        who = _who(session)
        who["remote"] = remote
        store.record(events.SESSION_ICE, **who, candidates_added=added, by=by)

    sessions.on_start.append(started)
    sessions.on_end.append(ended)
    sessions.on_renew.append(renewed)
    sessions.on_trickle.append(trickled)


def announce_cameras(hubs: CameraHubs, sessions: SessionRegistry, bus: EventBus) -> None:
    """A camera going offline or coming back is news to the people watching it."""

    def changed(hub: CameraHub) -> None:
        if hub.state in ("offline", "live"):
            watching = [s.account for s in sessions if s.camera_id == hub.id]
            bus.publish(
                "camera_state",
                {"camera_id": hub.id, "state": hub.state, "reason": hub.last_error},
                accounts=watching,
            )

    hubs.on_state_change.append(changed)  # every hub's, those of a later inventory too


def end_views_without_picture(hubs: CameraHubs, sessions: SessionRegistry) -> None:
    """A hub that cannot give viewers a picture (a camera's privacy masks could not be
    applied) ends their feeds at once; their sessions end with its code (mask_failed),
    so the player says why rather than showing a frozen picture."""
    ending_tasks: set[asyncio.Task[int]] = set()

    def failed(failure: FeedFailure) -> None:
        ending = Ending(failure.code, failure.reason)
        doomed = [s for s in sessions if s.feed in failure.feeds]
        task = asyncio.ensure_future(sessions.end_many(doomed, ending))
        ending_tasks.add(task)
        task.add_done_callback(ending_tasks.discard)

    hubs.on_feed_failure.append(failed)  # every hub's, those of a later inventory too


def close_out_sessions(audit: AuditLog, node_id: str | None = None) -> None:
    """Sessions a crash left open in the audit log end there, with the reason why.
    With several nodes on one database, only this node's own (ids "<node>.…"): the
    others' sessions are theirs, live or closed out by a survivor."""
    closed = audit.close_out_sessions(
        f"{node_id}." if node_id else None, reason="gateway restarted", code="restarted"
    )
    if closed:
        log.info("audit: closed out %d sessions left open by the last run", closed)


def prune_audit(audit: AuditLog, retention_days: float) -> None:
    if retention_days > 0:
        pruned = audit.prune(datetime.now(UTC) - timedelta(days=retention_days))
        if pruned:
            log.info("audit: pruned %d rows older than %g days", pruned, retention_days)


def _who(session: ViewerSession) -> dict[str, object]:
    who: dict[str, object] = {
        "account": session.account,
        "camera_id": session.camera_id,
        "grant_id": session.viewer.grant_id,
        "project": session.viewer.project,
        "remote": session.remote,
        "session_id": session.id,
    }
    if session.viewer.emergency_id is not None:
        who["emergency_id"] = session.viewer.emergency_id  # admitted without a grant
    return who
