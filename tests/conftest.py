"""Shared fixtures: real RTSP cameras, an in-process gateway, real aiortc viewers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.config import Settings, parse_settings

sys.path.insert(0, str(Path(__file__).parent))

from camera.fixture import make_rtsp_camera  # noqa: F401


def settings_for(cameras: list[dict[str, Any]], **relay: Any) -> Settings:
    """Settings for a test gateway: quick linger and reconnects unless overridden."""
    relay = {
        "linger_seconds": 1.0,
        "start_timeout_seconds": 10.0,
        "reconnect_initial_seconds": 0.2,
        "reconnect_max_seconds": 1.0,
        **relay,
    }
    return parse_settings({"relay": relay, "cameras": cameras})


def camera_entry(camera_id: str, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": camera_id,
        "name": f"測試 {camera_id}",
        "lat": 25.04,
        "lon": 121.56,
        "source": source,
        **extra,
    }


class Gateway:
    def __init__(self, server: TestServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.app = server.app
        self.http = http
        self.url = str(server.make_url("")).rstrip("/")


@pytest.fixture
async def start_gateway() -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def start(settings: Settings) -> Gateway:
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        gateway = Gateway(server, aiohttp.ClientSession())
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.http.close()
        await gateway.server.close()
