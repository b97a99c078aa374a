"""WHEP (draft-ietf-wish-whep) over aiohttp: thin handlers around the session registry."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from gateway.config import RENDITION_NAME
from gateway.control.administration import AccessAdmin
from gateway.control.admission import RETRY_SECONDS, AccessControl
from gateway.control.sessions import VIEWER_LEFT, SessionRegistry
from gateway.egress import BadOffer, IceRestartUnsupported, ViewerSession
from gateway.relay import CameraHubs, CameraUnavailable
from gateway.store import WritePending

from . import cors
from .errors import HttpError, bearer_token, read_body, remote_of

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
# Who ended or changed a session when no token came with the request.
SESSION_URL = "session URL"
log = logging.getLogger(__name__)


class WhepEndpoint:
    def __init__(
        self,
        hubs: CameraHubs,
        sessions: SessionRegistry,
        access: AccessControl,
        admin: AccessAdmin,
        max_body_bytes: int,
    ) -> None:
        self.hubs = hubs
        self.sessions = sessions
        self.access = access
        self.admin = admin
        self.max_body_bytes = max_body_bytes

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/whep/{camera_id}", self.post_offer)
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
        remote = remote_of(request)
        access = self.access
        identity = await access.identify(bearer_token(request), remote)
        # Only the camera's own spelling of its URL: the balancer picks the node that
        # pulls a camera by hashing the path as sent, so another spelling of the same
        # camera (percent-encoded, dot segments) would make a second pull elsewhere.
        if request.raw_path.partition("?")[0] != f"/whep/{camera_id}":
            camera_id = ""
        hub = self.hubs.get(camera_id)
        if hub is None:
            access.record_refusal(identity, remote, "unknown_camera", "unknown camera")
            raise HttpError(404, "unknown_camera", f"no camera with id {camera_id!r}")
        rendition = None
        if (name := request.query.get("rendition")) is not None:
            rendition = self.sessions.options.renditions.get(name)
            if rendition is None:
                offered = ", ".join(self.sessions.options.renditions) or "none"
                # Echoed only when it could be a name at all.
                shown = repr(name) if RENDITION_NAME.fullmatch(name) else "(not shown)"
                why = f"no rendition named {shown}; this gateway offers: {offered}"
                access.record_refusal(
                    identity, remote, "unknown_rendition", why, camera_id=camera_id
                )
                raise HttpError(400, "unknown_rendition", why)
        viewer = await access.authorize_view(identity, camera_id, remote)
        try:
            session, answer = await self.sessions.open(
                hub,
                body,
                remote,
                viewer,
                signed_in_until=access.signed_in_until(identity),
                still_allowed=lambda: access.still_allowed(viewer, camera_id),
                rendition=rendition,
            )
        except BadOffer as exc:
            access.record_refusal(identity, remote, "bad_offer", str(exc), camera_id=camera_id)
            raise HttpError(400, "bad_offer", str(exc)) from None
        except WritePending:
            # Nobody watches unaccounted: no audit row, no picture.
            log.error(
                "audit log cannot be written; refusing a viewer of camera %s",
                camera_id,
                extra={"camera_id": camera_id},
            )
            raise HttpError(
                503,
                "audit_unavailable",
                "access cannot be recorded right now, so viewing is refused",
                headers={"Retry-After": str(RETRY_SECONDS)},
            ) from None
        except CameraUnavailable as exc:
            access.record_refusal(identity, remote, exc.code, str(exc), camera_id=camera_id)
            raise HttpError(
                503,
                exc.code,
                f"camera {camera_id!r} is unavailable: {exc}",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        response = web.Response(
            status=201,
            body=answer.encode(),
            headers={
                # Exactly this, with no charset: some WHEP players compare it whole.
                hdrs.CONTENT_TYPE: SDP,
                "Location": f"/whep/sessions/{session.id}",
                "ETag": session.etag,
                "Accept-Patch": TRICKLE,
            },
        )
        # The session's own TURN username and credential (WHEP: ICE server configuration
        # in Link headers), for a viewer that reaches the gateway only through a relay.
        if session.turn is not None:
            for link in session.turn.link_headers():
                response.headers.add(hdrs.LINK, link)
        return response

    async def get_endpoint(self, request: web.Request) -> web.Response:
        """WHEP §4.1: the endpoint has no representation, so GET is a 2XX with no
        content. Whether the camera exists is told only to a POST with a token."""
        return web.Response(status=204)

    async def get_session(self, request: web.Request) -> web.Response:
        self._session(request)
        return web.Response(status=204)

    async def delete_session(self, request: web.Request) -> web.Response:
        """The viewer ends its session; the session URL is the capability, and a token,
        when sent, must be the owner's (an administrator may end any)."""
        remote = remote_of(request)
        session_id = request.match_info["session_id"]
        session = self.sessions.get(session_id)
        if session is None:
            # A player that closed its connection before its DELETE (Medooze's stop()
            # does): the session has ended already, as "viewer closed".
            ended = self.sessions.recently_ended(session_id)
            if ended is None:
                raise HttpError(404, "unknown_session", "no such session")
            await self.access.authorize_session_change(
                bearer_token(request), ended.account, remote, ended.id, ended.camera_id
            )
            return web.json_response({"ended": True, "code": ended.ending.code})
        identity = await self.access.authorize_session_change(
            bearer_token(request), session.account, remote, session.id, session.camera_id
        )
        if identity is not None and identity.account != session.account:
            await self.admin.revoke_session(
                identity, remote, session.id, "ended through WHEP DELETE"
            )
        else:
            by = identity.account if identity is not None else SESSION_URL
            await self.sessions.end(session.id, VIEWER_LEFT, by=by)
        return web.json_response({"ended": True})

    async def renew_session(self, request: web.Request) -> web.Response:
        """The same account presents a fresh token: its session may last until that
        token's expiry instead (the player does this before its token lapses)."""
        remote = remote_of(request)
        identity = await self.access.identify(bearer_token(request), remote)
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            raise HttpError(404, "unknown_session", "no such session")
        if session.account != identity.account:
            self.access.record_refusal(
                identity,
                remote,
                "not_owner",
                "renewal of another account's session",
                session_id=session.id,
            )
            raise HttpError(403, "not_owner", "this session belongs to another account")
        until = self.sessions.renew(session, self.access.signed_in_until(identity), remote)
        return web.json_response({"signed_in_until": until.isoformat()})

    async def patch_session(self, request: web.Request) -> web.Response:
        """Trickle ICE (WHEP §4.3, RFC 8840): add the viewer's candidates; 204.

        ICE restarts are not supported: new credentials get 422, the draft's answer
        for "trickle yes, restart no", and the ICE session goes on as it was.
        """
        session = self._session(request)
        remote = remote_of(request)
        identity = await self.access.authorize_session_change(
            bearer_token(request), session.account, remote, session.id, session.camera_id
        )
        if request.content_type != TRICKLE:
            raise HttpError(415, "unsupported_media_type", f"Content-Type must be {TRICKLE}")
        match = request.headers.get(hdrs.IF_MATCH)
        if match is not None and match.strip() not in ("*", session.etag):
            raise HttpError(
                412,
                "precondition_failed",
                "If-Match names another ICE session; send the ETag of this one, or *",
            )
        body = await read_body(request, self.max_body_bytes, "SDP fragment")
        try:
            fragment = body.decode("utf-8")
            await self.sessions.trickle(
                session, fragment, identity.account if identity else SESSION_URL, remote
            )
        except IceRestartUnsupported:
            raise HttpError(
                422,
                "ice_restart_unsupported",
                "ICE restarts are not supported; trickle candidates with the session's "
                "own ICE credentials, or start a new session",
            ) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(400, "bad_sdpfrag", f"SDP fragment is malformed: {exc}") from None
        return web.Response(status=204)

    def _session(self, request: web.Request) -> ViewerSession:
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            raise HttpError(404, "unknown_session", "no such session")
        return session


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def plain_options(
    origins: tuple[str, ...],
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """OPTIONS on WHEP URLs: 204 with Accept-Post (endpoint) or Accept-Patch (session).

    aiohttp-cors answers preflights (and refuses origins not in config); a plain
    OPTIONS, which WHEP clients send to discover the endpoint, is answered here,
    with Access-Control-Allow-Origin for a dashboard in `[cors] origins`.
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
        if hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers:
            origin = request.headers.get(hdrs.ORIGIN)
            if origin in allowed:
                accepts[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
                accepts[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(cors.EXPOSED)
                accepts[hdrs.VARY] = "Origin"
            return web.Response(status=204, headers=accepts)
        response = await handler(request)
        response.headers.update(accepts)
        return response

    return middleware
