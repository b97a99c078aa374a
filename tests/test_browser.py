"""The minimal page plays a camera in real headless Chromium, with its default
WebRTC settings (mDNS host-candidate hiding left on, as real users have it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import camera_entry, settings_for

from gateway.appkeys import HUBS

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Flags for a closed network (see the machine notes); none touches WebRTC.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
async def browser():
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()


async def test_page_plays_high_profile_camera(make_rtsp_camera, start_gateway, browser):
    camera = make_rtsp_camera(profile="high", width=1280, height=720)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    page = await browser.new_page()
    jwt = gateway.bearer()["Authorization"].removeprefix("Bearer ")
    await page.goto(f"{gateway.url}/#token={jwt}")
    started = time.monotonic()
    await page.click("button[data-camera=cam]")
    await page.wait_for_function("document.getElementById('tile').videoWidth > 0", timeout=15_000)
    first_picture = time.monotonic() - started
    size = await page.evaluate("[tile.videoWidth, tile.videoHeight]")
    assert size == [1280, 720]
    decoded = await page.evaluate("tile.getVideoPlaybackQuality().totalVideoFrames")
    await page.wait_for_timeout(1000)
    assert await page.evaluate("tile.getVideoPlaybackQuality().totalVideoFrames") > decoded
    assert gateway.app[HUBS].get("cam").info.mode == "passthrough"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "minimal-page-live.png")
    print(f"first picture after {first_picture:.2f} s")
