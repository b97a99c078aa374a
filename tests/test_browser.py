"""A real High-profile RTSP camera plays in the viewer page in headless Chromium,
with its default WebRTC settings (mDNS host-candidate hiding left on, as real
users have it). The page and the player element are tested in test_ui.py."""

from __future__ import annotations

import time

from support.chromium import frames_decoded, open_viewer, screenshot, wait_more_frames, wait_state
from support.gateway import camera_entry, settings_for

from gateway.app import HUBS


async def test_viewer_plays_a_high_profile_rtsp_camera(make_rtsp_camera, start_gateway, browser):
    camera = make_rtsp_camera(profile="high", width=1280, height=720)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    page = await open_viewer(browser, gateway)
    started = time.monotonic()
    await page.page.click("#cameras button[data-camera='cam']")
    await wait_state(page, "cam", "live")
    first_picture = time.monotonic() - started
    tile = "document.querySelector('cctv-player').video"
    assert await page.page.evaluate(f"[{tile}.videoWidth, {tile}.videoHeight]") == [1280, 720]
    await wait_more_frames(page, "cam", await frames_decoded(page, "cam"))
    assert gateway.app[HUBS].get("cam").info.mode == "passthrough"
    await page.page.screenshot(path=screenshot("viewer-rtsp-high-profile.png"))
    print(f"first picture after {first_picture:.2f} s")
