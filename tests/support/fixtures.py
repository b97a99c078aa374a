"""The tests' pytest fixtures (registered by tests/conftest.py through pytest_plugins)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.access.throttle import FailureThrottle
from gateway.app import create_app
from gateway.config import Settings

from . import gateway as gateway_support
from .camera import RtspCamera, make_camera
from .chromium import CHROMIUM, FLAGS
from .gateway import Gateway
from .tasks import pending_tasks

# Its sessions' connections close within 5 s each, at once; the rest in moments.
SHUTDOWN_SECONDS = 30.0


@pytest.fixture(params=["fast", "aiortc"])
def sender_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each `[webrtc] sender`: the gateway's fast path and aiortc's own."""
    monkeypatch.setattr(gateway_support, "SENDER", request.param)
    return request.param


@pytest.fixture
def make_rtsp_camera() -> Iterator[Callable[..., RtspCamera]]:
    """Factory fixture: make_rtsp_camera(**options) -> started RtspCamera; all stopped at end."""
    cams: list[RtspCamera] = []

    def factory(**options: Any) -> RtspCamera:
        cam = make_camera(**options)
        cams.append(cam)
        cam.start()
        return cam

    yield factory
    for cam in cams:
        cam.stop()


@pytest.fixture
async def start_gateway() -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def start(settings: Settings, *, grant: bool = True, **options: Any) -> Gateway:
        """Start a gateway with the standing police authorization (every camera);
        unless told otherwise, VIEWER may watch every camera."""
        # Failed token checks are slowed down; tests of other things need not wait.
        options.setdefault("throttle", FailureThrottle(base_seconds=0.001, cap_seconds=0.01))
        server = TestServer(create_app(settings, **options), host="127.0.0.1")
        await server.start_server()
        gateway = Gateway(server, aiohttp.ClientSession())
        started.append(gateway)
        gateway.authorization()
        if grant:
            gateway.grant()
        return gateway

    yield start
    for gateway in started:
        await gateway.http.close()
        # A gateway that does not shut down fails the test, naming what every task
        # still awaits (a hang like the lost cancellation of issue 24 shows at once).
        closing = asyncio.ensure_future(gateway.server.close())
        done, _ = await asyncio.wait({closing}, timeout=SHUTDOWN_SECONDS)
        if not done:
            stuck = pending_tasks()
            closing.cancel()
            pytest.fail(f"a test gateway did not shut down within {SHUTDOWN_SECONDS:g} s:\n{stuck}")
        closing.result()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's headless Chromium, driven by Playwright (never `playwright install`)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()
