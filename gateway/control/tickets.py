"""TicketBook: short-lived, single-use tickets for the SSE streams.

Browsers' EventSource cannot send an Authorization header. A client trades its
bearer token for a ticket and opens `/api/events?ticket=...`; the ticket is
useless after 30 s or one use, so a URL that lands in a log or history is harmless.

A ticket carries who it is for and until when, signed with HMAC-SHA256, so any
node of a cluster can redeem it: behind a balancer, the stream need not open on
the node that issued the ticket. Its issue and its single use are recorded in a
TicketLedger: in memory on a single gateway, in the cluster's database on a node
of a cluster, so an account's unused tickets are counted on every node at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Protocol

from gateway.access.tokens import Identity

TICKET_SECONDS = 30.0


class TooManyTickets(Exception):
    """The account holds its maximum of unused tickets."""


class TicketLedger(Protocol):
    """Where tickets' issues and uses are recorded."""

    async def issue(self, nonce: str, account: str, until: datetime, limit: int) -> bool:
        """Record a ticket issued to `account`; False if it holds `limit` unused ones."""
        ...

    async def use(self, nonce: str) -> bool:
        """Mark a ticket used; False if it already was, or was never issued."""
        ...


class MemoryLedger:
    """One gateway's ledger: nonce -> (account, expiry, used)."""

    def __init__(self) -> None:
        self._tickets: dict[str, tuple[str, float, bool]] = {}

    async def issue(self, nonce: str, account: str, until: datetime, limit: int) -> bool:
        now = time.time()
        self._tickets = {n: t for n, t in self._tickets.items() if t[1] > now}
        held = sum(1 for a, _, used in self._tickets.values() if a == account and not used)
        if held >= limit:
            return False
        self._tickets[nonce] = (account, until.timestamp(), False)
        return True

    async def use(self, nonce: str) -> bool:
        ticket = self._tickets.get(nonce)
        if ticket is None or ticket[2] or ticket[1] <= time.time():
            return False
        self._tickets[nonce] = (ticket[0], ticket[1], True)
        return True


class TicketBook:
    def __init__(self, max_per_account: int = 16, key: bytes | None = None) -> None:
        self._max_per_account = max_per_account
        self._key = key or secrets.token_bytes(32)
        self._ledger: TicketLedger = MemoryLedger()

    def use_key(self, key: bytes, ledger: TicketLedger) -> None:
        """Sign with the cluster's key and record tickets where every node sees them."""
        self._key, self._ledger = key, ledger

    async def issue(self, identity: Identity) -> str:
        """A ticket for `identity`; TooManyTickets past the account's unused tickets
        (StoreUnavailable on a node of a cluster whose database cannot count them)."""
        nonce = secrets.token_urlsafe(16)
        until = time.time() + TICKET_SECONDS
        issued = await self._ledger.issue(
            nonce, identity.account, datetime.fromtimestamp(until, UTC), self._max_per_account
        )
        if not issued:
            raise TooManyTickets(
                f"this account holds its maximum of {self._max_per_account} unused tickets"
            )
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
        if until <= time.time() or not await self._ledger.use(nonce):
            return None
        return Identity(account, admin, datetime.fromtimestamp(expires, UTC), roles)

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
