"""WHEP (draft-ietf-wish-whep) over aiohttp: thin handlers around control's Viewing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from gateway.control.cluster import Spread, Via
from gateway.control.viewing import Viewing

from . import cors
from .errors import HttpError, bearer_token, read_body, remote_of

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"


class WhepEndpoint:
    def __init__(self, viewing: Viewing, max_body_bytes: int) -> None:
        self.viewing = viewing
        self.max_body_bytes = max_body_bytes

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/whep/{camera_id}", self.post_offer)
        # Where a camera's owner sends a viewer to another node (docs/cluster.md).
        router.add_post("/whep/nodes/{node}/{camera_id}", self.post_offer)
        router.add_get("/whep/{camera_id}", self.get_endpoint)  # and HEAD
        router.add_get("/whep/sessions/{session_id}", self.get_session)  # and HEAD
        router.add_delete("/whep/sessions/{session_id}", self.delete_session)
        router.add_patch("/whep/sessions/{session_id}", self.patch_session)
        router.add_post("/whep/sessions/{session_id}/renew", self.renew_session)

    async def post_offer(self, request: web.Request) -> web.Response:
        if request.content_type != SDP:
            raise HttpError(415, "unsupported_media_type", f"Content-Type must be {SDP}")
        body = await read_body(request, self.max_body_bytes, "offer")
        camera_id = request.match_info["camera_id"]
        node = request.match_info.get("node")
        via = None
        if node is not None:
            query = request.query
            via = Via(node, query.get("origin", ""), query.get("until", ""), query.get("sig", ""))
        # Only the camera's own spelling of its URL: the balancer picks the node that
        # pulls a camera by hashing the path as sent, so another spelling of the same
        # camera (percent-encoded, dot segments) would make a second pull elsewhere.
        spelled = f"/whep/{camera_id}" if node is None else f"/whep/nodes/{node}/{camera_id}"
        if request.raw_path.partition("?")[0] != spelled:
            camera_id = ""
        opened = await self.viewing.open(
            bearer_token(request),
            camera_id,
            body,
            remote_of(request),
            rendition=request.query.get("rendition"),
            via=via,
        )
        if isinstance(opened, Spread):
            # WHEP clients follow a 307 with the same method, offer and token.
            return web.Response(status=307, headers={hdrs.LOCATION: opened.location})
        response = web.Response(
            status=201,
            body=opened.answer.encode(),
            headers={
                # Exactly this, with no charset: some WHEP players compare it whole.
                hdrs.CONTENT_TYPE: SDP,
                "Location": f"/whep/sessions/{opened.session_id}",
                "ETag": opened.etag,
                "Accept-Patch": TRICKLE,
            },
        )
        # The session's own TURN username and credential (WHEP: ICE server configuration
        # in Link headers), for a viewer that reaches the gateway only through a relay.
        for link in opened.ice_servers:
            response.headers.add(hdrs.LINK, link)
        return response

    async def get_endpoint(self, request: web.Request) -> web.Response:
        """WHEP §4.1: the endpoint has no representation, so GET is a 2XX with no
        content. Whether the camera exists is told only to a POST with a token."""
        return web.Response(status=204)

    async def get_session(self, request: web.Request) -> web.Response:
        self.viewing.session(request.match_info["session_id"])
        return web.Response(status=204)

    async def delete_session(self, request: web.Request) -> web.Response:
        ended = await self.viewing.end(
            request.match_info["session_id"], bearer_token(request), remote_of(request)
        )
        return web.json_response(ended)

    async def renew_session(self, request: web.Request) -> web.Response:
        until = await self.viewing.renew(
            request.match_info["session_id"], bearer_token(request), remote_of(request)
        )
        return web.json_response({"signed_in_until": until.isoformat()})

    async def patch_session(self, request: web.Request) -> web.Response:
        """Trickle ICE (WHEP §4.3, RFC 8840): 204, or 422 for an ICE restart."""
        session_id = request.match_info["session_id"]
        self.viewing.session(session_id)  # 404 before anything else
        if request.content_type != TRICKLE:
            raise HttpError(415, "unsupported_media_type", f"Content-Type must be {TRICKLE}")
        body = await read_body(request, self.max_body_bytes, "SDP fragment")
        await self.viewing.trickle(
            session_id,
            bearer_token(request),
            body,
            request.headers.get(hdrs.IF_MATCH),
            remote_of(request),
        )
        return web.Response(status=204)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def plain_options(
    origins: tuple[str, ...],
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """OPTIONS on WHEP URLs: 204 with Accept-Post (endpoint) or Accept-Patch (session).

    A plain OPTIONS, which WHEP clients send to discover the endpoint, is answered
    here, with Access-Control-Allow-Origin for a dashboard in `[cors] origins`; so is
    a CORS preflight for any WHEP method (OPTIONS included: a player that sends its
    OPTIONS with a token needs one). Other preflights are aiohttp-cors's, which
    refuses origins not in config.
    """
    allowed = set(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != hdrs.METH_OPTIONS or not request.path.startswith("/whep/"):
            return await handler(request)
        accepts = (
            {"Accept-Patch": TRICKLE}
            if request.path.startswith("/whep/sessions/")
            else {"Accept-Post": SDP}
        )
        origin = request.headers.get(hdrs.ORIGIN)
        method = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if method is None:  # a plain OPTIONS
            if origin in allowed:
                accepts[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
                accepts[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(cors.EXPOSED)
                accepts[hdrs.VARY] = "Origin"
            return web.Response(status=204, headers=accepts)
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
        if (answer := cors.whep_preflight(allowed, origin, method, asked)) is not None:
            return web.Response(status=200, headers=answer)
        response = await handler(request)  # aiohttp-cors refuses it
        response.headers.update(accepts)
        return response

    return middleware
