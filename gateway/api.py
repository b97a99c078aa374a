"""The JSON API for viewers: cameras, who am I, and the event stream."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway import events
from gateway.access.policy import AccessDenied
from gateway.access.tokens import Identity
from gateway.appkeys import ACCESS, DATABASE, EVENTS, HUBS, SESSIONS, SETTINGS, TICKETS
from gateway.signaling.whep import error


def dumps(value: object) -> str:
    # Keep Traditional Chinese names readable rather than \\u-escaped.
    return json.dumps(value, ensure_ascii=False, default=str)


def reply(value: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps, **kwargs)


def signed_in(
    handler: Callable[[web.Request, Identity], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Pass the caller's identity to `handler`, or answer 401."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            identity = await request.app[ACCESS].identify(request)
        except AccessDenied as exc:
            return error(exc.status, str(exc))
        return await handler(request, identity)

    return wrapped


@signed_in
async def cameras(request: web.Request, identity: Identity) -> web.Response:
    """The cameras the caller may view now, as GeoJSON (administrators: all).

    Never a source URL: only id, name, place, and until when the caller may watch.
    """
    access = request.app[ACCESS]
    until: dict[str, str] = {}
    for grant in access.grants.active_for(identity.account):
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
                "viewers": len(hub.viewers),
                "granted_until": until.get(hub.id),
            },
        }
        for hub in request.app[HUBS]
        if identity.is_admin or hub.id in until
    ]
    return reply(
        {"type": "FeatureCollection", "features": features},
        content_type="application/geo+json",
    )


@signed_in
async def me(request: web.Request, identity: Identity) -> web.Response:
    """The caller, and the grants that name it now (for the tile countdowns)."""
    access = request.app[ACCESS]
    now = access.grants.clock()
    return reply(
        {
            "account": identity.account,
            "is_admin": identity.is_admin,
            "grants": [g.to_json(now) for g in access.grants.active_for(identity.account)],
        }
    )


@signed_in
async def event_ticket(request: web.Request, identity: Identity) -> web.Response:
    ticket = request.app[TICKETS].issue(identity)
    return reply({"ticket": ticket, "url": f"/api/events?ticket={ticket}"})


async def event_stream(request: web.Request) -> web.StreamResponse:
    """SSE: a viewer's own session ends and grants; everything for administrators."""
    identity = request.app[TICKETS].redeem(request.query.get("ticket", ""))
    if identity is None:
        return error(401, "missing, used or expired ticket; get one from POST /api/events/ticket")
    bus = request.app[EVENTS]
    subscription = bus.subscribe(identity.account, identity.is_admin)
    access = request.app[ACCESS]
    now = access.grants.clock()
    sessions = [
        s.to_json()
        for s in request.app[SESSIONS]
        if identity.is_admin or s.account == identity.account
    ]
    hello = {
        "type": "hello",
        "account": identity.account,
        "grants": [g.to_json(now) for g in access.grants.active_for(identity.account)],
        "sessions": sessions,
    }
    try:
        return await events.stream(request, subscription, first=[hello])
    finally:
        bus.unsubscribe(subscription)


async def client_config(request: web.Request) -> web.Response:
    """What the browser needs before sign-in: the map tiles. No secrets here."""
    settings = request.app[SETTINGS].map
    return reply({"map": {"tile_url": settings.tile_url, "attribution": settings.attribution}})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return reply({"status": "ok", "sessions": len(request.app[SESSIONS])})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, so access can be decided and recorded."""
    try:
        request.app[DATABASE].execute("SELECT count(*) FROM grants").fetchone()
    except sqlite3.Error:
        return reply({"status": "database unavailable"}, status=503)
    return reply({"status": "ready"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/cameras", cameras)
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/events/ticket", event_ticket)
    app.router.add_get("/api/events", event_stream)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/config.json", client_config)
