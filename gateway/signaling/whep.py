"""WHEP (draft-ietf-wish-whep) over aiohttp: thin handlers around SessionRegistry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from gateway.access.audit import AuditWriteError
from gateway.access.policy import AccessDenied, remote_of
from gateway.appkeys import ACCESS, ADMIN, HUBS, SESSIONS, SETTINGS
from gateway.relay import CameraUnavailable

from .offer import BadOffer

SDP = "application/sdp"
BODY_TIMEOUT_SECONDS = 10.0
log = logging.getLogger(__name__)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def post_offer(request: web.Request) -> web.Response:
    app = request.app
    if request.content_type != SDP:
        return error(415, f"Content-Type must be {SDP}")
    limit = app[SETTINGS].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return error(413, f"offer is larger than {limit} bytes")
    try:
        body = await read_body(request, limit)
    except TimeoutError:
        return error(408, f"offer body not received within {BODY_TIMEOUT_SECONDS:g} s")
    if body is None:
        return error(413, f"offer is larger than {limit} bytes")
    camera_id = request.match_info["camera_id"]
    access = app[ACCESS]
    try:
        identity = await access.identify(request)
        hub = app[HUBS].get(camera_id)
        if hub is None:
            return error(404, f"no camera with id {camera_id!r}")
        viewer = access.authorize_view(request, identity, camera_id)
    except AccessDenied as exc:
        return error(exc.status, str(exc))
    try:
        session, answer = await app[SESSIONS].open(hub, body, remote_of(request), viewer)
    except BadOffer as exc:
        return error(400, str(exc))
    except AuditWriteError:
        # Nobody watches unaccounted: no audit row, no picture.
        log.error(
            "audit log cannot be written; refusing a viewer of camera %s",
            camera_id,
            extra={"camera_id": camera_id},
        )
        return error(
            503,
            "access cannot be recorded right now, so viewing is refused",
            headers={"Retry-After": "30"},
        )
    except CameraUnavailable as exc:
        return error(
            503,
            f"camera {camera_id!r} is unavailable: {exc}",
            headers={"Retry-After": str(exc.retry_after)},
        )
    return web.Response(
        status=201,
        text=answer,
        content_type=SDP,
        headers={"Location": f"/whep/sessions/{session.id}"},
    )


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None past `limit` bytes; TimeoutError if it comes too slowly.

    A body arrives in pieces (read(n) returns what is there so far), and a
    slowloris body must not hold a handler and its memory for ever.
    """
    body = bytearray()
    async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
        while chunk := await request.content.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                return None
    return bytes(body)


async def delete_session(request: web.Request) -> web.Response:
    """The viewer ends its own session (an administrator may end any)."""
    try:
        identity = await request.app[ACCESS].identify(request)
    except AccessDenied as exc:
        return error(exc.status, str(exc))
    session = request.app[SESSIONS].get(request.match_info["session_id"])
    if session is None:
        return error(404, "no such session")
    if session.account != identity.account:
        if not identity.is_admin:
            return error(403, "this session belongs to another account")
        await request.app[ADMIN].revoke_session(
            identity, remote_of(request), session.id, "ended through WHEP DELETE"
        )
    else:
        await request.app[SESSIONS].end(session.id, "viewer left")
    return web.json_response({"ended": True})


async def patch_session(request: web.Request) -> web.Response:
    return error(422, "trickle ICE is not supported; send all candidates in the offer")


@web.middleware
async def plain_options(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """OPTIONS on a WHEP endpoint: 204 with Accept-Post, CORS preflight or not.

    aiohttp-cors answers preflights (and refuses origins not in config); a plain
    OPTIONS, which WHEP clients send to discover the endpoint, is answered here.
    """
    if request.method != hdrs.METH_OPTIONS or not request.path.startswith("/whep/"):
        return await handler(request)
    if hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers:
        return web.Response(status=204, headers={"Accept-Post": SDP})
    response = await handler(request)
    response.headers["Accept-Post"] = SDP
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/whep/{camera_id}", post_offer)
    app.router.add_delete("/whep/sessions/{session_id}", delete_session)
    app.router.add_patch("/whep/sessions/{session_id}", patch_session)
