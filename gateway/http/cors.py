"""CORS for the dashboards in config; preflights from any other origin fail."""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web


def allow_origins(app: web.Application, origins: tuple[str, ...]) -> None:
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
