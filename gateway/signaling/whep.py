"""WHEP (draft-ietf-wish-whep) over aiohttp: thin handlers around SessionRegistry."""

from __future__ import annotations

from aiohttp import web

from gateway.access import AccessDenied
from gateway.appkeys import ACCESS, HUBS, SESSIONS, SETTINGS
from gateway.relay import CameraUnavailable

from .offer import BadOffer

SDP = "application/sdp"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def post_offer(request: web.Request) -> web.Response:
    app = request.app
    if request.content_type != SDP:
        return error(415, f"Content-Type must be {SDP}")
    limit = app[SETTINGS].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return error(413, f"offer is larger than {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        return error(413, f"offer is larger than {limit} bytes")
    camera_id = request.match_info["camera_id"]
    hub = app[HUBS].get(camera_id)
    if hub is None:
        return error(404, f"no camera with id {camera_id!r}")
    try:
        await app[ACCESS].authorize_view(request, camera_id)
        session, answer = await app[SESSIONS].open(hub, body, request.remote or "")
    except AccessDenied as exc:
        return error(exc.status, str(exc))
    except BadOffer as exc:
        return error(400, str(exc))
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


async def options_offer(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Accept-Post": SDP})


async def delete_session(request: web.Request) -> web.Response:
    if not await request.app[SESSIONS].end(request.match_info["session_id"], "viewer left"):
        return error(404, "no such session")
    return web.json_response({"ended": True})


async def patch_session(request: web.Request) -> web.Response:
    return error(422, "trickle ICE is not supported; send all candidates in the offer")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/whep/{camera_id}", post_offer)
    app.router.add_route("OPTIONS", "/whep/{camera_id}", options_offer)
    app.router.add_delete("/whep/sessions/{session_id}", delete_session)
    app.router.add_patch("/whep/sessions/{session_id}", patch_session)
