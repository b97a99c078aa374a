"""The console's grant form at city scale, in Debian's headless Chromium (issue 26): a
camera picker over 15,000 cameras (search with 台/臺 as one, whole districts and roads,
select all matches, a lasso on the map, a count), a grants table that summarises a
900-camera grant in one row, the map's controls in the page's language, a tab order
that starts at the top, and the form's buttons in sight at 1440 x 900 and 1024 wide in
both languages."""

from __future__ import annotations

import csv
import time
from collections import Counter

import pytest
from support.chromium import jwt, open_page, screenshot
from support.city import CITY, city_settings, write_city
from support.gateway import ONE_PERSON

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

ADMIN = "admin-1"
DESKTOP = {"viewport": {"width": 1440, "height": 900}}
TABLET_WIDE = {"viewport": {"width": 1024, "height": 768}}
STATION = "tpe-station"  # spelt 臺北車站; a search for 台北車站 must find it


def city_with_station(tmp_path):
    path = write_city(tmp_path / "city.csv")
    with path.open("a", newline="", encoding="utf-8") as file:
        csv.writer(file).writerow(
            [STATION, "臺北車站 東三門", 25.0478, 121.5170, "中正區", "忠孝西路1段", "TPD-S"]
        )
    with path.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return path, rows


# The picker's state, as the page shows it.
PICKED = """() => {
    const root = document.querySelector("#f-cameras");
    return {
      selected: Number(root.dataset.selected),
      matches: Number(root.dataset.matches),
      rows: root.querySelectorAll(".pick-row").length,
      count: root.querySelector(".picker-count").textContent,
    };
}"""

# Types into the picker's search the way a key press does, and times the update.
SEARCH = """(text) => {
    const input = document.querySelector("#f-cameras .picker-search");
    const started = performance.now();
    input.value = text;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    return performance.now() - started;
}"""

# Is the element's middle on screen and the element itself there (not covered)?
IN_SIGHT = """(el) => {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    if (r.width === 0 || x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
    const top = document.elementFromPoint(x, y);
    return top === el || el.contains(top);
}"""


async def picked(page) -> dict:
    return await page.evaluate(PICKED)


