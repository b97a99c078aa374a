"""The aiohttp application factory: wires relay, signaling and access together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway import api
from gateway.access import AccessPolicy, AllowAll
from gateway.appkeys import ACCESS, HUBS, SESSIONS, SETTINGS
from gateway.config import Settings
from gateway.relay import CameraHubs
from gateway.signaling import SessionRegistry, whep

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


def create_app(settings: Settings, access: AccessPolicy | None = None) -> web.Application:
    # The offer limit is enforced by the WHEP handler with a clear 413.
    app = web.Application(client_max_size=max(settings.server.max_body_bytes, 1024**2))
    app[SETTINGS] = settings
    app[ACCESS] = access or AllowAll()
    app[HUBS] = CameraHubs(settings.cameras, settings.relay)
    app[SESSIONS] = SessionRegistry(settings.webrtc)
    app.cleanup_ctx.append(_media_lifecycle)
    whep.add_routes(app)
    api.add_routes(app)
    app.router.add_get("/", _index)
    app.router.add_static("/web/", WEB_ROOT)
    return app


async def _media_lifecycle(app: web.Application) -> AsyncIterator[None]:
    yield
    # Sessions first, so each ends with its reason before its camera is released.
    await app[SESSIONS].close("gateway shutdown")
    await app[HUBS].close()


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_ROOT / "index.html")
