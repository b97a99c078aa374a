"""Issue 26, the operations-centre wall: the viewer page's wall mode (tiles fill the
screen, the map folds away, 1, 2x2, 3x3, 4x4, keys), tiles that always show the
camera's name, the time of the last frame and the state on one line, and a wall
that survives a refresh, per account. Real headless Chromium and a real gateway.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from support.chromium import jwt, open_page, open_viewer, player, screenshot, wait_state
from support.gateway import VIEWER, settings_for
from test_ui import demo_cameras

from gateway.app import EVENTS

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

OTHER = "viewer-2"


def box(page, selector: str):
    return page.locator(selector).first.bounding_box()


async def test_wall_mode_fills_the_screen_with_keys_and_survives_a_refresh(
    start_gateway, browser
) -> None:
    gateway = await start_gateway(settings_for(demo_cameras("cam-a", "cam-b", "cam-c")))
    gateway.grant(members=[OTHER])
    viewer = await open_viewer(browser, gateway, viewport={"width": 1440, "height": 900})
    page = viewer.page
    for camera in ("cam-a", "cam-b"):
        await page.click(f"#cameras button[data-camera='{camera}']")
        await wait_state(viewer, camera, "live")

    # 3 for 3×3, W for the wall: the map and the list fold away, the grid fills the screen.
    await page.keyboard.press("3")
    await page.keyboard.press("w")
    await expect(page.locator("body")).to_have_attribute("data-wall", "")
    await expect(page.locator("#map")).to_be_hidden()
    await expect(page.locator("#cameras")).to_be_hidden()
    await expect(page.locator("#wall")).to_have_attribute("aria-pressed", "true")
    grid = await box(page, "#grid")
    top = await box(page, ".topbar")
    assert grid["width"] >= 1430 and grid["y"] + grid["height"] >= 898, grid
    assert grid["y"] <= top["height"] + 1
    tile = await box(page, player("cam-a"))
    # A third of the grid each way (4 px gaps and padding).
    assert abs(tile["width"] - (grid["width"] - 16) / 3) < 3, tile
    assert abs(tile["height"] - (grid["height"] - 16) / 3) < 3, tile
    assert await page.locator("#grid .empty").count() == 7

    # The tile's bars: the name, the time of the last frame (it moves), the state on one line.
    label = page.locator(f"{player('cam-a')} .label")
    clock = page.locator(f"{player('cam-a')} .clock")
    state = page.locator(f"{player('cam-a')} .state")
    await expect(label).to_have_text("臺北車站")
    await expect(clock).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    first = await clock.text_content()
    await expect(clock).not_to_have_text(first, timeout=4000)
    await expect(state).to_have_text("直播中")
    line = await state.evaluate("(el) => parseFloat(getComputedStyle(el).lineHeight)")
    assert (await state.bounding_box())["height"] <= line + 1
    await page.screenshot(path=screenshot("wall-3x3.png"))

    # 1, 2, 4: the layouts; fewer places than tiles close the oldest.
    await page.keyboard.press("4")
    await expect(page.locator("#grid")).to_have_attribute("data-layout", "4")
    assert await page.locator("#grid .empty").count() == 14
    # F: fullscreen (the page), and F again leaves it.
    await page.keyboard.press("f")
    await page.wait_for_function("document.fullscreenElement === document.documentElement")
    await page.keyboard.press("f")
    await page.wait_for_function("document.fullscreenElement === null")
    # Typing in the search is no shortcut.
    await page.keyboard.press("Escape")
    await expect(page.locator("body")).not_to_have_attribute("data-wall", "")
    await page.fill("#search", "3")
    await expect(page.locator("#grid")).to_have_attribute("data-layout", "4")
    await page.fill("#search", "")
    await page.locator("#search").blur()
    await page.keyboard.press("w")
    await expect(page.locator("body")).to_have_attribute("data-wall", "")

    # A refresh (the page opened again with a token) puts back the wall, its layout
    # and its cameras; the token is not what was kept.
    saved = await page.evaluate(f"localStorage.getItem('cctv-wall:{VIEWER}')")
    assert json.loads(saved) == {"layout": 4, "wall": True, "cameras": ["cam-a", "cam-b"]}
    await page.goto("about:blank")  # a new document, not a change of fragment
    await page.goto(f"{gateway.url}/#token={viewer.token}")
    await wait_state(viewer, "cam-a", "live")
    await wait_state(viewer, "cam-b", "live")
    await expect(page.locator("body")).to_have_attribute("data-wall", "")
    await expect(page.locator("#grid")).to_have_attribute("data-layout", "4")
    assert await page.locator("#grid cctv-player").count() == 2
    await viewer.check_token_stays_out_of_urls()

    # Another account in the same browser has a wall of its own (here: none yet).
    other = await open_page(
        browser, gateway.url + "/", jwt(gateway, OTHER), viewport={"width": 1440, "height": 900}
    )
    await other.page.wait_for_selector("#cameras button")
    await expect(other.page.locator("body")).not_to_have_attribute("data-wall", "")
    assert await other.page.locator("#grid cctv-player").count() == 0


# Every text box in a tile's bars: where it is, and whether its text fits inside it.
TEXT_BOXES = """(tile) => {
    const root = tile.shadowRoot;
    const tileBox = tile.getBoundingClientRect();
    const parts = [...root.querySelectorAll(
      ".label, .masks, .lite, .countdown, .word, .why, .clock, .stats, .saver")];
    parts.push(...tile.querySelectorAll("[slot=actions]"));
    const shown = parts.filter((el) => el.getClientRects().length && el.textContent.trim());
    return {
      tile: [tileBox.left, tileBox.top, tileBox.right, tileBox.bottom],
      lineHeight: parseFloat(getComputedStyle(root.querySelector(".word")).lineHeight),
      boxes: shown.map((el) => {
        const r = el.getBoundingClientRect();
        return {
          name: el.className || el.slot, text: el.textContent,
          rect: [r.left, r.top, r.right, r.bottom],
          scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
          scrollHeight: el.scrollHeight, clientHeight: el.clientHeight,
        };
      }),
    };
}"""

# (width, height, layout, wall): a phone, a tablet both ways, a desktop, a 4K wall.
SIZES = [
    (360, 740, 2, False),
    (360, 740, 2, True),
    (768, 1024, 2, False),
    (768, 1024, 3, True),
    (1024, 768, 3, False),
    (1024, 768, 4, True),
    (1440, 900, 2, False),
    (1440, 900, 3, False),
    (1440, 900, 4, True),
    (3840, 2160, 4, True),
]
# One tile: last, since it closes the others.
ONE_TILE = [(3840, 2160, 1, True), (360, 740, 1, True), (1440, 900, 1, False)]
LONG_NAMES = {
    "cam-a": "臺北市信義區松仁路與松高路口",
    "cam-b": "Civic Blvd. & Jianguo N. Rd.",
    "cam-c": "西門町",
}


async def check_tile(page, camera: str, where: str) -> int:
    seen = await page.locator(player(camera)).evaluate(TEXT_BOXES)
    boxes = seen["boxes"]
    names = [b for b in boxes if b["name"] == "label"]
    assert names and names[0]["text"] == LONG_NAMES[camera], (where, boxes)
    assert {"label", "word", "clock"} <= {b["name"] for b in boxes}, (where, boxes)
    left, top, right, bottom = seen["tile"]
    for b in boxes:
        assert b["scrollWidth"] <= b["clientWidth"] + 1, (where, "cut", b)
        assert b["scrollHeight"] <= b["clientHeight"] + 1, (where, "cut", b)
        r = b["rect"]
        assert r[0] >= left - 1 and r[2] <= right + 1, (where, "spills", b)
        assert r[1] >= top - 1 and r[3] <= bottom + 1, (where, "spills", b)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not overlapping(a["rect"], b["rect"]), (where, a, b)
    (word,) = [b for b in boxes if b["name"] == "word"]
    assert word["rect"][3] - word["rect"][1] <= seen["lineHeight"] + 1, (where, word)
    return 1


def overlapping(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5


async def test_tile_bars_fit_from_a_phone_to_a_4k_wall_in_both_languages(
    start_gateway, browser
) -> None:
    """At every size and in both languages, with the countdown, the lighter
    picture's badge and masks lifted showing: no two text boxes in a tile overlap, no text is cut or
    spills out of the tile, the name shows whole and the state takes one line."""
    cameras = demo_cameras("cam-a", "cam-b", "cam-c")
    for camera in cameras:
        camera["name"] = LONG_NAMES[camera["id"]]
    gateway = await start_gateway(settings_for(cameras), grant=False)
    grant = gateway.grant(lasts=300)  # the last 10 minutes: the countdown shows
    viewer = await open_viewer(browser, gateway, viewport={"width": 1440, "height": 900})
    page = viewer.page
    for camera in ("cam-a", "cam-b", "cam-c"):
        await page.click(f"#cameras button[data-camera='{camera}']")
    await page.keyboard.press("3")
    # The data saver on one tile: its badge shows too.
    await page.click(f"{player('cam-a')} >> .saver")
    for camera in ("cam-a", "cam-b", "cam-c"):
        await wait_state(viewer, camera, "live")
    await page.wait_for_function(
        "(sel) => document.querySelector(sel).rendition === 'low'", arg=player("cam-a")
    )
    # Masks lifted on two tiles (the third badge), as the event stream will say it.
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for camera in ("cam-a", "cam-b"):
        lifted = {"camera_id": camera, "grant_id": grant.id, "until": until}
        gateway.app[EVENTS].publish("masks_lifted", lifted, [VIEWER])
    await expect(page.locator(f"{player('cam-b')} .masks")).to_have_text("遮蔽已暫時解除")
    checked = 0
    for language, sizes in (("zh-Hant", SIZES), ("en", SIZES + ONE_TILE), ("zh-Hant", ONE_TILE)):
        if language != await page.evaluate("document.documentElement.lang"):
            await page.click("#lang")
        for width, height, layout, wall in sizes:
            await page.set_viewport_size({"width": width, "height": height})
            if await page.evaluate("document.body.hasAttribute('data-wall')") != wall:
                await page.keyboard.press("w")
            await page.keyboard.press(str(layout))
            await page.wait_for_timeout(150)  # a frame for the ResizeObserver and the fit
            where = f"{language} {width}x{height} {layout}x{layout}{' wall' if wall else ''}"
            tiles = await page.locator("#grid cctv-player").count()
            assert tiles == min(3, layout * layout), where
            for camera in ("cam-a", "cam-b", "cam-c"):
                if await page.locator(player(camera)).count():
                    checked += await check_tile(page, camera, where)
            if (width, layout, wall) in ((360, 2, True), (1440, 4, True), (3840, 4, True)):
                shot = f"tiles-{language}-{width}-{layout}{'-wall' if wall else ''}.png"
                await page.screenshot(path=screenshot(shot))
    print(f"{checked} tiles checked at {len(SIZES)} sizes in two languages")
