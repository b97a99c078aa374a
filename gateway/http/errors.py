"""One JSON error shape for every answer: `{"error": words, "code": stable code}`.

Handlers raise HttpError (or let a domain refusal through); the middleware here
turns it into the JSON answer, so no handler builds error bodies of its own.
Players and pages match `code`, never the words.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.control.admission import Denied

log = logging.getLogger(__name__)

BODY_TIMEOUT_SECONDS = 10.0

# The status of each code a domain refusal (Denied) carries.
DENIED_STATUS = {
    "invalid_token": 401,
    "not_admin": 403,
    "not_owner": 403,
    "no_grant": 403,
    "not_yet_started": 403,
    "grant_ended": 403,
    "grant_revoked": 403,
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
    except Denied as exc:
        return error_response(request, HttpError(DENIED_STATUS[exc.code], exc.code, str(exc)))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _PLAIN_CODES.get(exc.status, "error")
        error = HttpError(exc.status, code, exc.reason, headers=dict(exc.headers))
        error.headers.pop("Content-Type", None)
        return error_response(request, error)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(request, HttpError(500, "internal", "internal error"))


def remote_of(request: web.Request) -> str:
    return request.remote or ""


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
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            while chunk := await request.content.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:
                    raise HttpError(413, "too_large", f"{what} is larger than {limit} bytes")
    except TimeoutError:
        raise HttpError(
            408, "body_timeout", f"{what} not received within {BODY_TIMEOUT_SECONDS:g} s"
        ) from None
    return bytes(body)
