"""The privacy masks' API: a camera's masks, read and changed by administrators, and
lifts of them for one grant, asked by an administrator and decided by a second
person (the same rule as a grant's approval). Each handler checks the role, makes
one call into control/masks.py, and serialises."""

from __future__ import annotations

from aiohttp import web

from gateway.access.roles import ADMIN, AUDITOR, POLICE_LIAISON, approvers
from gateway.access.tokens import Identity
from gateway.control.admission import AccessControl
from gateway.control.masks import PrivacyMasks

from .admin import json_body, reason_of
from .api import reply
from .consent import needs, number_of
from .errors import bearer_token, remote_of


class MaskApi:
    def __init__(self, access: AccessControl, masks: PrivacyMasks, approval: str) -> None:
        self.access = access
        self.masks = masks
        self.approvers = approvers(approval)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/cameras/{camera_id}/masks", self.current)
        router.add_put("/api/cameras/{camera_id}/masks", self.change)
        router.add_post("/api/cameras/{camera_id}/masks/lifts", self.ask_lift)
        router.add_get("/api/mask-lifts", self.lifts)
        router.add_post("/api/mask-lifts/{id}/approve", self.approve_lift)
        router.add_post("/api/mask-lifts/{id}/decline", self.decline_lift)
        router.add_post("/api/mask-lifts/{id}/end", self.end_lift)

    @needs(ADMIN, POLICE_LIAISON, AUDITOR)
    async def current(self, request: web.Request, who: Identity) -> web.Response:
        camera_id = request.match_info["camera_id"]
        return reply(await self.masks.current(who, remote_of(request), camera_id))

    @needs(ADMIN)
    async def change(self, request: web.Request, who: Identity) -> web.Response:
        body = await json_body(request, {"masks", "reason"})
        camera_id = request.match_info["camera_id"]
        return reply(await self.masks.change(who, remote_of(request), camera_id, body))

    @needs(ADMIN)
    async def ask_lift(self, request: web.Request, who: Identity) -> web.Response:
        body = await json_body(request, {"grant_id", "reason"})
        camera_id = request.match_info["camera_id"]
        lift = await self.masks.ask_lift(who, remote_of(request), camera_id, body)
        return reply(lift.to_json(self.masks.store.clock()), status=201)

    @needs(ADMIN, POLICE_LIAISON, AUDITOR)
    async def lifts(self, request: web.Request, who: Identity) -> web.Response:
        found = await self.masks.lifts(who, remote_of(request))
        return reply({"lifts": found, "approval": self.masks.approval})

    async def approve_lift(self, request: web.Request) -> web.Response:
        who = await self._approver(request)  # no body: the lift is the request
        lift = await self.masks.approve_lift(who, remote_of(request), self._lift_id(request))
        return reply(lift.to_json(self.masks.store.clock()))

    async def decline_lift(self, request: web.Request) -> web.Response:
        # As for a grant: who may approve, and administrators (the asker too).
        who = await self._approver(request, (*self.approvers, ADMIN))
        lift_id, reason = self._lift_id(request), await reason_of(request)
        lift = await self.masks.decline_lift(who, remote_of(request), lift_id, reason)
        return reply(lift.to_json(self.masks.store.clock()))

    async def end_lift(self, request: web.Request) -> web.Response:
        # Taking the lift back needs no second person: the approvers, or an administrator.
        who = await self._approver(request, (*self.approvers, ADMIN))
        lift_id, reason = self._lift_id(request), await reason_of(request)
        lift = await self.masks.end_lift(who, remote_of(request), lift_id, reason)
        return reply(lift.to_json(self.masks.store.clock()))

    async def _approver(self, request: web.Request, roles: tuple[str, ...] = ()) -> Identity:
        return await self.access.role(
            bearer_token(request), remote_of(request), request.path, *(roles or self.approvers)
        )

    @staticmethod
    def _lift_id(request: web.Request) -> int:
        return number_of(request, "id", "unknown_lift", "no such mask lift")
