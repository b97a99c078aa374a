"""EventBus: live notices to viewers and to the admin console (gateway/http/sse.py
serves them as Server-Sent Events).

A viewer hears about its own sessions and grants: a session revoked and why, a
grant's end (for the countdown), a new grant; and everyone hears that the cameras
changed (an inventory reload). Administrators hear everything.
Each subscriber has a bounded queue; one that stops reading is dropped rather
than letting notices pile up.

With several nodes, what is published here is also handed to `forward` (the
cluster's messages send it to every other node, which `deliver`s it to its own
subscribers), so an event stream on any node hears every node's events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

QUEUE_LIMIT = 256
EVERYONE = "\x00everyone"  # never an account: accounts in tokens are printable
ROLE = "\x00role:"  # + a role (access/roles.py): every subscriber who has it


class Subscription:
    def __init__(self, account: str, admin: bool, roles: frozenset[str] = frozenset()) -> None:
        self.account = account
        self.admin = admin
        self.roles = roles
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)

    def offer(self, event: dict[str, Any]) -> bool:
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            return False


class TooManyStreams(Exception):
    """The account has its maximum of open event streams."""


Forward = Callable[[str, dict[str, Any], list[str], dict[str, Any] | None], None]


class EventBus:
    def __init__(self, max_per_account: int = 8, forward: Forward | None = None) -> None:
        self._subscribers: set[Subscription] = set()
        self._max_per_account = max_per_account
        # Where events also go (the other nodes): kind, data, accounts, viewer_data.
        self.forward: Forward = forward or (lambda *event: None)

    def subscribe(
        self, account: str, admin: bool, roles: frozenset[str] = frozenset()
    ) -> Subscription:
        if sum(1 for s in self._subscribers if s.account == account) >= self._max_per_account:
            raise TooManyStreams(
                f"this account has its maximum of {self._max_per_account} event streams"
            )
        subscription = Subscription(account, admin, roles)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(
        self,
        kind: str,
        data: dict[str, Any],
        accounts: Iterable[str] = (),
        *,
        viewer_data: dict[str, Any] | None = None,
        everyone: bool = False,
        roles: Iterable[str] = (),
    ) -> None:
        """Send to administrators and to the named accounts (or to every subscriber),
        and to every subscriber with one of `roles` (police liaisons, auditors).

        With `viewer_data`, the named accounts that are not administrators get that
        instead of `data`: what a viewer needs to know, not what an administrator does.
        """
        # EVERYONE stands for every subscriber, so it also travels to other nodes.
        accounts = [EVERYONE] if everyone else [*accounts, *(ROLE + r for r in roles)]
        self.deliver(kind, data, accounts, viewer_data=viewer_data)
        self.forward(kind, data, accounts, viewer_data)

    def deliver(
        self,
        kind: str,
        data: dict[str, Any],
        accounts: Iterable[str] = (),
        *,
        viewer_data: dict[str, Any] | None = None,
    ) -> None:
        """Send to this node's subscribers only (an event from another node)."""
        to = set(accounts)
        everyone = EVERYONE in to
        event = {"type": kind, **data}
        viewer_event = event if viewer_data is None else {"type": kind, **viewer_data}
        for subscription in list(self._subscribers):
            by_role = any(ROLE + role in to for role in subscription.roles)
            if not (everyone or subscription.admin or subscription.account in to or by_role):
                continue
            if not subscription.offer(event if subscription.admin else viewer_event):
                self.unsubscribe(subscription)  # a reader that stopped reading
                with contextlib.suppress(asyncio.QueueFull):
                    subscription.queue.put_nowait(None)

    def close(self) -> None:
        for subscription in list(self._subscribers):
            self.unsubscribe(subscription)
            with contextlib.suppress(asyncio.QueueFull):
                subscription.queue.put_nowait(None)
