"""The admin API: grants, live sessions, the audit log and the camera inventory.
Administrators only.

Handlers parse, call AccessAdmin (or the InventoryReloader), and serialize; nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.access.grants import GrantInvalid
from gateway.access.roles import ADMIN, AUDITOR
from gateway.access.tokens import Identity
from gateway.control.administration import AccessAdmin
from gateway.control.admission import NOT_ADMIN, AccessControl
from gateway.control.refusals import Denied
from gateway.control.reload import InventoryReloader

from .api import reply
from .errors import HttpError, bearer_token, read_body, remote_of

Handler = Callable[[Any, web.Request, Identity], Awaitable[web.StreamResponse]]
GRANT_FIELDS = {"project", "purpose", "members", "cameras", "starts_at", "ends_at"}
# The police authorization a grant stays inside: by id, or by its reference.
AUTHORIZATION = {"authorization_id", "authorization_ref"}
# A new authorization moves the grant (the reference it ran under is kept).
UPDATABLE = {"members", "cameras", "starts_at", "ends_at", "purpose", *AUTHORIZATION}
MAX_JSON_BYTES = 1 << 20


def bad_request(message: str) -> HttpError:
    return HttpError(400, "bad_request", message)


def admin_only(handler: Handler) -> Callable[[Any, web.Request], Awaitable[web.StreamResponse]]:
    """The caller must be an administrator (401 or 403 otherwise)."""

    async def wrapped(self: AdminApi, request: web.Request) -> web.StreamResponse:
        token, remote = bearer_token(request), remote_of(request)
        identity = await self.access.admin(token, remote, request.path)
        return await handler(self, request, identity)

    return wrapped


async def json_body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    raw = await read_body(request, MAX_JSON_BYTES)
    try:
        body = json.loads(raw.decode("utf-8"))
        _check_text(body)
    except (ValueError, RecursionError):  # bad JSON or UTF-8, huge numbers, lone surrogates
        raise bad_request("body must be a JSON object of valid UTF-8 text") from None
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(map(str, unknown)))[:200]}")
    return body


def _check_text(value: Any) -> None:
    """Every string must be encodable: JSON may carry lone surrogates ("\\ud800")."""
    if isinstance(value, str):
        value.encode("utf-8")  # UnicodeEncodeError is a ValueError
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


async def reason_of(request: web.Request) -> str:
    reason = (await json_body(request, {"reason"})).get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise bad_request("reason: give why, in at most 500 characters")
    return reason.strip()


def grant_id_of(request: web.Request) -> int:
    text = request.match_info["grant_id"]
    if not text.isdigit() or not 0 < int(text) < 2**63:  # SQLite integers are 64-bit
        raise Denied("unknown_grant", "no such grant")
    return int(text)


class AdminApi:
    """Grants, live sessions, the audit log and the inventory: administrators only."""

    def __init__(
        self, access: AccessControl, admin: AccessAdmin, reloader: InventoryReloader
    ) -> None:
        self.access = access
        self.admin = admin
        self.reloader = reloader

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/grants", self.list_grants)
        router.add_post("/api/grants", self.create_grant)
        router.add_get("/api/grants/{grant_id}", self.get_grant)
        router.add_patch("/api/grants/{grant_id}", self.update_grant)
        router.add_post("/api/grants/{grant_id}/revoke", self.revoke_grant)
        router.add_get("/api/sessions", self.list_sessions)
        router.add_post("/api/sessions/{session_id}/revoke", self.revoke_session)
        router.add_post("/api/accounts/{account}/revoke", self.revoke_account)
        router.add_get("/api/audit", self.audit_log)
        router.add_post("/api/inventory/reload", self.reload_inventory)

    @admin_only
    async def list_grants(self, request: web.Request, admin: Identity) -> web.Response:
        include_ended = request.query.get("include_ended", "true") != "false"
        return reply({"grants": await self.admin.listing(include_ended)})

    @admin_only
    async def create_grant(self, request: web.Request, admin: Identity) -> web.Response:
        fields = await json_body(request, GRANT_FIELDS | AUTHORIZATION)
        problems = {name: "required" for name in sorted(GRANT_FIELDS - set(fields))}
        if not AUTHORIZATION & set(fields):
            problems["authorization_id"] = "name the police authorization"
        if problems:  # every missing field named at once, the first as `field`
            raise GrantInvalid(*next(iter(problems.items())), problems)
        grant = await self.admin.create_grant(admin, remote_of(request), fields)
        return reply(self.admin.grants_json(grant), status=201)

    @admin_only
    async def get_grant(self, request: web.Request, admin: Identity) -> web.Response:
        return reply(await self.admin.grant(grant_id_of(request)))

    @admin_only
    async def update_grant(self, request: web.Request, admin: Identity) -> web.Response:
        changes = await json_body(request, UPDATABLE)
        grant = await self.admin.update_grant(
            admin, remote_of(request), grant_id_of(request), changes
        )
        return reply(self.admin.grants_json(grant))

    @admin_only
    async def revoke_grant(self, request: web.Request, admin: Identity) -> web.Response:
        grant_id, reason = grant_id_of(request), await reason_of(request)
        grant = await self.admin.revoke_grant(admin, remote_of(request), grant_id, reason)
        return reply(self.admin.grants_json(grant))

    @admin_only
    async def list_sessions(self, request: web.Request, admin: Identity) -> web.Response:
        # Every node's; the read is written down before the rows go out.
        return reply({"sessions": await self.admin.live_sessions(admin, remote_of(request))})

    @admin_only
    async def revoke_session(self, request: web.Request, admin: Identity) -> web.Response:
        session_id, reason = request.match_info["session_id"], await reason_of(request)
        if not await self.admin.revoke_session(admin, remote_of(request), session_id, reason):
            raise HttpError(404, "unknown_session", "no such session")
        return reply({"ended": 1})

    @admin_only
    async def revoke_account(self, request: web.Request, admin: Identity) -> web.Response:
        account, reason = request.match_info["account"], await reason_of(request)
        ended = await self.admin.revoke_account(admin, remote_of(request), account, reason)
        return reply({"ended": ended})

    async def audit_log(self, request: web.Request) -> web.Response:
        # Administrators, and auditors (the governance office, read-only).
        token, remote = bearer_token(request), remote_of(request)
        admin = await self.access.role(token, remote, request.path, ADMIN, AUDITOR, code=NOT_ADMIN)
        query = request.query
        filters: dict[str, Any] = {
            key: query[key] for key in ("account", "camera_id", "project", "event") if key in query
        }
        for key in ("since", "until"):
            if key in query:
                try:
                    moment = datetime.fromisoformat(query[key])
                    if moment.tzinfo is None:
                        raise bad_request(f"{key}: include a timezone, e.g. +08:00")
                    filters[key] = moment.astimezone(UTC)
                except (ValueError, OverflowError):
                    raise bad_request(
                        f"{key}: use ISO 8601, e.g. 2027-01-01T00:00:00+08:00"
                    ) from None
        limit = query.get("limit", "1000")
        if not limit.isdigit() or not 1 <= int(limit) <= 100_000:
            raise bad_request("limit: a whole number from 1 to 100000")
        filters["limit"] = int(limit)
        # The read is written down before the rows go out.
        if query.get("format") == "csv":
            return web.Response(
                text=await self.admin.audit_csv(admin, remote_of(request), filters),
                content_type="text/csv",
                charset="utf-8",
                headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
            )
        return reply({"rows": await self.admin.audit_rows(admin, remote_of(request), filters)})

    @admin_only
    async def reload_inventory(self, request: web.Request, admin: Identity) -> web.Response:
        reloaded = await self.reloader.requested(admin.account, remote_of(request))
        return reply(reloaded.to_json())
