"""The chain of consent's API: police authorizations, approvals, emergency access
and the governance report. Each handler checks the caller's role, makes one call
into control/, and serialises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.access.roles import ADMIN, AUDITOR, EMERGENCY, POLICE_LIAISON, approvers
from gateway.access.tokens import Identity
from gateway.control.administration import AccessAdmin
from gateway.control.admission import AccessControl
from gateway.control.consent import PoliceConsent
from gateway.control.emergency import EmergencyAccess
from gateway.control.masks import PrivacyMasks
from gateway.control.refusals import Denied
from gateway.control.report import FORMATS, GovernanceReport, period

from .admin import bad_request, grant_id_of, json_body, reason_of
from .api import reply
from .errors import bearer_token, remote_of

AUTHORIZATION_FIELDS = {
    "reference",
    "cameras",
    "districts",
    "starts_at",
    "ends_at",
    "purpose_class",
    "note",
    "on_behalf_of",
}
Handler = Callable[..., Awaitable[web.StreamResponse]]


def needs(*roles: str) -> Callable[[Handler], Callable[[Any, web.Request], Awaitable[Any]]]:
    """The caller must have one of `roles` (401 or 403 role_required otherwise)."""

    def wrap(handler: Handler) -> Callable[[Any, web.Request], Awaitable[Any]]:
        async def wrapped(self: ConsentApi, request: web.Request) -> web.StreamResponse:
            token, remote = bearer_token(request), remote_of(request)
            who = await self.access.role(token, remote, request.path, *roles)
            return await handler(self, request, who)

        return wrapped

    return wrap


def number_of(request: web.Request, name: str, code: str, words: str) -> int:
    text = request.match_info[name]
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise Denied(code, words)
    return int(text)


class ConsentApi:
    def __init__(
        self,
        access: AccessControl,
        admin: AccessAdmin,
        consent: PoliceConsent,
        emergency: EmergencyAccess,
        report: GovernanceReport,
        masks: PrivacyMasks,
    ) -> None:
        self.access = access
        self.masks = masks
        self.admin = admin
        self.consent = consent
        self.emergency = emergency
        self.report = report
        # Who approves: [governance] approval.
        self.approvers = approvers(admin.approval)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/authorizations", self.list_authorizations)
        router.add_post("/api/authorizations", self.record_authorization)
        router.add_post("/api/authorizations/{id}/confirm", self.confirm_authorization)
        router.add_post("/api/authorizations/{id}/withdraw", self.withdraw_authorization)
        router.add_get("/api/approvals", self.waiting)
        router.add_post("/api/grants/{grant_id}/approve", self.approve)
        router.add_post("/api/grants/{grant_id}/decline", self.decline)
        router.add_get("/api/emergency", self.emergencies)
        router.add_post("/api/emergency/{camera_id}", self.open_emergency)
        router.add_post("/api/emergency/{id}/review", self.review_emergency)
        router.add_post("/api/emergency/{id}/end", self.end_emergency)
        router.add_get("/api/report", self.governance_report)

    # --- police authorizations ------------------------------------------------------

    @needs(ADMIN, POLICE_LIAISON, AUDITOR)
    async def list_authorizations(self, request: web.Request, who: Identity) -> web.Response:
        return reply({"authorizations": await self.consent.listing(who, remote_of(request))})

    @needs(ADMIN, POLICE_LIAISON)
    async def record_authorization(self, request: web.Request, who: Identity) -> web.Response:
        body = await json_body(request, AUTHORIZATION_FIELDS)
        made = await self.consent.record(who, remote_of(request), body)
        return reply(made.to_json(self.admin.store.clock()), status=201)

    @needs(POLICE_LIAISON)
    async def confirm_authorization(self, request: web.Request, who: Identity) -> web.Response:
        # The body may be left out: only an adopted reference needs its purpose stated.
        body = await json_body(request, {"purpose_class"}) if request.body_exists else {}
        done = await self.consent.confirm(
            who, remote_of(request), self._authorization_id(request), body.get("purpose_class")
        )
        return reply(done.to_json(self.admin.store.clock()))

    @needs(POLICE_LIAISON)
    async def withdraw_authorization(self, request: web.Request, who: Identity) -> web.Response:
        authorization_id, reason = self._authorization_id(request), await reason_of(request)
        done = await self.consent.withdraw(who, remote_of(request), authorization_id, reason)
        return reply(done.to_json(self.admin.store.clock()))

    # --- two pairs of eyes ----------------------------------------------------------

    @needs(ADMIN, POLICE_LIAISON, AUDITOR)
    async def waiting(self, request: web.Request, who: Identity) -> web.Response:
        # Everything that waits for a second person: grants and changes, mask lifts.
        return reply(
            {
                "approval": self.admin.approval,
                "grants": await self.admin.waiting(),
                "mask_lifts": await self.masks.waiting(),
            }
        )

    async def approve(self, request: web.Request) -> web.Response:
        who = await self._approver(request)  # no body: the grant is the request
        grant = await self.admin.approve_grant(who, remote_of(request), grant_id_of(request))
        return reply(self.admin.grants_json(grant))

    async def decline(self, request: web.Request) -> web.Response:
        who = await self._approver(request, asker_too=True)
        grant_id, reason = grant_id_of(request), await reason_of(request)
        grant = await self.admin.decline_grant(who, remote_of(request), grant_id, reason)
        return reply(self.admin.grants_json(grant))

    async def _approver(self, request: web.Request, asker_too: bool = False) -> Identity:
        roles = (*self.approvers, ADMIN) if asker_too else self.approvers
        return await self.access.role(
            bearer_token(request), remote_of(request), request.path, *roles
        )

    # --- emergency access -----------------------------------------------------------

    @needs(ADMIN, POLICE_LIAISON, AUDITOR, EMERGENCY)
    async def emergencies(self, request: web.Request, who: Identity) -> web.Response:
        found: dict[str, Any] = {
            "emergencies": await self.emergency.listing(who, remote_of(request)),
            "limits": self.emergency.limits(),
        }
        if who.may_use_emergency:
            found["cameras"] = self.emergency.cameras_json()
        return reply(found)

    @needs(EMERGENCY)
    async def open_emergency(self, request: web.Request, who: Identity) -> web.Response:
        camera_id = request.match_info["camera_id"]
        body = await json_body(request, {"danger", "minutes"})
        emergency, new = await self.emergency.open(who, remote_of(request), camera_id, body)
        return reply(
            {
                "emergency": emergency.to_json(self.admin.store.clock()),
                "whep": f"/whep/{camera_id}",
            },
            status=201 if new else 200,
        )

    @needs(ADMIN, POLICE_LIAISON)
    async def review_emergency(self, request: web.Request, who: Identity) -> web.Response:
        body = await json_body(request, {"justified", "note"})
        done = await self.emergency.review(
            who, remote_of(request), self._emergency_id(request), body
        )
        return reply(done.to_json(self.admin.store.clock()))

    @needs(ADMIN, POLICE_LIAISON)
    async def end_emergency(self, request: web.Request, who: Identity) -> web.Response:
        emergency_id, reason = self._emergency_id(request), await reason_of(request)
        done = await self.emergency.end(who, remote_of(request), emergency_id, reason)
        return reply(done.to_json(self.admin.store.clock()))

    # --- the governance report ------------------------------------------------------

    @needs(ADMIN, AUDITOR)
    async def governance_report(self, request: web.Request, who: Identity) -> web.Response:
        query = request.query
        fmt = query.get("format", "html")
        if fmt not in FORMATS:
            raise bad_request("format: html, csv or json")
        try:
            since, until = period(query.get("from", ""), query.get("to", ""))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        project = query.get("project") or None
        text = await self.report.make(who, remote_of(request), since, until, project, fmt)
        headers = {}
        if fmt != "html":
            name = f"report-{since.date()}-{until.date()}.{fmt}"
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return web.Response(text=text, content_type=FORMATS[fmt], charset="utf-8", headers=headers)

    @staticmethod
    def _authorization_id(request: web.Request) -> int:
        return number_of(request, "id", "unknown_authorization", "no such police authorization")

    @staticmethod
    def _emergency_id(request: web.Request) -> int:
        return number_of(request, "id", "unknown_emergency", "no such emergency access")
