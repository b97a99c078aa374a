"""The admin API: grants, live sessions and the audit log. Administrators only.

Handlers parse, call AccessAdmin or a store, and serialize; nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.access.audit import AuditLog
from gateway.access.grants import GrantInvalid, GrantNotFound
from gateway.access.policy import AccessDenied, remote_of
from gateway.access.tokens import Identity
from gateway.api import reply
from gateway.appkeys import ACCESS, ADMIN, SESSIONS
from gateway.signaling.whep import BODY_TIMEOUT_SECONDS, error, read_body

Handler = Callable[[web.Request, Identity], Awaitable[web.StreamResponse]]
GRANT_FIELDS = {
    "project",
    "purpose",
    "authorization_ref",
    "members",
    "cameras",
    "starts_at",
    "ends_at",
}
UPDATABLE = {"members", "cameras", "starts_at", "ends_at", "purpose"}
MAX_JSON_BYTES = 1 << 20


class BadRequest(Exception):
    pass


def admin_only(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Check the admin claim, and turn domain errors into clear answers."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            identity = await request.app[ACCESS].require_admin(request)
            return await handler(request, identity)
        except AccessDenied as exc:
            return error(exc.status, str(exc))
        except BadRequest as exc:
            return error(400, str(exc))
        except GrantInvalid as exc:
            return web.json_response({"error": str(exc), "field": exc.field}, status=422)
        except GrantNotFound:
            return error(404, "no such grant")

    return wrapped


async def json_body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    try:
        raw = await read_body(request, MAX_JSON_BYTES)
    except TimeoutError:
        raise BadRequest(f"body not received within {BODY_TIMEOUT_SECONDS:g} s") from None
    if raw is None:
        raise BadRequest(f"body is larger than {MAX_JSON_BYTES} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
        _check_text(body)
    except (ValueError, RecursionError):  # bad JSON or UTF-8, huge numbers, lone surrogates
        raise BadRequest("body must be a JSON object of valid UTF-8 text") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(map(str, unknown)))[:200]}")
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
        raise BadRequest("reason: give why, in at most 500 characters")
    return reason.strip()


def grant_id_of(request: web.Request) -> int:
    text = request.match_info["grant_id"]
    if not text.isdigit() or not 0 < int(text) < 2**63:  # SQLite integers are 64-bit
        raise GrantNotFound
    return int(text)


@admin_only
async def list_grants(request: web.Request, admin: Identity) -> web.Response:
    store = request.app[ACCESS].grants
    now = store.clock()
    include_ended = request.query.get("include_ended", "true") != "false"
    return reply({"grants": [g.to_json(now) for g in store.list(include_ended=include_ended)]})


@admin_only
async def create_grant(request: web.Request, admin: Identity) -> web.Response:
    fields = await json_body(request, GRANT_FIELDS)
    missing = sorted(GRANT_FIELDS - set(fields))
    if missing:
        raise GrantInvalid(missing[0], "required")
    grant = request.app[ADMIN].create_grant(admin, remote_of(request), fields)
    return reply(request.app[ADMIN].grants_json(grant), status=201)


@admin_only
async def get_grant(request: web.Request, admin: Identity) -> web.Response:
    grant = request.app[ACCESS].grants.get(grant_id_of(request))
    return reply(request.app[ADMIN].grants_json(grant))


@admin_only
async def update_grant(request: web.Request, admin: Identity) -> web.Response:
    changes = await json_body(request, UPDATABLE)
    grant = await request.app[ADMIN].update_grant(
        admin, remote_of(request), grant_id_of(request), changes
    )
    return reply(request.app[ADMIN].grants_json(grant))


@admin_only
async def revoke_grant(request: web.Request, admin: Identity) -> web.Response:
    grant_id, reason = grant_id_of(request), await reason_of(request)
    grant = await request.app[ADMIN].revoke_grant(admin, remote_of(request), grant_id, reason)
    return reply(request.app[ADMIN].grants_json(grant))


@admin_only
async def list_sessions(request: web.Request, admin: Identity) -> web.Response:
    return reply({"sessions": [s.to_json() for s in request.app[SESSIONS]]})


@admin_only
async def revoke_session(request: web.Request, admin: Identity) -> web.Response:
    session_id, reason = request.match_info["session_id"], await reason_of(request)
    if not await request.app[ADMIN].revoke_session(admin, remote_of(request), session_id, reason):
        return error(404, "no such session")
    return reply({"ended": 1})


@admin_only
async def revoke_account(request: web.Request, admin: Identity) -> web.Response:
    account, reason = request.match_info["account"], await reason_of(request)
    ended = await request.app[ADMIN].revoke_account(admin, remote_of(request), account, reason)
    return reply({"ended": ended})


@admin_only
async def audit_log(request: web.Request, admin: Identity) -> web.Response:
    query = request.query
    filters: dict[str, Any] = {
        key: query[key] for key in ("account", "camera_id", "project", "event") if key in query
    }
    for key in ("since", "until"):
        if key in query:
            try:
                moment = datetime.fromisoformat(query[key])
                if moment.tzinfo is None:
                    raise BadRequest(f"{key}: include a timezone, e.g. +08:00")
                filters[key] = moment.astimezone(UTC)
            except (ValueError, OverflowError):
                raise BadRequest(f"{key}: use ISO 8601, e.g. 2027-01-01T00:00:00+08:00") from None
    limit = query.get("limit", "1000")
    if not limit.isdigit() or not 1 <= int(limit) <= 100_000:
        raise BadRequest("limit: a whole number from 1 to 100000")
    filters["limit"] = int(limit)
    rows = request.app[ACCESS].audit.query(**filters)
    if query.get("format") == "csv":
        return web.Response(
            text=AuditLog.to_csv(rows),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    return reply({"rows": rows})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/grants", list_grants)
    app.router.add_post("/api/grants", create_grant)
    app.router.add_get("/api/grants/{grant_id}", get_grant)
    app.router.add_patch("/api/grants/{grant_id}", update_grant)
    app.router.add_post("/api/grants/{grant_id}/revoke", revoke_grant)
    app.router.add_get("/api/sessions", list_sessions)
    app.router.add_post("/api/sessions/{session_id}/revoke", revoke_session)
    app.router.add_post("/api/accounts/{account}/revoke", revoke_account)
    app.router.add_get("/api/audit", audit_log)
