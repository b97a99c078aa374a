"""The JSON API for viewers (cameras, who am I, the event stream) and for monitoring."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.config import MapSettings
from gateway.control.health import Health
from gateway.control.streams import EventStreams
from gateway.control.viewing import Viewing
from gateway.metrics import GatewayMetrics

from . import sse
from .errors import bearer_token, remote_of


def dumps(value: object) -> str:
    # Keep Traditional Chinese names readable rather than \\u-escaped.
    return json.dumps(value, ensure_ascii=False, default=str)


def reply(value: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps, **kwargs)


class ViewerApi:
    def __init__(
        self,
        viewing: Viewing,
        streams: EventStreams,
        health: Health,
        map_settings: MapSettings,
        metrics: GatewayMetrics,
        embed_origins: tuple[str, ...] = (),
    ) -> None:
        self.viewing = viewing
        self.streams = streams
        self.health = health
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
        """The cameras the caller may view now, as GeoJSON (administrators: all)."""
        features = await self.viewing.cameras(bearer_token(request), remote_of(request))
        return reply(
            {"type": "FeatureCollection", "features": features},
            content_type="application/geo+json",
        )

    async def me(self, request: web.Request) -> web.Response:
        """The caller, and the grants that name it now; a viewer sees only its grants'
        project, cameras and window."""
        return reply(await self.viewing.me(bearer_token(request), remote_of(request)))

    async def event_ticket(self, request: web.Request) -> web.Response:
        ticket = await self.streams.ticket(bearer_token(request), remote_of(request))
        return reply({"ticket": ticket, "url": f"/api/events?ticket={ticket}"})

    async def event_stream(self, request: web.Request) -> web.StreamResponse:
        """SSE: a viewer's own session ends and grants; everything for administrators."""
        async with self.streams.follow(request.query.get("ticket", "")) as following:
            return await sse.stream(
                request, following.subscription, first=[following.hello], until=following.until
            )

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
        return reply(self.health.live())

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: the database answers, so access can be decided and recorded."""
        ready, status = self.health.ready()
        return reply(status, status=200 if ready else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})
