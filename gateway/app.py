"""The composition root: builds every part from the settings and wires them together.

Control flows down (http → control → access, store, relay, signaling) and media one
way (relay → egress). Only this module knows every part; it owns the AppKeys. Each
part is given its collaborators when it is made, and each resource is started and
stopped by one `cleanup_ctx`, in order, so shutdown is the mirror of start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.access.roles import RoleRules
from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import TokenVerifier
from gateway.config import CameraSettings, Settings
from gateway.control import accounting
from gateway.control.administration import AccessAdmin
from gateway.control.admission import AccessControl
from gateway.control.cluster import (
    ClusterMessages,
    ClusterNode,
    OriginStreams,
    PeerLink,
    SessionDirectory,
    Spreading,
)
from gateway.control.consent import PoliceConsent
from gateway.control.emergency import EmergencyAccess
from gateway.control.enforcer import GrantEnforcer
from gateway.control.events import EventBus
from gateway.control.health import Health
from gateway.control.known_grants import KnownGrants
from gateway.control.masks import PrivacyMasks
from gateway.control.overlay import GrantOverlay
from gateway.control.refusals import Refusals
from gateway.control.reload import InventoryReloader
from gateway.control.report import GovernanceReport
from gateway.control.streams import EventStreams
from gateway.control.tickets import TicketBook
from gateway.control.viewing import Viewing
from gateway.egress import MAX_OVERHEAD, compat
from gateway.http import cors, errors, headers, pages
from gateway.http.admin import AdminApi
from gateway.http.api import ViewerApi
from gateway.http.cluster import ClusterEndpoint
from gateway.http.consent import ConsentApi
from gateway.http.masks import MaskApi
from gateway.http.whep import WhepEndpoint, plain_options
from gateway.inventory import read_inventory
from gateway.metrics import GatewayMetrics
from gateway.relay import CameraHubs, PoliceApi, lighter_picture, vp8_for_browsers
from gateway.signaling import (
    SHUTDOWN,
    CandidatePolicy,
    SessionOptions,
    SessionRegistry,
    TurnServers,
    ViewerSession,
    rtc_configuration,
)
from gateway.store import Store
from gateway.store.adoption import adopt_references

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
HUBS = web.AppKey("hubs", CameraHubs)
SESSIONS = web.AppKey("sessions", SessionRegistry)
ACCESS = web.AppKey("access", AccessControl)
ADMIN = web.AppKey("admin", AccessAdmin)
EVENTS = web.AppKey("events", EventBus)
METRICS = web.AppKey("metrics", GatewayMetrics)
RELOADER = web.AppKey("reloader", InventoryReloader)

log = logging.getLogger(__name__)

# aiortc's H.264 packetizer fills payloads up to this size.
RTP_PAYLOAD_MAX = 1300

Context = Callable[[web.Application], AsyncIterator[None]]


def create_app(settings: Settings, throttle: FailureThrottle | None = None) -> web.Application:
    """The application; raises InventoryError (a ConfigError) for an invalid inventory
    and DatabaseError for a database that cannot be used, before anything listens."""
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
    limits, node_id = settings.limits, settings.cluster.node_id

    # What the gateway remembers, and (on a node of a cluster) what the nodes share.
    store = Store(settings.storage.database, inventory.ids, settings.grants.max_days)
    store.set_camera_ids(inventory.ids, inventory.districts)
    directory = messages = None
    if store.shared:
        directory = SessionDirectory(store, node_id)
        messages = ClusterMessages(store, node_id, PeerLink(node_id))

    # Media in, and the viewers' sessions.
    police_api = PoliceApi(settings.police_api) if settings.police_api else None
    hubs = CameraHubs(inventory.cameras, settings.relay, police_api)
    sessions = SessionRegistry(
        _session_options(settings, inventory.cameras),
        limits.max_sessions_per_account,
        node_id,
        directory=directory,
    )
    bus = EventBus(
        limits.max_event_streams_per_account,
        forward=messages.forward_event if messages is not None else None,
    )
    tickets = TicketBook(limits.max_tickets_per_account)

    # Every session's start and end written down first, before anyone else hears of it.
    accounting.account_sessions(sessions, store, bus)
    accounting.announce_cameras(hubs, sessions, bus)
    accounting.end_views_without_picture(hubs, sessions)

    # Decisions and what the application does with them.
    grants = KnownGrants(store, GrantOverlay())
    enforcer = GrantEnforcer(store, grants.overlay, sessions)
    cluster = spreading = origin = None
    if directory is not None and messages is not None:
        # A hot camera's viewers over several nodes, the camera pulled once.
        spreading = Spreading(
            settings.cluster.spread_viewers,
            settings.cluster.spread_cpu_percent,
            node_id,
            messages.peers,
            sessions,
            hubs.watch,
        )
        messages.load = spreading.load
        origin = OriginStreams(hubs, spreading)
        cluster = ClusterNode(
            settings.cluster,
            settings.node_address,
            store,
            directory,
            messages,
            sessions,
            bus,
            enforcer,
            tickets,
            hubs,
        )
    metrics = GatewayMetrics(hubs, sessions, store)
    if spreading is not None:
        spreading.on_spread = lambda camera, why: metrics.sent_on.labels(camera, why).inc()
    sessions.on_start.append(lambda session: _time_first_frame(session, metrics))
    refusals = Refusals(store, on_denied=lambda reason: metrics.denials.labels(reason).inc())
    governance = settings.governance
    access = AccessControl(
        TokenVerifier(settings.auth, RoleRules(governance)),
        grants,
        refusals,
        throttle or FailureThrottle(),
    )
    admin = AccessAdmin(store, grants, bus, sessions, enforcer, cluster, governance.approval)
    consent = PoliceConsent(store, grants, bus, enforcer, admin, cluster)
    emergency = EmergencyAccess(governance, store, hubs, bus, enforcer, cluster)
    reloader = InventoryReloader(settings, hubs, store, sessions, bus)
    masks = PrivacyMasks(
        store,
        hubs,
        bus,
        max_masks=settings.relay.max_masks,
        approval=governance.approval,
        lift_minutes=governance.mask_lift_minutes,
        cluster=cluster,
    )
    viewing = Viewing(hubs, sessions, access, admin, spreading)

    app[SETTINGS] = settings
    app[errors.BODY_TIMEOUT] = settings.server.request_timeout_seconds
    app[STORE] = store
    app[HUBS] = hubs
    app[SESSIONS] = sessions
    app[ACCESS] = access
    app[ADMIN] = admin
    app[EVENTS] = bus
    app[METRICS] = metrics
    app[RELOADER] = reloader

    # One context per resource, started in this order and stopped in the reverse.
    app.cleanup_ctx.extend(
        [
            _store(store),
            *([_cluster(cluster)] if cluster is not None else []),
            _masks(masks),
            _pulls(hubs),
            _sessions(sessions, store, node_id if cluster is not None else None, settings),
            _sign_ins(access),
            _enforcer(enforcer),
            _event_bus(bus),
            _reloads(reloader),
        ]
    )
    # Before aiohttp waits for open requests: event streams end, viewers are told.
    app.on_shutdown.append(lambda _: _end_sessions(bus, sessions, origin))

    WhepEndpoint(viewing, settings.server.max_body_bytes).add_routes(app.router)
    ViewerApi(
        viewing,
        EventStreams(access, viewing, sessions, bus, tickets, masks),
        Health(store, sessions, cluster),
        settings.map,
        metrics,
        embed_origins=settings.cors.origins,
    ).add_routes(app.router)
    AdminApi(access, admin, reloader).add_routes(app.router)
    ConsentApi(
        access, admin, consent, emergency, GovernanceReport(store, governance.approval), masks
    ).add_routes(app.router)
    MaskApi(access, masks, governance.approval).add_routes(app.router)
    if messages is not None and origin is not None:
        ClusterEndpoint(messages, origin).add_routes(app.router)
    pages.add_routes(app.router)
    cors.allow_origins(app, settings.cors.origins)
    return app


def _session_options(settings: Settings, cameras: list[CameraSettings]) -> SessionOptions:
    return SessionOptions(
        configuration=rtc_configuration(settings.webrtc),
        candidates=CandidatePolicy(
            (c.host for c in cameras if c.host),
            settings.webrtc.denied_networks,
            settings.webrtc.viewer_private_networks,
        ),
        vp8=vp8_for_browsers(settings.relay.vp8_bitrate_kbps),
        strict_h264_profile=settings.webrtc.strict_h264_profile,
        fast_sender=settings.webrtc.sender == "fast",
        renditions={r.name: lighter_picture(r) for r in settings.relay.renditions},
        turn=TurnServers(settings.turn) if settings.turn.enabled else None,
    )


def _store(store: Store) -> Context:
    """The database: grants made before police authorizations were records get
    theirs (store/adoption.py, audited); its queued writes get a moment to land at
    the end."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        for adopted in store.at_start(adopt_references):
            log.warning(
                "grants %s: their reference %r is now police authorization %d, unconfirmed"
                " until a liaison confirms it",
                adopted["grants"],
                adopted["reference"],
                adopted["authorization_id"],
            )
        yield
        await store.flush(timeout=1.0)
        await store.close()

    return context


