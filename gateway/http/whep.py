"""WHEP (draft-ietf-wish-whep) over aiohttp: thin handlers around the session registry."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from gateway.control.administration import AccessAdmin
from gateway.control.admission import RETRY_SECONDS, AccessControl
from gateway.control.sessions import VIEWER_LEFT, SessionRegistry
from gateway.egress import BadOffer
from gateway.relay import CameraHubs, CameraUnavailable
from gateway.store import WritePending

from .errors import HttpError, bearer_token, read_body, remote_of

SDP = "application/sdp"
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
        viewer = await access.authorize_view(identity, camera_id, remote)
        try:
            session, answer = await self.sessions.open(
                hub,
                body,
                remote,
                viewer,
                signed_in_until=access.signed_in_until(identity),
                still_allowed=lambda: access.still_allowed(viewer, camera_id),
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
        return web.Response(
            status=201,
            text=answer,
            content_type=SDP,
            headers={"Location": f"/whep/sessions/{session.id}"},
        )

    async def delete_session(self, request: web.Request) -> web.Response:
        """The viewer ends its own session (an administrator may end any)."""
        remote = remote_of(request)
        identity = await self.access.identify(bearer_token(request), remote)
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            raise HttpError(404, "unknown_session", "no such session")
        if session.account != identity.account:
            if not identity.is_admin:
                self.access.record_refusal(
                    identity,
                    remote,
                    "not_owner",
                    "another account's session",
                    session_id=session.id,
                )
                raise HttpError(403, "not_owner", "this session belongs to another account")
            await self.admin.revoke_session(
                identity, remote, session.id, "ended through WHEP DELETE"
            )
        else:
            await self.sessions.end(session.id, VIEWER_LEFT)
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
        raise HttpError(
            422,
            "trickle_unsupported",
            "trickle ICE is not supported; send all candidates in the offer",
        )


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
