"""The JSON API for viewers (cameras, who am I, the event stream) and for monitoring."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.access.grants import Grant
from gateway.access.tokens import Identity
from gateway.config import MapSettings
from gateway.control.admission import AccessControl
from gateway.control.events import EventBus
from gateway.control.overlay import GrantOverlay
from gateway.control.sessions import SessionRegistry
from gateway.control.tickets import TicketBook
from gateway.metrics import GatewayMetrics
from gateway.relay import CameraHubs
from gateway.store import Store

from . import sse
from .errors import HttpError, bearer_token, remote_of


def dumps(value: object) -> str:
    # Keep Traditional Chinese names readable rather than \\u-escaped.
    return json.dumps(value, ensure_ascii=False, default=str)


def reply(value: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps, **kwargs)


async def signed_in(access: AccessControl, request: web.Request) -> Identity:
    """The caller's identity from its bearer token; 401 otherwise."""
    return await access.identify(bearer_token(request), remote_of(request))


class ViewerApi:
    def __init__(
        self,
        hubs: CameraHubs,
        store: Store,
        overlay: GrantOverlay,
        sessions: SessionRegistry,
        access: AccessControl,
        bus: EventBus,
        tickets: TicketBook,
        map_settings: MapSettings,
        metrics: GatewayMetrics,
        embed_origins: tuple[str, ...] = (),
    ) -> None:
        self.hubs = hubs
        self.store = store
        self.overlay = overlay
        self.sessions = sessions
        self.access = access
        self.bus = bus
        self.tickets = tickets
        self.map = map_settings
        self.metrics = metrics
        self.embed_origins = embed_origins

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/cameras", self.cameras)
        router.add_get("/api/me", self.me)
        router.add_post("/api/events/ticket", self.event_ticket)
        router.add_get("/api/events", self.event_stream)
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz)
        router.add_get("/config.json", self.client_config)
        router.add_get("/metrics", self.prometheus)

    async def cameras(self, request: web.Request) -> web.Response:
        """The cameras the caller may view now, as GeoJSON (administrators: all).

        Never a source: only id, name, place (district and road for the search), and
        until when the caller may watch.
        """
        identity = await signed_in(self.access, request)
        until: dict[str, str] = {}
        for grant in await self._active(identity):
            for camera_id in grant.cameras:
                ends = grant.ends_at.isoformat()
                until[camera_id] = max(until.get(camera_id, ends), ends)
        features = [
            {
                "type": "Feature",
                "id": hub.id,
                "geometry": {"type": "Point", "coordinates": [hub.camera.lon, hub.camera.lat]},
                "properties": {
                    "id": hub.id,
                    "name": hub.camera.name,
                    "district": hub.camera.district,
                    "road": hub.camera.road,
                    "viewers": len(hub.viewers),
                    "granted_until": until.get(hub.id),
                },
            }
            for hub in self.hubs
            if identity.is_admin or hub.id in until
        ]
        return reply(
            {"type": "FeatureCollection", "features": features},
            content_type="application/geo+json",
        )

    async def me(self, request: web.Request) -> web.Response:
        """The caller, and the grants that name it now (for the tile countdowns); a
        viewer sees only its grants' project, cameras and window."""
        identity = await signed_in(self.access, request)
        return reply(
            {
                "account": identity.account,
                "is_admin": identity.is_admin,
                "grants": await self._grants_json(identity),
            }
        )

    async def event_ticket(self, request: web.Request) -> web.Response:
        identity = await signed_in(self.access, request)
        ticket = self.tickets.issue(identity)  # TooManyTickets: 429
        return reply({"ticket": ticket, "url": f"/api/events?ticket={ticket}"})

    async def event_stream(self, request: web.Request) -> web.StreamResponse:
        """SSE: a viewer's own session ends and grants; everything for administrators."""
        identity = await self.tickets.redeem(request.query.get("ticket", ""))
        if identity is None:
            raise HttpError(
                401,
                "invalid_ticket",
                "missing, used or expired ticket; get one from POST /api/events/ticket",
            )
        until = self.access.signed_in_until(identity)
        if until <= datetime.now(UTC):
            raise HttpError(401, "invalid_ticket", "the sign-in behind this ticket has expired")
        subscription = self.bus.subscribe(identity.account, identity.is_admin)  # 429 past a cap
        try:
            sessions = [
                s
                for s in await self.sessions.everywhere()  # every node's
                if identity.is_admin or s["account"] == identity.account
            ]
            hello = {
                "type": "hello",
                "account": identity.account,
                "grants": await self._grants_json(identity),
                "sessions": sessions,
            }
            return await sse.stream(request, subscription, first=[hello], until=until)
        finally:
            self.bus.unsubscribe(subscription)

    async def _active(self, identity: Identity) -> list[Grant]:
        """The grants naming the caller now, as this gateway knows them."""
        account = identity.account
        found = await self.store.read(lambda grants, _: grants.active_for(account))
        now = self.store.clock()
        return [g for g in self.overlay.apply(found, now) if g.is_active(now)]

    async def _grants_json(self, identity: Identity) -> list[dict[str, Any]]:
        """The caller's active grants: whole for an administrator, else only what a
        viewer needs (project, cameras, window), not co-members, purpose, authority."""
        now = self.store.clock()
        active = await self._active(identity)
        if identity.is_admin:
            return [g.to_json(now) for g in active]
        return [g.to_viewer_json(now) for g in active]

    async def client_config(self, request: web.Request) -> web.Response:
        """What the browser needs before sign-in. No secrets here.

        The map tiles, and the dashboards (`[cors] origins`) that may frame the pages:
        a framed page asks only them for a token and takes one only from them.
        """
        return reply(
            {
                "map": {"tile_url": self.map.tile_url, "attribution": self.map.attribution},
                "embed_origins": list(self.embed_origins),
            }
        )

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process answers."""
        return reply({"status": "ok", "sessions": len(self.sessions)})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: the database answers, so access can be decided and recorded."""
        store = self.store
        if not store.ready:  # from memory: readiness never waits on the database
            status = {
                "status": "not ready",
                "database_readable": store.readable,
                "database_writable": store.writable,
                "records_pending": store.pending,
            }
            return reply(status, status=503)
        return reply({"status": "ready"})

    async def prometheus(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})
