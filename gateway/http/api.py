"""The JSON API for viewers (cameras, who am I, the event stream) and for monitoring."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.access.tokens import Identity
from gateway.config import MapSettings
from gateway.control.admission import AccessControl
from gateway.control.events import EventBus
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
        sessions: SessionRegistry,
        access: AccessControl,
        bus: EventBus,
        tickets: TicketBook,
        map_settings: MapSettings,
        metrics: GatewayMetrics,
    ) -> None:
        self.hubs = hubs
        self.store = store
        self.sessions = sessions
        self.access = access
        self.bus = bus
        self.tickets = tickets
        self.map = map_settings
        self.metrics = metrics

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
        for grant in self.store.grants.active_for(identity.account):
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
        """The caller, and the grants that name it now (for the tile countdowns)."""
        identity = await signed_in(self.access, request)
        return reply(
            {
                "account": identity.account,
                "is_admin": identity.is_admin,
                "grants": self._grants_json(identity),
            }
        )

    async def event_ticket(self, request: web.Request) -> web.Response:
        identity = await signed_in(self.access, request)
        ticket = self.tickets.issue(identity)
        return reply({"ticket": ticket, "url": f"/api/events?ticket={ticket}"})

    async def event_stream(self, request: web.Request) -> web.StreamResponse:
        """SSE: a viewer's own session ends and grants; everything for administrators."""
        identity = self.tickets.redeem(request.query.get("ticket", ""))
        if identity is None:
            raise HttpError(
                401,
                "invalid_ticket",
                "missing, used or expired ticket; get one from POST /api/events/ticket",
            )
        subscription = self.bus.subscribe(identity.account, identity.is_admin)
        sessions = [
            s.to_json() for s in self.sessions if identity.is_admin or s.account == identity.account
        ]
        hello = {
            "type": "hello",
            "account": identity.account,
            "grants": self._grants_json(identity),
            "sessions": sessions,
        }
        try:
            return await sse.stream(request, subscription, first=[hello])
        finally:
            self.bus.unsubscribe(subscription)

    def _grants_json(self, identity: Identity) -> list[dict[str, Any]]:
        grants = self.store.grants
        now = grants.clock()
        return [g.to_json(now) for g in grants.active_for(identity.account)]

    async def client_config(self, request: web.Request) -> web.Response:
        """What the browser needs before sign-in: the map tiles. No secrets here."""
        return reply({"map": {"tile_url": self.map.tile_url, "attribution": self.map.attribution}})

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process answers."""
        return reply({"status": "ok", "sessions": len(self.sessions)})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: the database answers, so access can be decided and recorded."""
        if not self.store.ping():
            return reply({"status": "database unavailable"}, status=503)
        return reply({"status": "ready"})

    async def prometheus(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})
