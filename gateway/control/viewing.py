"""Viewing: what a viewer does, one call per use case.

Open a view (a WHEP offer), trickle candidates, renew its sign-in, end it, and list
the cameras the caller may see. Each call checks who asks, decides, acts, and
writes it down, and raises Denied with a stable code when the answer is no.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.access.grants import Grant
from gateway.access.tokens import Identity
from gateway.config import RENDITION_NAME
from gateway.relay import CameraHubs, CameraUnavailable
from gateway.signaling import (
    VIEWER_LEFT,
    BadOffer,
    EndedWhileOpening,
    IceRestartUnsupported,
    SessionRegistry,
    ViewerSession,
)
from gateway.store import WritePending

from .administration import AccessAdmin
from .admission import AccessControl
from .cluster.spreading import Spread, Spreading, Via
from .refusals import Denied, audit_unavailable

# Who ended or changed a session when no token came with the request.
SESSION_URL = "session URL"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenedView:
    """A session that was opened: what the WHEP answer carries."""

    session_id: str
    answer: str  # the SDP answer
    etag: str  # WHEP's entity-tag of its ICE session
    ice_servers: list[str]  # the session's own TURN servers, as Link header values


class Viewing:
    def __init__(
        self,
        hubs: CameraHubs,
        sessions: SessionRegistry,
        access: AccessControl,
        admin: AccessAdmin,
        spreading: Spreading | None = None,
    ) -> None:
        self.hubs = hubs
        self.sessions = sessions
        self.access = access
        self.admin = admin
        self.spreading = spreading  # on a node of a cluster

    async def open(
        self,
        token: str,
        camera_id: str,
        offer: bytes,
        remote: str,
        rendition: str | None = None,
        via: Via | None = None,
    ) -> OpenedView | Spread:
        """Answer a viewer's offer for a camera, or its lighter `rendition`. Only an
        account whose grant names it now gets a session, and only once its start is
        written down. On a camera's owner with many viewers of it, the answer may be
        another node to offer to (Spread); an offer `via` an owner is admitted here,
        the camera's frames coming from that owner (cluster/spreading.py)."""
        access, refuse = self.access, self.access.refusals.refuse
        identity = await access.identify(token, remote)
        account = identity.account
        if (cut_off := self.sessions.refusing) is not None:  # a node cut off from its cluster
            raise refuse(account, remote, cut_off.code, cut_off.reason, camera_id=camera_id)
        hub = self.hubs.get(camera_id)
        if hub is None:
            raise refuse(
                account,
                remote,
                "unknown_camera",
                "unknown camera",
                f"no camera with id {camera_id!r}",
            )
        spec = None
        if rendition is not None:
            spec = self.sessions.options.renditions.get(rendition)
            if spec is None:
                offered = ", ".join(self.sessions.options.renditions) or "none"
                # Echoed only when it could be a name at all.
                shown = repr(rendition) if RENDITION_NAME.fullmatch(rendition) else "(not shown)"
                why = f"no rendition named {shown}; this gateway offers: {offered}"
                raise refuse(account, remote, "unknown_rendition", why, camera_id=camera_id)
        spreading = self.spreading

        def refused(exc: Denied) -> Denied:  # written down as every refusal after sign-in
            retry = exc.retry_after
            return refuse(
                account, remote, exc.code, str(exc), retry_after=retry, camera_id=camera_id
            )

        if via is not None:
            if spreading is None:
                raise refuse(account, remote, "unknown_camera", "unknown camera")
            try:
                spreading.check(camera_id, via)
            except Denied as exc:
                raise refused(exc) from None
        elif spreading is not None and (spread := spreading.elsewhere(hub, rendition)):
            return spread  # admitted, audited and counted where it lands
        # Counted as this camera's viewer here from now: offers that come together
        # are spread too, before any of them is a session.
        with spreading.admitting(camera_id) if spreading is not None else nullcontext():
            viewer = await access.authorize_view(identity, camera_id, remote)
            if via is not None and spreading is not None:
                try:
                    spreading.take_from_origin(hub, via)
                except Denied as exc:
                    raise refused(exc) from None
            try:
                session, answer = await self.sessions.open(
                    hub,
                    offer,
                    remote,
                    viewer,
                    signed_in_until=access.signed_in_until(identity),
                    still_allowed=lambda: access.still_allowed(viewer, camera_id),
                    rendition=spec,
                )
            except BadOffer as exc:
                raise refuse(account, remote, "bad_offer", str(exc), camera_id=camera_id) from None
            except EndedWhileOpening as exc:
                # Revoked, or the gateway stopping, before it went live: never answered.
                ending = exc.ending
                raise refuse(
                    account, remote, ending.code, ending.reason, camera_id=camera_id
                ) from None
            except WritePending:
                # Nobody watches unaccounted: no audit row, no picture.
                log.error(
                    "audit log cannot be written; refusing a viewer of camera %s",
                    camera_id,
                    extra={"camera_id": camera_id},
                )
                raise audit_unavailable() from None
            except CameraUnavailable as exc:
                raise refuse(
                    account,
                    remote,
                    exc.code,
                    str(exc),
                    f"camera {camera_id!r} is unavailable: {exc}",
                    retry_after=exc.retry_after,
                    camera_id=camera_id,
                ) from None
            return OpenedView(
                session.id,
                answer,
                session.etag,
                session.turn.link_headers() if session.turn is not None else [],
            )

    def session(self, session_id: str) -> ViewerSession:
        """A live session of this node, else Denied("unknown_session")."""
        session = self.sessions.get(session_id)
        if session is None:
            raise Denied("unknown_session", "no such session")
        return session

    async def trickle(
        self, session_id: str, token: str, fragment: bytes, if_match: str | None, remote: str
    ) -> int:
        """Trickle ICE (WHEP §4.3, RFC 8840): add the viewer's candidates. ICE restarts
        are not supported: new credentials are refused, and the ICE session goes on."""
        session = self.session(session_id)
        identity = await self.access.authorize_session_change(
            token, session.account, remote, session.id, session.camera_id
        )
        if if_match is not None and if_match.strip() not in ("*", session.etag):
            raise Denied(
                "precondition_failed",
                "If-Match names another ICE session; send the ETag of this one, or *",
            )
        try:
            return await self.sessions.trickle(
                session,
                fragment.decode("utf-8"),
                identity.account if identity else SESSION_URL,
                remote,
            )
        except IceRestartUnsupported:
            raise Denied(
                "ice_restart_unsupported",
                "ICE restarts are not supported; trickle candidates with the session's "
                "own ICE credentials, or start a new session",
            ) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise Denied("bad_sdpfrag", f"SDP fragment is malformed: {exc}") from None

    async def renew(self, session_id: str, token: str, remote: str) -> datetime:
        """The same account presents a fresh token: its session may last until that
        token's expiry instead (the player does this before its token lapses)."""
        identity = await self.access.identify(token, remote)
        session = self.session(session_id)
        if session.account != identity.account:
            raise self.access.refusals.refuse(
                identity.account,
                remote,
                "not_owner",
                "renewal of another account's session",
                "this session belongs to another account",
                session_id=session.id,
            )
        return self.sessions.renew(session, self.access.signed_in_until(identity), remote)

    async def end(self, session_id: str, token: str, remote: str) -> dict[str, Any]:
        """The viewer ends its session; the session URL is the capability, and a token,
        when sent, must be the owner's (an administrator may end any)."""
        session = self.sessions.get(session_id)
        if session is None:
            # A player that closed its connection before its DELETE (Medooze's stop()
            # does): the session has ended already, as "viewer closed".
            ended = self.sessions.recently_ended(session_id)
            if ended is None:
                raise Denied("unknown_session", "no such session")
            await self.access.authorize_session_change(
                token, ended.account, remote, ended.id, ended.camera_id
            )
            return {"ended": True, "code": ended.ending.code}
        identity = await self.access.authorize_session_change(
            token, session.account, remote, session.id, session.camera_id
        )
        if identity is not None and identity.account != session.account:
            await self.admin.revoke_session(
                identity, remote, session.id, "ended through WHEP DELETE"
            )
        else:
            by = identity.account if identity is not None else SESSION_URL
            await self.sessions.end(session.id, VIEWER_LEFT, by=by)
        return {"ended": True}

    async def cameras(self, token: str, remote: str) -> list[dict[str, Any]]:
        """The cameras the caller may view now as GeoJSON features (administrators,
        and police liaisons who scope consents by camera: all). Never a source: only
        id, name, place (district and road, for the search), until when the
        caller may watch, and whether its picture is masked."""
        identity = await self.access.identify(token, remote)
        until: dict[str, str] = {}
        for grant in await self._active(identity):
            for camera_id in grant.cameras:
                ends = grant.ends_at.isoformat()
                until[camera_id] = max(until.get(camera_id, ends), ends)
        return [
            {
                "type": "Feature",
                "id": hub.id,
                "geometry": {"type": "Point", "coordinates": [hub.camera.lon, hub.camera.lat]},
                "properties": {
                    "id": hub.id,
                    "name": hub.camera.name,
                    "district": hub.camera.district,
                    "road": hub.camera.road,
                    "viewers": len(hub.viewers),
                    "granted_until": until.get(hub.id),
                    # Its picture leaves with privacy masks (never where they are).
                    "masked": bool(hub.masks),
                },
            }
            for hub in self.hubs
            if identity.has("admin", "police_liaison") or hub.id in until
        ]

    async def me(self, token: str, remote: str) -> dict[str, Any]:
        """The caller, and the grants that name it now (for the tile countdowns)."""
        identity = await self.access.identify(token, remote)
        return {
            "account": identity.account,
            "is_admin": identity.is_admin,
            # police_liaison, auditor, emergency (docs/governance.md); admin too
            "roles": sorted(identity.roles),
            "approval": self.admin.approval,
            "grants": await self.grants_json(identity),
        }

    async def grants_json(self, identity: Identity) -> list[dict[str, Any]]:
        """The caller's active grants: whole for an administrator, else only what a
        viewer needs (project, cameras, window), not co-members, purpose, authority."""
        now = self.access.grants.now()
        active = await self._active(identity)
        if identity.is_admin:
            return [g.to_json(now) for g in active]
        return [g.to_viewer_json(now) for g in active]

    async def _active(self, identity: Identity) -> list[Grant]:
        return await self.access.grants.active_for(identity.account)
