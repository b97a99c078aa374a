"""The JSON API for the map and for operators: thin handlers over the hubs and sessions."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import HUBS, SESSIONS


async def cameras(request: web.Request) -> web.Response:
    """Camera points as GeoJSON. Never a source URL: only id, name, place and state."""
    features = [
        {
            "type": "Feature",
            "id": hub.id,
            "geometry": {"type": "Point", "coordinates": [hub.camera.lon, hub.camera.lat]},
            "properties": {"id": hub.id, "name": hub.camera.name, "viewers": len(hub.viewers)},
        }
        for hub in request.app[HUBS]
    ]
    return web.json_response(
        {"type": "FeatureCollection", "features": features},
        content_type="application/geo+json",
        dumps=_dumps,
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "sessions": len(request.app[SESSIONS])})


def _dumps(value: object) -> str:
    import json

    # Keep Traditional Chinese names readable rather than \u-escaped.
    return json.dumps(value, ensure_ascii=False)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/cameras", cameras)
    app.router.add_get("/healthz", healthz)
