"""Issue 26, the tile's half of lifting masks: the page's event stream carries
`masks_lifted` {camera_id, grant_id, until} and `masks_restored` {camera_id,
grant_id} to the grant's members, and a tile of that camera shows 遮蔽已暫時解除
(Masks lifted) until `until` passes or the masks are restored. The events are
published through the gateway's own event bus, as the lifting will publish them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.chromium import open_viewer, player, wait_state
from support.gateway import VIEWER, camera_entry, settings_for

from gateway.app import EVENTS

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


def iso(seconds_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


async def test_a_tile_shows_masks_lifted_until_it_ends_or_the_masks_come_back(
    start_gateway, browser
) -> None:
    cameras = [camera_entry(i, "demo:testsrc", demo_size="320x240", demo_fps=15) for i in "ab"]
    gateway = await start_gateway(settings_for(cameras), grant=False)
    grant = gateway.grant(cameras=["a", "b"])
    viewer = await open_viewer(browser, gateway, viewport={"width": 1440, "height": 900})
    page = viewer.page
    for camera in ("a", "b"):
        await page.click(f"#cameras button[data-camera='{camera}']")
        await wait_state(viewer, camera, "live")
    badge = page.locator(f"{player('a')} .masks")
    other = page.locator(f"{player('b')} .masks")
    await expect(badge).to_be_hidden()
    bus = gateway.app[EVENTS]

    # Lifted for 4 s: the badge shows on that camera's tile only, then goes by itself.
    lifted = {"camera_id": "a", "grant_id": grant.id, "until": iso(4)}
    bus.publish("masks_lifted", lifted, [VIEWER])
    await expect(badge).to_be_visible(timeout=3000)
    await expect(badge).to_have_text("遮蔽已暫時解除")
    await expect(other).to_be_hidden()
    await page.click("#lang")
    await expect(badge).to_have_text("Masks lifted")
    await page.click("#lang")
    await expect(badge).to_be_hidden(timeout=6000)

    # Lifted for an hour, then restored: the badge goes at once.
    bus.publish("masks_lifted", {**lifted, "until": iso(3600)}, [VIEWER])
    await expect(badge).to_be_visible(timeout=3000)
    bus.publish("masks_restored", {"camera_id": "a", "grant_id": grant.id}, [VIEWER])
    await expect(badge).to_be_hidden(timeout=3000)

    # Another account's lift never reaches this viewer.
    bus.publish("masks_lifted", {**lifted, "until": iso(3600)}, ["someone-else"])
    await page.wait_for_timeout(1000)
    await expect(badge).to_be_hidden()