def _cluster(cluster: ClusterNode) -> Context:
    """Joins the cluster (NodeConflict if another running node has this node's id)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        await cluster.start()
        yield
        await cluster.stop()

    return context


def _masks(masks: PrivacyMasks) -> Context:
    """The privacy masks administrators set, and the lifts in force, before anyone
    watches (a camera's stored masks win over its configured ones)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        await masks.load()
        yield
        masks.close()

    return context


def _pulls(hubs: CameraHubs) -> Context:
    """The cameras' pulls, which start with their first viewer and stop here."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        yield
        await hubs.close()

    return context


def _sessions(
    sessions: SessionRegistry, store: Store, node_id: str | None, settings: Settings
) -> Context:
    """Sessions a crash left open are closed out in the audit log first (with several
    nodes, only this node's own); at the end every session ends, its reason written
    down, before the cameras stop."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        accounting.close_out_sessions(store.audit, node_id)
        accounting.prune_audit(store.audit, settings.audit.retention_days)
        yield
        await sessions.close(SHUTDOWN)

    return context


def _sign_ins(access: AccessControl) -> Context:
    """Failed sign-ins counted per minute are written down at the end."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        yield
        await access.failed_sign_ins.close()

    return context


def _enforcer(enforcer: GrantEnforcer) -> Context:
    """The grant sweep, twice a second."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        sweeping = asyncio.create_task(enforcer.run())
        yield
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping

    return context


def _event_bus(bus: EventBus) -> Context:
    """Event streams; at the end each is told to close."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        yield
        bus.close()

    return context


def _reloads(reloader: InventoryReloader) -> Context:
    """SIGHUP reads the inventory again (only in the main thread: tests run others)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)
        yield
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)

    return context


async def _end_sessions(
    bus: EventBus, sessions: SessionRegistry, origin: OriginStreams | None
) -> None:
    bus.close()
    if origin is not None:  # other nodes' streams of this node's cameras
        origin.close()
    # Sessions before cameras, so each ends with its reason written down.
    await sessions.close(SHUTDOWN)


async def _time_first_frame(session: ViewerSession, metrics: GatewayMetrics) -> None:
    def first_frame() -> None:
        metrics.first_frame.observe(session.duration_seconds)

    session.feed.on_first_frame = first_frame
