"""CORS for the dashboards in config; preflights from any other origin fail."""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

# What a WHEP player in a dashboard must read: the session URL, the ICE session's
# entity-tag, ICE servers and extensions (Link), and what PATCH accepts.
EXPOSED = ("Location", "ETag", "Link", "Accept-Patch", "Accept-Post", "Retry-After")


def allow_origins(app: web.Application, origins: tuple[str, ...]) -> None:
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        expose_headers=EXPOSED,
        # If-Match: WHEP's trickle and ICE-restart PATCHes carry it.
        allow_headers=("Authorization", "Content-Type", "If-Match"),
        allow_methods=("GET", "HEAD", "POST", "PATCH", "DELETE"),
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
