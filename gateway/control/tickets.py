"""TicketBook: short-lived, single-use tickets for the SSE streams.

Browsers' EventSource cannot send an Authorization header. A client trades its
bearer token for a ticket and opens `/api/events?ticket=...`; the ticket is
useless after 30 s or one use, so a URL that lands in a log or history is harmless.
"""

from __future__ import annotations

import secrets
import time

from gateway.access.tokens import Identity

TICKET_SECONDS = 30.0


class TooManyTickets(Exception):
    """The account holds its maximum of unused tickets."""


class TicketBook:
    def __init__(self, max_per_account: int = 16) -> None:
        self._tickets: dict[str, tuple[Identity, float]] = {}
        self._max_per_account = max_per_account

    def issue(self, identity: Identity) -> str:
        now = time.monotonic()
        self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
        held = sum(1 for who, _ in self._tickets.values() if who.account == identity.account)
        if held >= self._max_per_account:
            raise TooManyTickets(
                f"this account holds its maximum of {self._max_per_account} unused tickets"
            )
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (identity, now + TICKET_SECONDS)
        return ticket

    def redeem(self, ticket: str) -> Identity | None:
        identity, expires = self._tickets.pop(ticket, (None, 0.0))
        return identity if expires > time.monotonic() else None
