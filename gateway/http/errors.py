"""One JSON error shape for every answer: `{"error": words, "code": stable code}`.

Handlers raise HttpError (or let a domain refusal through); the middleware here
turns it into the JSON answer, so no handler builds error bodies of its own.
Players and pages match `code`, never the words.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from gateway.control.refusals import Denied, as_refusal

log = logging.getLogger(__name__)

# How long a request's body may take to arrive (`[server] request_timeout_seconds`).
BODY_TIMEOUT = web.AppKey("body_timeout", float)

# The status of each code a refusal (control/refusals.py) carries.
REFUSAL_STATUS = {
    "bad_offer": 400,
    "bad_sdpfrag": 400,
    "unknown_rendition": 400,
    "invalid_token": 401,
    "invalid_ticket": 401,
    "not_admin": 403,
    "not_owner": 403,
    "role_required": 403,
    "self_approval": 403,
    "self_review": 403,
    "no_grant": 403,
    "not_yet_started": 403,
    "grant_pending": 403,
    "grant_ended": 403,
    "grant_revoked": 403,
    # A session ended while its offer was answered, and why (its ending's code).
    "revoked": 403,
    "grant_removed": 403,
    "removed_from_grant": 403,
    "camera_removed_from_grant": 403,
    "authorization_withdrawn": 403,
    "emergency_ended": 403,
    "not_a_cluster_message": 403,
    "bad_spread": 403,  # a /whep/nodes/ link not signed by a camera's owner, or stale
    "unknown_camera": 404,
    "unknown_grant": 404,
    "unknown_authorization": 404,
    "unknown_emergency": 404,
    "unknown_session": 404,
    "unknown_lift": 404,
    "no_inventory_file": 409,
    "nothing_pending": 409,
    "not_masked": 409,  # a lift asked for a camera without privacy masks
    "precondition_failed": 412,
    "ice_restart_unsupported": 422,
    "invalid_field": 422,
    "invalid_mask": 422,  # a privacy mask the admin API cannot take; `field` names it
    "camera_not_in_grant": 422,
    "grant_not_live": 422,
    "outside_authorization": 422,
    "authorization_expired": 422,
    "emergency_too_long": 422,
    "invalid_inventory": 422,
    "bad_request": 400,
    "too_many": 429,
    "audit_unavailable": 503,
    "camera_unavailable": 503,
    "capacity": 503,
    "mask_failed": 503,  # a camera's privacy masks could not be applied just now
    "database_unavailable": 503,
    "node_lost": 503,
    "node_isolated": 503,
    "node_unavailable": 503,  # a /whep/nodes/ link to a node that cannot take it now
    "shutdown": 503,
    "record_pending": 503,
}
# aiohttp's own refusals (unknown route, wrong method, ...) by status.
_PLAIN_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


class HttpError(Exception):
    """An answer other than success: status, stable code, words safe to show."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}
        self.extra = extra


def error_response(request: web.Request, error: HttpError) -> web.Response:
    headers = dict(error.headers)
    if error.status == 401:
        # RFC 6750 §3: every 401 names the scheme; a token that was sent was bad.
        sent = "Authorization" in request.headers
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if sent else "Bearer"
    body = {"error": str(error), "code": error.code, **error.extra}
    return web.json_response(body, status=error.status, headers=headers)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _PLAIN_CODES.get(exc.status, "error")
        error = HttpError(exc.status, code, exc.reason, headers=dict(exc.headers))
        error.headers.pop("Content-Type", None)
        return error_response(request, error)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if (refusal := as_refusal(exc)) is not None:
            return error_response(request, from_refusal(refusal))
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(request, HttpError(500, "internal", "internal error"))


def from_refusal(refusal: Denied) -> HttpError:
    if refusal.code not in REFUSAL_STATUS:
        log.error("refusal code %r has no HTTP status; answering 400", refusal.code)
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
    return HttpError(
        REFUSAL_STATUS.get(refusal.code, 400),
        refusal.code,
        str(refusal),
        headers=headers,
        **refusal.extra,
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Middleware = Callable[
    [web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    Awaitable[web.StreamResponse],
]
CLIENT_ADDRESS = web.RequestKey("client_address", str)


def remote_of(request: web.Request) -> str:
    """The client's address, for audit rows, the failed-token throttle and sessions.

    The one place handlers get it: what `client_addresses` found for this request
    (behind a trusted proxy, from X-Forwarded-For), else the peer of the connection.
    """
    return request.get(CLIENT_ADDRESS) or request.remote or ""


def client_addresses(trusted: Iterable[Network]) -> Middleware:
    """A middleware that finds each request's client address once (see `client_address`)."""
    networks = tuple(trusted)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        request[CLIENT_ADDRESS] = client_address(request.remote or "", forwarded, networks)
        return await handler(request)

    return middleware


def client_address(peer: str, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The rightmost address that is not a trusted proxy.

    X-Forwarded-For is believed only when the peer is a trusted proxy; each trusted
    hop vouches for the one to its left, so the walk goes from the right and stops
    at the first address no trusted proxy is: that is the client. Anything further
    left was written by the client itself and may be made up. A malformed entry
    ends the walk at the last address a trusted proxy reported.
    """
    if not _trusted(peer, trusted):
        return peer
    client = peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = str(address)
        if not _trusted(client, trusted):
            break
    return client


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(text: str, trusted: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in trusted)


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>`, or "" (which the verifier refuses)."""
    parts = request.headers.get("Authorization", "").split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return ""
    return parts[1].strip()


async def read_body(request: web.Request, limit: int, what: str = "body") -> bytes:
    """The whole body; 413 past `limit` bytes, 408 if it comes too slowly.

    A body arrives in pieces (read(n) returns what is there so far), and a
    slowloris body must not hold a handler and its memory for ever.
    """
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, "too_large", f"{what} is larger than {limit} bytes")
    seconds = request.config_dict[BODY_TIMEOUT]
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            while chunk := await request.content.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:
                    raise HttpError(413, "too_large", f"{what} is larger than {limit} bytes")
    except TimeoutError:
        raise HttpError(408, "body_timeout", f"{what} not received within {seconds:g} s") from None
    return bytes(body)