async def test_the_grant_forms_picker_takes_15000_cameras(start_gateway, browser, tmp_path):
    path, rows = city_with_station(tmp_path)
    gateway = await start_gateway(city_settings(path, governance=ONE_PERSON), grant=False)
    gateway.authorization()
    # A grant of 900 cameras in two districts: its row must stay one row high.
    by_district = {}
    for row in rows:
        by_district.setdefault(row["district"], []).append(row["id"])
    big = by_district["信義區"][:700] + by_district["大安區"][:200]
    gateway.grant(members=["viewer-1"], cameras=big, project="2028 跨年 信義區")

    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **DESKTOP
    )
    page = admin.page
    await page.click("[data-tab='grants']")
    row = page.locator("#grant-table tbody tr", has_text="2028 跨年 信義區")
    await expect(row.locator("td.cameras")).to_contain_text("信義區 700 支、大安區 200 支")
    assert (await row.bounding_box())["height"] < 150
    for action in (".edit-grant", ".revoke-grant"):
        assert await row.locator(action).evaluate(IN_SIGHT), action
    await page.click("#lang")
    await expect(row.locator("td.cameras")).to_contain_text(
        "Xinyi District 700 cameras, Da'an District 200 cameras"
    )
    await page.click("#lang")

    # The form: 15,001 cameras match, a few dozen rows exist.
    # Opening the form over 15,001 cameras: the time is printed, not asserted (speed is
    # shown in a benchmark). It was 0.6-1.2 s while a consent listed its 15,000 names in
    # one <option> of the form's authorization choice, 0.22-0.26 s since: each choice
    # summarises its cameras by district.
    opening = await page.evaluate(
        """() => {
            const started = performance.now();
            document.querySelector("#new-grant").click();
            document.body.offsetHeight; // and the layout it causes
            return performance.now() - started;
        }"""
    )
    print(f"opening the grant form over {CITY + 1} cameras: {opening:.0f} ms")
    longest = await page.evaluate(
        """() => Math.max(...[...document.querySelectorAll("#f-authorization_id option")]
            .map((option) => option.textContent.length))"""
    )
    assert longest < 200, longest
    await page.wait_for_function(
        "(n) => document.querySelector('#f-cameras').dataset.matches === String(n)",
        arg=CITY + 1,
    )
    state = await picked(page)
    assert state["selected"] == 0 and state["rows"] < 60, state
    await expect(page.locator("#f-cameras .picker-count")).to_contain_text("共 15,001 支")
    # The map's dots: one canvas, drawn; Leaflet's buttons in the page's language.
    await page.wait_for_function(
        "Number(document.querySelector('.picker-points')?.dataset.shown) > 0"
    )
    await expect(page.locator("#f-cameras .leaflet-control-zoom-in")).to_have_attribute(
        "title", "放大"
    )
    await expect(page.locator("#f-cameras .leaflet-control-zoom-out")).to_have_attribute(
        "title", "縮小"
    )

    # Search: 台 finds 臺, at once.
    took = await page.evaluate(SEARCH, "台北車站")
    state = await picked(page)
    assert state["matches"] == 1, state
    await expect(page.locator("#f-cameras .pick-row")).to_have_count(1)
    await expect(page.locator("#f-cameras .pick-row")).to_contain_text("臺北車站 東三門")
    for spelling in ("臺北車站", "ＴＰＥ-STATION"):  # 臺 as typed, full-width and upper case
        await page.evaluate(SEARCH, spelling)
        assert (await picked(page))["matches"] == 1, spelling
    timings = [await page.evaluate(SEARCH, text) for text in ("信義區 忠孝", "仁愛路2段", "")]
    print(f"picker search over {CITY + 1} cameras: {took:.1f} ms, then {timings} ms")
    assert max(took, *timings) < 300, (took, timings)

    # A whole road, from the chips the search shows.
    road = "仁愛路2段"
    await page.evaluate(SEARCH, road)
    await page.click(f"#f-cameras .chip.road[data-road='{road}']")
    on_road = sorted(r["id"] for r in rows if r["road"] == road)
    assert (await picked(page))["selected"] == len(on_road)
    await expect(page.locator(f"#f-cameras .chip.road[data-road='{road}']")).to_have_attribute(
        "aria-pressed", "true"
    )
    # A whole district, and again to let it go.
    district = page.locator("#f-cameras .chip.district[data-district='松山區']")
    await district.click()
    in_district = {r["id"] for r in rows if r["district"] == "松山區"}
    assert (await picked(page))["selected"] == len(in_district | set(on_road))
    await district.click()
    assert (await picked(page))["selected"] == len(set(on_road) - in_district)
    # Select every match, then clear.
    await page.evaluate(SEARCH, "信義區 忠孝")
    matches = (await picked(page))["matches"]
    await page.click("#f-cameras .pick-matches")
    xinyi = {r["id"] for r in rows if r["district"] == "信義區" and "忠孝" in r["road"]}
    assert (await picked(page))["selected"] == len(set(on_road) - in_district | xinyi)
    assert matches > 0
    await page.click("#f-cameras .pick-none")
    assert (await picked(page))["selected"] == 0

    # The lasso: a loop dragged on the map takes the matches inside it.
    await page.evaluate(SEARCH, "")
    await page.click("#f-cameras .lasso")
    box = await page.locator("#f-cameras .picker-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    loop = [(cx - 20, cy - 15), (cx + 20, cy - 15), (cx + 20, cy + 15), (cx - 20, cy + 15)]
    await page.mouse.move(*loop[0])
    await page.mouse.down()
    for x, y in [*loop[1:], loop[0]]:
        await page.mouse.move(x, y, steps=4)
    await page.mouse.up()
    state = await picked(page)
    assert 0 < state["selected"] < 2000, state
    # What it took lies together on the map (the loop is 40 × 30 px of a city-wide view).
    await page.check("#f-cameras .only-selected")
    ids = await page.locator("#f-cameras .pick-row input").evaluate_all(
        "(boxes) => boxes.map((b) => b.value)"
    )
    where = {r["id"]: (float(r["lat"]), float(r["lon"])) for r in rows}
    lats, lons = zip(*(where[i] for i in ids), strict=True)
    # (The city spans 0.14° x 0.16°; at the fitted zoom the loop covers about 0.03°.)
    assert max(lats) - min(lats) < 0.05 and max(lons) - min(lons) < 0.05, (lats, lons)
    await page.uncheck("#f-cameras .only-selected")
    await page.click("#f-cameras .lasso")  # off again
    await page.screenshot(path=screenshot("admin-picker-15000.png"))

    # Saved: the grant holds exactly what was picked (one road).
    await page.click("#f-cameras .pick-none")
    await page.evaluate(SEARCH, road)
    await page.click(f"#f-cameras .chip.road[data-road='{road}']")
    await page.fill("#f-project", "2028 元宵 仁愛路")
    await page.fill("#f-purpose", "人流管制")
    await page.fill("#f-members", "viewer-2")
    started = time.monotonic()
    await page.click("#grant-form [type=submit]")
    await expect(page.locator("#grant-form")).to_be_hidden()
    print(f"saving a {len(on_road)}-camera grant: {time.monotonic() - started:.2f} s")
    response = await gateway.http.get(
        f"{gateway.url}/api/grants", headers=gateway.bearer(ADMIN, admin=True)
    )
    (saved,) = [g for g in (await response.json())["grants"] if g["project"] == "2028 元宵 仁愛路"]
    assert saved["cameras"] == on_road
    districts = Counter(r["district"] for r in rows if r["road"] == road)
    top, n = districts.most_common(1)[0]
    await expect(
        page.locator("#grant-table tbody tr", has_text="2028 元宵 仁愛路").locator("td.cameras")
    ).to_contain_text(f"{top} {n} 支")
    await admin.check_token_stays_out_of_urls()


# Buttons whose text does not fit (clipped or spilling out of their box).
SPILLED = """(selector) => [...document.querySelectorAll(selector)]
    .filter((b) => b.offsetParent)
    .filter((b) => b.scrollWidth > b.clientWidth + 1 || b.scrollHeight > b.clientHeight + 1)
    .map((b) => b.textContent)"""


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET_WIDE], ids=["1440x900", "1024x768"])
async def test_the_grant_forms_buttons_stay_in_sight_in_both_languages(
    start_gateway, browser, tmp_path, viewport
):
    path, rows = city_with_station(tmp_path)
    gateway = await start_gateway(city_settings(path, governance=ONE_PERSON), grant=False)
    gateway.authorization()
    big = [r["id"] for r in rows[:900]]
    gateway.grant(members=[f"viewer-{i}" for i in range(40)], cameras=big, project="大型活動")
    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **viewport
    )
    page = admin.page
    width = viewport["viewport"]["width"]
    await page.click("[data-tab='grants']")
    row = page.locator("#grant-table tbody tr", has_text="大型活動")
    await expect(row).to_be_visible()
    await page.click("#new-grant")
    await page.wait_for_function(
        "(n) => document.querySelector('#f-cameras').dataset.matches === String(n)", arg=CITY + 1
    )
    for language in ("zh-Hant", "en"):
        if language == "en":
            await page.click("#lang")
            await expect(page.locator("html")).to_have_attribute("lang", "en")
        # The form's own buttons are in sight wherever the form is scrolled to.
        for where in ("#f-project", "#f-cameras .picker-search", "#f-cameras .picker-count"):
            await page.locator(where).scroll_into_view_if_needed()
            for button in ("#grant-form [type=submit]", "#cancel-grant"):
                assert await page.locator(button).evaluate(IN_SIGHT), (language, where, button)
        await page.locator("#f-cameras .picker-bar").scroll_into_view_if_needed()
        for button in (".pick-matches", ".pick-none", ".lasso"):
            assert await page.locator(f"#f-cameras {button}").evaluate(IN_SIGHT), button
        assert await page.evaluate(SPILLED, "#grant-form button, #grant-table button") == []
        sizes = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert sizes[0] <= sizes[1], f"horizontal scroll: {sizes}"
        await page.screenshot(path=screenshot(f"admin-grant-form-{width}-{language}.png"))
        # The 900-camera, 40-member grant: one ordinary row, its buttons in sight.
        await row.scroll_into_view_if_needed()
        await row.screenshot(path=screenshot(f"admin-grant-row-{width}-{language}.png"))
        assert (await row.bounding_box())["height"] < 150
        for action in (".edit-grant", ".revoke-grant"):
            assert await row.locator(action).evaluate(IN_SIGHT), (language, action)
        await page.locator("#grant-form").scroll_into_view_if_needed()
    await admin.check_token_stays_out_of_urls()


