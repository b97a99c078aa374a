"""CORS for the dashboards in config; preflights from any other origin fail."""

from __future__ import annotations

import aiohttp_cors
from aiohttp import hdrs, web

# What a WHEP player in a dashboard must read: the session URL, the ICE session's
# entity-tag, ICE servers and extensions (Link), and what PATCH accepts.
EXPOSED = ("Location", "ETag", "Link", "Accept-Patch", "Accept-Post", "Retry-After")
# If-Match: WHEP's trickle and ICE-restart PATCHes carry it.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "If-Match")
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE")
# A WHEP player may also send its own OPTIONS with a token (MediaMTX's reader does,
# to learn the ICE servers), which needs a preflight of its own.
WHEP_METHODS = ("OPTIONS", *ALLOWED_METHODS)
PREFLIGHT_MAX_AGE = 600


def whep_preflight(
    origins: set[str], origin: str | None, method: str, requested_headers: str
) -> dict[str, str] | None:
    """The answer's headers to a preflight for a WHEP URL, or None to refuse it: every
    WHEP method alike, from a dashboard in `[cors] origins`, with the allowed headers."""
    asked = {h.strip().lower() for h in requested_headers.split(",") if h.strip()}
    if origin not in origins or method.upper() not in WHEP_METHODS:
        return None
    if not asked <= {h.lower() for h in ALLOWED_HEADERS}:
        return None
    return {
        hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(WHEP_METHODS),
        hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join(ALLOWED_HEADERS),
        hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE),
        hdrs.VARY: "Origin",
    }


def allow_origins(app: web.Application, origins: tuple[str, ...]) -> None:
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        expose_headers=EXPOSED,
        allow_headers=ALLOWED_HEADERS,
        allow_methods=ALLOWED_METHODS,
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
