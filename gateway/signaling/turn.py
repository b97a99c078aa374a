"""TURN credentials for one session, in coturn's REST API scheme.

coturn (`use-auth-secret`, `static-auth-secret=…`) accepts any username of the form
"<expiry, unix time>:<anything>" whose password is base64(HMAC-SHA1(secret,
username)), until that expiry. The gateway and the TURN server share the secret,
never the browser: each WHEP session gets its own username and credential, which
the answer carries in `Link: <turn:…>; rel="ice-server"` headers (WHEP, like WHIP
RFC 9725 §4.6).

The expiry is `ttl_seconds` away, and never past the end of the grant window the
session was admitted under. coturn checks it at every allocation and refresh, so
a credential that has expired allocates nothing; a relay already running lasts at
most one allocation lifetime (coturn's default 600 s) past it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiortc import RTCIceServer

from gateway.config import TurnSettings


@dataclass(frozen=True)
class TurnCredential:
    """One session's TURN servers, username and credential (a secret of its own: it
    opens the relay until it expires, so it goes into the answer and nowhere else)."""

    urls: tuple[str, ...]
    username: str
    credential: str = field(repr=False)
    expires_at: datetime

    def link_headers(self) -> list[str]:
        """One Link header value per server (WHEP; RFC 8288 link-params as quoted
        strings: the username and base64 have no quote or backslash)."""
        return [
            f'<{url}>; rel="ice-server"; username="{self.username}"; '
            f'credential="{self.credential}"; credential-type="password"'
            for url in self.urls
        ]

    def ice_server(self) -> RTCIceServer:
        """The same, for the gateway's own peer connection (aiortc uses the first
        TURN URL it can: turn: over UDP or TCP, turns: over TCP)."""
        return RTCIceServer(
            urls=list(self.urls), username=self.username, credential=self.credential
        )


def rest_credential(secret: str, username: str) -> str:
    """coturn's REST API password for `username`: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class TurnServers:
    """Makes each session's credential from `[turn]`. `urls` may be replaced while
    the gateway runs (tests point new sessions at another TURN server this way)."""

    def __init__(self, settings: TurnSettings, clock: Callable[[], float] = time.time) -> None:
        assert settings.secret is not None and settings.urls
        self.urls = settings.urls
        self.ttl_seconds = settings.ttl_seconds
        self.for_gateway = settings.gateway
        self._secret = settings.secret
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"TurnServers(urls={self.urls!r}, ttl_seconds={self.ttl_seconds!r})"

    def issue(self, not_after: datetime | None = None) -> TurnCredential:
        """A fresh username and credential, valid for ttl_seconds and never past
        `not_after` (the end of the session's grant window)."""
        expiry = self._clock() + self.ttl_seconds
        if not_after is not None:
            expiry = min(expiry, not_after.timestamp())
        # A random name, not the session id: the session URL is a capability, and the
        # TURN server logs usernames. The audit row of the session start records it.
        username = f"{int(expiry)}:{secrets.token_hex(8)}"
        return TurnCredential(
            urls=self.urls,
            username=username,
            credential=rest_credential(self._secret, username),
            expires_at=datetime.fromtimestamp(int(expiry), UTC),
        )
