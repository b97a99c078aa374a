"""The aiohttp application factory: wires relay, signaling and access together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp_cors
from aiohttp import web

from gateway import admin, api
from gateway.access import audit as audit_events
from gateway.access.administration import AccessAdmin
from gateway.access.audit import AuditLog
from gateway.access.database import open_database
from gateway.access.enforcer import GrantEnforcer
from gateway.access.grants import GrantStore
from gateway.access.policy import AccessControl
from gateway.access.throttle import FailureThrottle
from gateway.access.tickets import TicketBook
from gateway.access.tokens import TokenVerifier
from gateway.appkeys import (
    ACCESS,
    ADMIN,
    DATABASE,
    EVENTS,
    HUBS,
    METRICS,
    SESSIONS,
    SETTINGS,
    TICKETS,
)
from gateway.config import Settings
from gateway.events import EventBus
from gateway.metrics import GatewayMetrics
from gateway.relay import CameraHub, CameraHubs
from gateway.signaling import SessionRegistry, ViewerSession, whep

log = logging.getLogger(__name__)
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


def create_app(settings: Settings, throttle: FailureThrottle | None = None) -> web.Application:
    # The offer limit is enforced by the WHEP handler with a clear 413.
    app = web.Application(
        client_max_size=max(settings.server.max_body_bytes, 1024**2),
        middlewares=[whep.plain_options],
    )
    db = open_database(settings.storage.database)
    grants = GrantStore(db, (c.id for c in settings.cameras), settings.grants.max_days)
    audit = AuditLog(db)
    sessions = SessionRegistry(settings.webrtc)
    bus = EventBus()
    enforcer = GrantEnforcer(grants, sessions)
    app[SETTINGS] = settings
    app[HUBS] = CameraHubs(settings.cameras, settings.relay)
    app[SESSIONS] = sessions
    app[EVENTS] = bus
    app[TICKETS] = TicketBook()
    app[DATABASE] = db
    app[METRICS] = metrics = GatewayMetrics(app[HUBS], sessions)
    app[ACCESS] = AccessControl(
        TokenVerifier(settings.auth),
        grants,
        audit,
        throttle or FailureThrottle(),
        on_denied=lambda reason: metrics.denials.labels(reason).inc(),
    )
    app[ADMIN] = AccessAdmin(grants, audit, bus, sessions, enforcer)
    _account_sessions(sessions, audit, bus)
    sessions.on_start.append(
        lambda session: _time_first_frame(session, metrics),
    )
    _announce_cameras(app[HUBS], sessions, bus)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        _close_out_sessions(audit)
        _prune_audit(audit, settings.audit.retention_days)
        enforcing = asyncio.create_task(enforcer.run())
        yield
        enforcing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await enforcing
        await _end_sessions(app)
        await app[HUBS].close()
        db.close()

    app.cleanup_ctx.append(lifecycle)
    # Before aiohttp waits for open requests: event streams end, viewers are told.
    app.on_shutdown.append(_end_sessions)
    whep.add_routes(app)
    api.add_routes(app)
    admin.add_routes(app)
    app.router.add_get("/metrics", metrics.handler)
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/admin", _page("admin.html"))
    app.router.add_static("/web/", WEB_ROOT)
    # Front-end packages from npm (pinned in web/package.json), served as they ship.
    if (WEB_ROOT / "node_modules").is_dir():  # `make demo` and `make test` install them
        app.router.add_static("/vendor/", WEB_ROOT / "node_modules")
    _allow_origins(app, settings.cors.origins)
    return app


def _account_sessions(sessions: SessionRegistry, audit: AuditLog, bus: EventBus) -> None:
    """Every session start and end lands in the audit log and on the event bus."""

    def started(session: ViewerSession) -> None:
        audit.record(
            audit_events.SESSION_START,
            **_who(session),
            authorization_ref=session.viewer.authorization_ref,
        )
        bus.publish("session_started", {"session": session.to_json()})

    def ended(session: ViewerSession) -> None:
        audit.record(
            audit_events.SESSION_END,
            **_who(session),
            reason=session.end_reason,
            duration_seconds=round(session.duration_seconds, 3),
            bytes_sent=session.bytes_sent,
        )
        bus.publish(
            "session_ended",
            {
                "session_id": session.id,
                "camera_id": session.camera_id,
                "reason": session.end_reason,
            },
            accounts=[session.account],
        )

    sessions.on_start.append(started)
    sessions.on_end.append(ended)


def _announce_cameras(hubs: CameraHubs, sessions: SessionRegistry, bus: EventBus) -> None:
    """A camera going offline or coming back is news to the people watching it."""

    def changed(hub: CameraHub) -> None:
        if hub.state in ("offline", "live"):
            watching = [s.account for s in sessions if s.camera_id == hub.id]
            bus.publish(
                "camera_state",
                {"camera_id": hub.id, "state": hub.state, "reason": hub.last_error},
                accounts=watching,
            )

    for hub in hubs:
        hub.on_state_change.append(changed)


async def _end_sessions(app: web.Application) -> None:
    app[EVENTS].close()
    # Sessions before cameras, so each ends with its reason written down.
    await app[SESSIONS].close("gateway shutdown")


def _close_out_sessions(audit: AuditLog) -> None:
    """Sessions a crash left open in the audit log end there, with the reason why."""
    for row in audit.open_sessions():
        audit.record(
            audit_events.SESSION_END,
            account=row["account"],
            camera_id=row["camera_id"],
            grant_id=row["grant_id"],
            project=row["project"],
            remote=row["remote"],
            session_id=row["session_id"],
            reason="gateway restarted",
            started_at=row["at"],
        )


def _time_first_frame(session: ViewerSession, metrics: GatewayMetrics) -> None:
    def first_frame() -> None:
        metrics.first_frame.observe(session.duration_seconds)

    session.track.on_first_frame = first_frame


def _who(session: ViewerSession) -> dict[str, object]:
    return {
        "account": session.account,
        "camera_id": session.camera_id,
        "grant_id": session.viewer.grant_id,
        "project": session.viewer.project,
        "remote": session.remote,
        "session_id": session.id,
    }


def _prune_audit(audit: AuditLog, retention_days: float) -> None:
    if retention_days > 0:
        pruned = audit.prune(datetime.now(UTC) - timedelta(days=retention_days))
        if pruned:
            log.info("audit: pruned %d rows older than %g days", pruned, retention_days)


def _allow_origins(app: web.Application, origins: tuple[str, ...]) -> None:
    """CORS for the dashboards in config; preflights from any other origin fail."""
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        expose_headers=("Location", "Retry-After", "Accept-Post"),
        allow_headers=("Authorization", "Content-Type"),
        allow_methods=("GET", "POST", "PATCH", "DELETE"),
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        path = route.resource.canonical if route.resource else ""
        if path.startswith(("/whep/", "/api/")) and route.method != "OPTIONS":
            cors.add(route)
    # A dashboard loads the player module itself from here: <script type="module" src=…>.
    for resource in list(app.router.resources()):
        if isinstance(resource, web.StaticResource) and resource.canonical == "/web":
            cors.add(resource)


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_ROOT / name)

    return page
