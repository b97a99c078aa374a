"""EventStreams: a signed-in caller follows live notices (Server-Sent Events).

Browsers' EventSource cannot send an Authorization header, so a caller first
trades its token for a one-use ticket (TicketBook), then follows with it. The
stream starts with a hello (who, the caller's grants, its live sessions on every
node) and ends when the sign-in behind the ticket lapses.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.signaling import SessionRegistry

from .admission import AccessControl
from .events import EventBus, Subscription
from .masks import PrivacyMasks
from .refusals import Denied
from .tickets import TicketBook
from .viewing import Viewing


@dataclass(frozen=True)
class Following:
    subscription: Subscription
    hello: dict[str, Any]
    until: datetime  # the sign-in behind the ticket lapses then


class EventStreams:
    def __init__(
        self,
        access: AccessControl,
        viewing: Viewing,
        sessions: SessionRegistry,
        bus: EventBus,
        tickets: TicketBook,
        masks: PrivacyMasks | None = None,
    ) -> None:
        self.masks = masks
        self.access = access
        self.viewing = viewing
        self.sessions = sessions
        self.bus = bus
        self.tickets = tickets

    async def ticket(self, token: str, remote: str) -> str:
        """A ticket for one stream (TooManyTickets past the account's cap)."""
        return await self.tickets.issue(await self.access.identify(token, remote))

    @contextlib.asynccontextmanager
    async def follow(self, ticket: str) -> AsyncIterator[Following]:
        """A viewer hears its own session ends and grants; administrators everything."""
        identity = await self.tickets.redeem(ticket)
        if identity is None:
            raise Denied(
                "invalid_ticket",
                "missing, used or expired ticket; get one from POST /api/events/ticket",
            )
        until = self.access.signed_in_until(identity)
        if until <= datetime.now(UTC):
            raise Denied("invalid_ticket", "the sign-in behind this ticket has expired")
        # 429 past a cap
        subscription = self.bus.subscribe(identity.account, identity.is_admin, identity.roles)
        try:
            sessions = [
                s
                for s in await self.sessions.everywhere()  # every node's
                if identity.is_admin or s["account"] == identity.account
            ]
            hello = {
                "type": "hello",
                "account": identity.account,
                "grants": await self.viewing.grants_json(identity),
                "sessions": sessions,
            }
            if self.masks is not None:
                # A lift in force for one of its grants: the page hears it after hello.
                mine = None if identity.is_admin else {g["id"] for g in hello["grants"]}
                for event in self.masks.lifted_events(mine):
                    subscription.offer(event)
            yield Following(subscription, hello, until)
        finally:
            self.bus.unsubscribe(subscription)
