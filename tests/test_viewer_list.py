"""Issue 26, the camera list and the map together, with a generated 1,000-camera
inventory in Debian's headless Chromium: a search that folds 台/臺 and matches names,
districts and roads, filters the map and zooms it; compact entries; "my grants";
a list that follows grants live; ended tiles that offer to reopen where that works;
a clear sign-in state; Leaflet's controls in the page's language; the tab order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.chromium import jwt, open_page, player, screenshot, wait_state
from support.city import city_settings, write_city
from support.gateway import VIEWER, camera_entry, settings_for

from gateway.app import SESSIONS

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

COUNT = 1000
# Cameras a search must find, spelled as inventories spell them (臺, not 台).
NAMED = {
    "tpe-0100": ("臺北車站東三門", "中正區", "忠孝西路"),
    "tpe-0200": ("臺北市政府西側", "信義區", "市府路"),
    "tpe-0300": ("臺北小巨蛋", "松山區", "南京東路"),
}
DESKTOP = {"viewport": {"width": 1440, "height": 900}}


def write_inventory(path: Path) -> Path:
    """1,000 points over Taipei, api: references (no camera is pulled in these tests)."""
    return write_city(path, COUNT, NAMED, digits=4, seed=26)


async def listed(page) -> list[str]:
    return await page.evaluate(
        "[...document.querySelectorAll('#cameras button')].map((b) => b.dataset.camera)"
    )


async def test_a_thousand_cameras_search_map_grants_and_keyboard(
    start_gateway, browser, tmp_path
) -> None:
    path = write_inventory(tmp_path / "cameras.csv")
    gateway = await start_gateway(city_settings(path), grant=False)
    everything = [f"tpe-{i:04d}" for i in range(COUNT)]
    gateway.grant(cameras=everything, project="2027 跨年 全市", lasts=6 * 3600)
    short = gateway.grant(
        cameras=["tpe-0100", "tpe-0200"], project="臺北車站 疏散演練", lasts=3 * 3600
    )
    page = (await open_page(browser, gateway.url + "/", jwt(gateway), **DESKTOP)).page
    await page.wait_for_selector(f"#map[data-points='{COUNT}']", timeout=30_000)
    await expect(page.locator("#cameras button")).to_have_count(200)

    # Compact entries: two lines at most, the name on one, next to "授權至 …".
    heights = await page.evaluate(
        """() => [...document.querySelectorAll('#cameras button')].slice(0, 50).map((b) => {
            const name = b.querySelector('.name');
            return [b.getBoundingClientRect().height, name.getBoundingClientRect().height,
                    parseFloat(getComputedStyle(name).lineHeight), b.textContent];
        })"""
    )
    for height, name_height, line, text in heights:
        assert height <= 56, (height, text)
        assert name_height <= line + 1, (name_height, text)
        assert "授權至" in text, text
    await page.screenshot(path=screenshot("viewer-1000-list.png"))

    # Leaflet's controls in the page's language, and the tab order (a fresh page)
    # starts at the top bar, reaches the search before the map, and never stops at a pin.
    await expect(page.locator(".leaflet-control-zoom-in")).to_have_attribute("title", "放大")
    await expect(page.locator(".leaflet-control-zoom-out")).to_have_attribute("title", "縮小")
    stops = []
    for _ in range(12):
        await page.keyboard.press("Tab")
        stops.append(
            await page.evaluate(
                "(() => { const e = document.activeElement;"
                " return e.id || e.className || e.tagName; })()"
            )
        )
    assert "search" in stops, stops
    assert not any("leaflet" in str(stop) or "cam-pin" in str(stop) for stop in stops), stops
    assert stops.index("search") < 10, stops

    # 台 finds 臺; a district and a road narrow it; the map shows only the matches
    # and zooms to them.
    whole = int(await page.get_attribute("#map", "data-zoom"))
    await page.fill("#search", "台北")
    await expect(page.locator("#cameras button")).to_have_count(3)
    assert sorted(await listed(page)) == sorted(NAMED)
    await page.wait_for_selector("#map[data-points='3']", timeout=5000)
    await page.fill("#search", "臺北")
    await expect(page.locator("#cameras button")).to_have_count(3)
    await page.fill("#search", "信義區 市府")
    await expect(page.locator("#cameras button")).to_have_count(1)
    await page.wait_for_selector("#map[data-points='1']", timeout=5000)
    await expect(page.locator(".cam-pin-dot[data-camera='tpe-0200']")).to_be_visible()
    await expect(page.locator("#map")).to_have_attribute("data-zoom", "17")
    assert whole < 15
    await page.fill("#search", "ＴＰＥ-0300")  # full width, upper case
    await expect(page.locator("#cameras button")).to_have_count(1)
    await page.fill("#search", "")
    await page.wait_for_selector(f"#map[data-points='{COUNT}']", timeout=10_000)

    # My grants: project, window, time left (it ticks), and "only these".
    panel = page.locator("#grants")
    await expect(panel).to_be_visible()
    await panel.locator("summary").click()
    item = panel.locator(f"li[data-grant='{short.id}']")
    await expect(item.locator(".project")).to_have_text("臺北車站 疏散演練")
    await expect(item.locator(".which")).to_have_text("2 支攝影機")
    await expect(item.locator(".window")).to_contain_text("–")
    left = await item.locator(".left").text_content()
    assert left.startswith("剩餘 2:5"), left  # 3 hours from a minute ago
    await expect(item.locator(".left")).not_to_have_text(left, timeout=3000)
    await item.locator(".only").click()
    await expect(page.locator("#cameras button")).to_have_count(2)
    await page.wait_for_selector("#map[data-points='2']", timeout=5000)
    await page.click("#filter button")
    await expect(page.locator("#cameras button")).to_have_count(200)

    await page.click("#lang")
    await expect(page.locator(".leaflet-control-zoom-in")).to_have_attribute("title", "Zoom in")
    await expect(item.locator(".which")).to_have_text("2 cameras")
    await page.click("#lang")


async def test_the_list_follows_grants_live_and_an_ended_tile_offers_to_reopen(
    start_gateway, browser, tmp_path
) -> None:
    """A grant revoked: its cameras leave the list at once and its tiles end. A tile
    ended while its camera is still granted (an administrator ended the session) loses
    觀看中 in the list and offers "reopen", which plays again; one whose camera left
    the list does not. A grant that runs out: its cameras leave the list on time."""
    path = tmp_path / "cameras.csv"
    path.write_text(
        "id,name,lat,lon,district,road,source\n"
        "cam-a,臺北車站,25.0478,121.5170,中正區,忠孝西路,demo:testsrc\n"
        "cam-b,臺北市政府,25.0375,121.5637,信義區,市府路,demo:testsrc\n"
        "cam-c,西門町,25.0422,121.5078,萬華區,中華路,demo:testsrc\n",
        encoding="utf-8",
    )
    settings = settings_for([], tables={"inventory": {"file": str(path)}})
    gateway = await start_gateway(settings, grant=False)
    wide = gateway.grant(cameras=["cam-a", "cam-b"], project="演練 A")
    gateway.grant(cameras=["cam-b"], project="演練 B")
    brief = gateway.grant(cameras=["cam-c"], project="演練 C", starts_in=-1, lasts=20)
    viewer = await open_page(browser, gateway.url + "/", jwt(gateway), **DESKTOP)
    page = viewer.page
    await page.wait_for_selector("#cameras button")
    assert sorted(await listed(page)) == ["cam-a", "cam-b", "cam-c"]
    for camera in ("cam-a", "cam-b"):
        await page.click(f"#cameras button[data-camera='{camera}']")
        await wait_state(viewer, camera, "live")
    await expect(page.locator("#cameras button[data-camera='cam-a'] .meta")).to_have_text("觀看中")

    admin = gateway.bearer("admin-1", admin=True)
    response = await gateway.http.post(
        f"{gateway.url}/api/grants/{wide.id}/revoke", headers=admin, json={"reason": "演練結束"}
    )
    assert response.status == 200, await response.text()
    # cam-a leaves the list and its tile ends; cam-b plays on (grant B covers it).
    await expect(page.locator("#cameras button[data-camera='cam-a']")).to_have_count(0)
    await wait_state(viewer, "cam-a", "revoked", timeout=5)
    assert await page.locator(player("cam-b")).evaluate("(p) => p.state") == "live"
    # An administrator ends cam-b's session: its tile ends, the list drops 觀看中.
    (session,) = [s for s in gateway.app[SESSIONS] if s.camera_id == "cam-b"]
    response = await gateway.http.post(
        f"{gateway.url}/api/sessions/{session.id}/revoke", headers=admin, json={"reason": "x"}
    )
    assert response.status == 200, await response.text()
    await wait_state(viewer, "cam-b", "revoked", timeout=5)
    await expect(page.locator("#cameras button[data-camera='cam-b'] .meta")).to_have_count(0)
    # Reopen where it can work: cam-b (still granted), not cam-a.
    await expect(page.locator(f"{player('cam-a')} .reopen")).to_be_hidden()
    reopen = page.locator(f"{player('cam-b')} .reopen")
    await expect(reopen).to_be_visible()
    await page.screenshot(path=screenshot("viewer-ended-tiles.png"))
    await reopen.click()
    await wait_state(viewer, "cam-b", "live")
    await expect(page.locator("#cameras button[data-camera='cam-b'] .meta")).to_have_text("觀看中")

    # The brief grant runs out (20 s): cam-c leaves the list, and its panel entry goes.
    await expect(page.locator("#cameras button[data-camera='cam-c']")).to_have_count(
        0, timeout=30_000
    )
    await expect(page.locator(f"#grants li[data-grant='{brief.id}']")).to_have_count(0)
    await viewer.check_token_stays_out_of_urls()


async def test_without_a_sign_in_a_clear_state_fills_the_page(start_gateway, browser) -> None:
    gateway = await start_gateway(settings_for([camera_entry("cam", "demo:testsrc")]))
    context = await browser.new_context(**DESKTOP)
    page = await context.new_page()
    await page.goto(gateway.url + "/")  # no #token: opened directly, or refreshed
    await expect(page.locator("#signin")).to_be_visible()
    await expect(page.locator("#signin h2")).to_have_text("需要登入")
    await expect(page.locator("#signin p")).to_contain_text("市府儀表板")
    await expect(page.locator("#grid")).to_be_hidden()
    await expect(page.locator(".empty").first).to_be_hidden()
    box = await page.locator("#signin").bounding_box()
    assert box["height"] > 600, box
    await page.click("#lang")
    await expect(page.locator("#signin h2")).to_have_text("Sign-in needed")
    await context.close()
    # With a token, the page is there at once and the state is not.
    viewer = await open_page(browser, gateway.url + "/", jwt(gateway, VIEWER), **DESKTOP)
    await expect(viewer.page.locator("#grid")).to_be_visible()
    await expect(viewer.page.locator("#signin")).to_be_hidden()
