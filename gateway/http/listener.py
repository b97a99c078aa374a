"""The listening socket: serving the application, with a cap on connections per address.

aiohttp bounds a request's body (errors.read_body) and closes idle connections after
its keep-alive timeout, which is also what ends a request whose headers drip in
(`[server] request_timeout_seconds`). What it has no notion of is how many
connections one address holds: 3,000 connections dripping headers stayed open in a
red-team run. `ConnectionCap` counts them as they open and close, and closes what
is past `[server] max_connections_per_address` at once. Connections from the
trusted proxies are not counted: each carries many clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from gateway.config import Settings

from .errors import Network

Factory = Callable[[], asyncio.Protocol]


class ConnectionCap:
    def __init__(self, limit: int, exempt: Iterable[Network] = ()) -> None:
        self.limit = limit
        self._exempt = tuple(exempt)
        self.open: Counter[str] = Counter()  # open connections by client address
        self.refused = 0

    def admit(self, address: str) -> bool:
        if _within(address, self._exempt):
            return True
        if self.open[address] >= self.limit:
            self.refused += 1
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        if self.open[address] > 1:
            self.open[address] -= 1
        else:
            self.open.pop(address, None)

    def protocols(self, factory: Factory) -> Factory:
        """`factory`'s protocols (aiohttp's request handlers), each counted."""
        return lambda: _Counted(self, factory())


class _Counted(asyncio.Protocol):
    """Passes everything to the protocol it wraps, once its address is admitted."""

    def __init__(self, cap: ConnectionCap, inner: asyncio.Protocol) -> None:
        self._cap = cap
        self._inner = inner
        self._address: str | None = None  # set once admitted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) else ""
        if not self._cap.admit(address):
            transport.abort()
            return
        self._address = address
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is None:
            return
        self._cap.release(self._address)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class CappedSite(web.BaseSite):
    """A TCP site whose connections go through a ConnectionCap."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, cap: ConnectionCap) -> None:
        super().__init__(runner)
        self._host, self._port, self._cap = host, port, cap

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._cap.protocols(server), self._host, self._port, reuse_address=True
        )


def serve(app: web.Application, settings: Settings, say: Callable[[str], Any]) -> None:
    """Run `app` until SIGINT or SIGTERM, then shut down in order (its cleanup
    contexts). Exceptions from start-up (NodeConflict, DatabaseError) propagate."""
    server = settings.server
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(
        app,
        handle_signals=True,
        keepalive_timeout=server.request_timeout_seconds,
        # Event streams are ended on shutdown; nothing else should hold us near 5 s.
        shutdown_timeout=3.0,
    )
    cap = ConnectionCap(server.max_connections_per_address, server.trusted_networks)

    async def run() -> None:
        await runner.setup()
        site = CappedSite(runner, server.host, server.port, cap)
        await site.start()
        say(f"======== Running on {site.name} ========")
        await asyncio.Event().wait()  # until a signal ends the loop (GracefulExit)

    main = loop.create_task(run())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():  # a signal: stop waiting, then shut down
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
