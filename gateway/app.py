"""The composition root: builds every part from the settings and wires them together.

Control flows down (http → control → access, store, relay, egress) and media one
way (relay → egress). Only this module knows every part; it owns the AppKeys.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import TokenVerifier
from gateway.config import Settings
from gateway.control import accounting
from gateway.control.administration import AccessAdmin
from gateway.control.admission import AccessControl
from gateway.control.cluster import ClusterNode
from gateway.control.enforcer import GrantEnforcer
from gateway.control.events import EventBus
from gateway.control.overlay import GrantOverlay
from gateway.control.reload import InventoryReloader
from gateway.control.sessions import SHUTDOWN, SessionRegistry
from gateway.control.tickets import TicketBook
from gateway.egress import (
    CandidatePolicy,
    EgressOptions,
    ViewerSession,
    compat,
    rtc_configuration,
)
from gateway.egress.datagrams import MAX_OVERHEAD
from gateway.egress.turn import TurnServers
from gateway.http import cors, errors, headers, pages
from gateway.http.admin import AdminApi
from gateway.http.api import ViewerApi
from gateway.http.cluster import ClusterEndpoint
from gateway.http.whep import WhepEndpoint, plain_options
from gateway.inventory import read_inventory
from gateway.metrics import GatewayMetrics
from gateway.relay import CameraHubs, PoliceApi, lighter_picture, vp8_for_browsers
from gateway.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
HUBS = web.AppKey("hubs", CameraHubs)
SESSIONS = web.AppKey("sessions", SessionRegistry)
ACCESS = web.AppKey("access", AccessControl)
ADMIN = web.AppKey("admin", AccessAdmin)
EVENTS = web.AppKey("events", EventBus)
METRICS = web.AppKey("metrics", GatewayMetrics)
RELOADER = web.AppKey("reloader", InventoryReloader)

# aiortc's H.264 packetizer fills payloads up to this size.
RTP_PAYLOAD_MAX = 1300


def create_app(settings: Settings, throttle: FailureThrottle | None = None) -> web.Application:
    """The application; raises InventoryError (a ConfigError) for an invalid inventory."""
    inventory = read_inventory(settings)
    compat.install(RTP_PAYLOAD_MAX + MAX_OVERHEAD)
    compat.announce_only(settings.webrtc.announce_addresses)
    # The offer limit is enforced by the WHEP handler with a clear 413.
    app = web.Application(
        client_max_size=max(settings.server.max_body_bytes, 1024**2),
        # The client's address first, so every handler and refusal sees the same one.
        middlewares=[
            errors.client_addresses(settings.server.trusted_networks),
            errors.json_errors,
            plain_options(settings.cors.origins),
        ],
    )
    headers.add_security_headers(app, settings)
    store = Store(settings.storage.database, inventory.ids, settings.grants.max_days)
    police_api = PoliceApi(settings.police_api) if settings.police_api else None
    hubs = CameraHubs(inventory.cameras, settings.relay, police_api)
    limits = settings.limits
    node_id = settings.cluster.node_id
    sessions = SessionRegistry(
        EgressOptions(
            configuration=rtc_configuration(settings.webrtc),
            candidates=CandidatePolicy(
                (c.host for c in inventory.cameras if c.host), settings.webrtc.denied_networks
            ),
            vp8=vp8_for_browsers(settings.relay.vp8_bitrate_kbps),
            strict_h264_profile=settings.webrtc.strict_h264_profile,
            fast_sender=settings.webrtc.sender == "fast",
            renditions={r.name: lighter_picture(r) for r in settings.relay.renditions},
            turn=TurnServers(settings.turn) if settings.turn.enabled else None,
        ),
        limits.max_sessions_per_account,
        node_id,
    )
    bus = EventBus(limits.max_event_streams_per_account)
    tickets = TicketBook(limits.max_tickets_per_account)
    overlay = GrantOverlay()
    enforcer = GrantEnforcer(store, overlay, sessions)
    metrics = GatewayMetrics(hubs, sessions, store)
    access = AccessControl(
        TokenVerifier(settings.auth),
        store,
        overlay,
        throttle or FailureThrottle(),
        on_denied=lambda reason: metrics.denials.labels(reason).inc(),
    )
    admin = AccessAdmin(store, overlay, bus, sessions, enforcer)
    reloader = InventoryReloader(settings, hubs, store, sessions, bus)
    # Several nodes on one PostgreSQL database: the directory, messages, heartbeats.
    cluster = (
        ClusterNode(
            settings.cluster, store, sessions, bus, enforcer, tickets, hubs, settings.node_address
        )
        if store.shared
        else None
    )
    admin.cluster = cluster
    app[SETTINGS] = settings
    app[STORE] = store
    app[HUBS] = hubs
    app[SESSIONS] = sessions
    app[ACCESS] = access
    app[ADMIN] = admin
    app[EVENTS] = bus
    app[METRICS] = metrics
    app[RELOADER] = reloader

    accounting.account_sessions(sessions, store, bus)
    sessions.on_start.append(lambda session: _time_first_frame(session, metrics))
    accounting.announce_cameras(hubs, sessions, bus)
    accounting.end_views_without_picture(hubs, sessions)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if cluster is not None:
            await cluster.make_sure_alone()  # NodeConflict: another node has this id
        # With several nodes, only this node's own leftovers: the others' are theirs.
        accounting.close_out_sessions(store.audit, node_id if cluster else None)
        accounting.prune_audit(store.audit, settings.audit.retention_days)
        if cluster is not None:
            cluster.attach()
            await cluster.start()
        enforcing = asyncio.create_task(enforcer.run())
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)  # main thread only
        yield
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        enforcing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await enforcing
        await _end_sessions(app)
        await hubs.close()
        await access.failed_sign_ins.close()
        if cluster is not None:
            await cluster.stop()
        await store.flush(timeout=1.0)
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    # Before aiohttp waits for open requests: event streams end, viewers are told.
    app.on_shutdown.append(_end_sessions)
    WhepEndpoint(hubs, sessions, access, admin, settings.server.max_body_bytes).add_routes(
        app.router
    )
    ViewerApi(
        hubs,
        store,
        overlay,
        sessions,
        access,
        bus,
        tickets,
        settings.map,
        metrics,
        embed_origins=settings.cors.origins,
    ).add_routes(app.router)
    AdminApi(access, admin, store, sessions, reloader).add_routes(app.router)
    if cluster is not None:
        ClusterEndpoint(cluster).add_routes(app.router)
    pages.add_routes(app.router)
    cors.allow_origins(app, settings.cors.origins)
    return app


async def _end_sessions(app: web.Application) -> None:
    app[EVENTS].close()
    # Sessions before cameras, so each ends with its reason written down.
    await app[SESSIONS].close(SHUTDOWN)


async def _time_first_frame(session: ViewerSession, metrics: GatewayMetrics) -> None:
    def first_frame() -> None:
        metrics.first_frame.observe(session.duration_seconds)

    session.feed.on_first_frame = first_frame
