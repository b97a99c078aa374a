"""TicketBook: short-lived, single-use tickets for the SSE streams.

Browsers' EventSource cannot send an Authorization header. A client trades its
bearer token for a ticket and opens `/api/events?ticket=...`; the ticket is
useless after 30 s or one use, so a URL that lands in a log or history is harmless.

A ticket carries who it is for and until when, signed with HMAC-SHA256, so any
node of a cluster can redeem it: behind a balancer, the stream need not open on
the node that issued the ticket. Its single use is recorded where every node sees
it (the cluster's database); a single gateway keeps it in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from gateway.access.tokens import Identity

TICKET_SECONDS = 30.0

# Marks a ticket used; False if it already was. Given its nonce and expiry.
FirstUse = Callable[[str, datetime], Awaitable[bool]]


class TooManyTickets(Exception):
    """The account holds its maximum of unused tickets."""


class TicketBook:
    def __init__(
        self,
        max_per_account: int = 16,
        key: bytes | None = None,
        first_use: FirstUse | None = None,
    ) -> None:
        self._max_per_account = max_per_account
        self._key = key or secrets.token_bytes(32)
        self._first_use = first_use or self._first_use_here
        # Issued by this node and not yet redeemed here: nonce -> (account, expiry).
        self._issued: dict[str, tuple[str, float]] = {}
        self._used: dict[str, float] = {}  # one gateway's record of used nonces

    def use_key(self, key: bytes, first_use: FirstUse) -> None:
        """Sign with the cluster's key and record uses where every node sees them."""
        self._key, self._first_use = key, first_use

    def issue(self, identity: Identity) -> str:
        now = time.time()
        self._issued = {n: v for n, v in self._issued.items() if v[1] > now}
        held = sum(1 for account, _ in self._issued.values() if account == identity.account)
        if held >= self._max_per_account:
            raise TooManyTickets(
                f"this account holds its maximum of {self._max_per_account} unused tickets"
            )
        nonce = secrets.token_urlsafe(16)
        until = now + TICKET_SECONDS
        self._issued[nonce] = (identity.account, until)
        claims = {
            "a": identity.account,
            "adm": identity.is_admin,
            "r": sorted(identity.roles),
            "exp": identity.expires_at.timestamp(),
            "n": nonce,
            "u": until,
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._sign(body))}"

    async def redeem(self, ticket: str) -> Identity | None:
        """The identity a ticket was issued to, once; None if it is forged, expired or
        used (on any node)."""
        body, _, signature = ticket.partition(".")
        try:
            if not hmac.compare_digest(_unb64(signature), self._sign(body)):
                return None
            claims = json.loads(_unb64(body))
            account, admin, nonce = str(claims["a"]), bool(claims["adm"]), str(claims["n"])
            roles = frozenset(str(r) for r in claims.get("r", ()))
            until, expires = float(claims["u"]), float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if until <= time.time():
            return None
        self._issued.pop(nonce, None)
        if not await self._first_use(nonce, datetime.fromtimestamp(until, UTC)):
            return None
        return Identity(account, admin, datetime.fromtimestamp(expires, UTC), roles)

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()

    async def _first_use_here(self, nonce: str, expires: datetime) -> bool:
        now = time.time()
        self._used = {n: t for n, t in self._used.items() if t > now}
        if nonce in self._used:
            return False
        self._used[nonce] = expires.timestamp()
        return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