async def test_the_map_speaks_the_pages_language_and_tab_order_starts_at_the_top(
    start_gateway, browser, tmp_path
):
    path, _ = city_with_station(tmp_path)
    gateway = await start_gateway(city_settings(path, governance=ONE_PERSON), grant=False)
    gateway.authorization()
    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **DESKTOP
    )
    page = admin.page
    await expect(page.locator("#who")).to_have_text(ADMIN)
    # The first Tab lands in the top bar, never on the map.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "lang"
    await page.click("[data-tab='grants']")
    await page.click("#new-grant")
    zoom_in = page.locator("#f-cameras .leaflet-control-zoom-in")
    await expect(zoom_in).to_have_attribute("title", "放大")
    await expect(page.locator("#f-cameras .leaflet-control-zoom-out")).to_have_attribute(
        "title", "縮小"
    )
    await page.click("#lang")
    await expect(zoom_in).to_have_attribute("title", "Zoom in")
    await expect(page.locator("#f-cameras .leaflet-control-zoom-out")).to_have_attribute(
        "title", "Zoom out"
    )
    await page.click("#lang")
    await expect(zoom_in).to_have_attribute("title", "放大")
    # From the project field, Tab walks the form in reading order: the fields, the
    # picker's search and buttons, its chips, its list, then the map, then save.
    await page.focus("#f-project")
    path_taken = []
    for _ in range(60):
        path_taken.append(
            await page.evaluate(
                """() => {
                    const el = document.activeElement;
                    if (el.matches(".chip")) return "chip";
                    if (el.matches(".leaflet-container")) return "map";
                    if (el.closest(".leaflet-control-zoom")) return "zoom";
                    if (el.closest(".leaflet-control-attribution")) return "attribution";
                    return el.id || el.className || el.tagName;
                }"""
            )
        )
        if path_taken[-1] == "cancel-grant":
            break
        await page.keyboard.press("Tab")
    steps = [p for i, p in enumerate(path_taken) if i == 0 or p != path_taken[i - 1]]
    assert steps == [
        "f-project",
        "f-authorization_id",
        "f-purpose",
        "f-members",
        "f-starts_at",
        "f-ends_at",
        "picker-search",
        "pick-matches",
        "pick-none",
        "only-selected",
        "lasso",
        "chip",
        "picker-list",
        "map",
        "zoom",
        "attribution",
        "primary",
        "cancel-grant",
    ], steps
    # In the list, the arrow keys move and Space picks; the focus stays on the list.
    await page.focus("#f-cameras .picker-list")
    for key in ("ArrowDown", "ArrowDown", "End", "Home", "ArrowDown", " "):
        await page.keyboard.press(key)
    assert (await picked(page))["selected"] == 1
    await expect(page.locator("#f-cameras .pick-row.active")).to_have_attribute(
        "aria-selected", "true"
    )
    await expect(page.locator("#f-cameras .pick-row.active input")).to_be_checked()
    assert await page.evaluate("document.activeElement.matches('.picker-list')")
    await page.keyboard.press("End")
    await expect(page.locator("#f-cameras .pick-row.active")).to_contain_text("tpe-station")
    assert await page.evaluate("document.activeElement.matches('.picker-list')")
