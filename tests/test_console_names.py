"""Names that mix look-alike scripts are marked in the console, in Debian's headless
Chromium (issue 27): "admin" spelt with a Cyrillic a gets a visible ⚠ and a title saying
why, in the sessions table, the audit tab, the grants table and the chain of consent's
views (what waits for approval, the police authorizations); a name whose words each
keep to one script (Han with Latin, a Cyrillic word beside a Latin one) does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.chromium import jwt, open_page, screenshot, wait_state
from support.gateway import camera_entry, settings_for

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

ADMIN = "admin-1"
SPOOF = "\u0430dmin"  # a Cyrillic а, then Latin "dmin"
PROJECT = "P\u0430rade 2028"  # a Cyrillic а inside the Latin word "Parade"
HONEST = ["viewer-1", "張小明", "Ivan Иванов", "2028 跨年 Xinyi", "Ελένη"]
WIDE = {"viewport": {"width": 1440, "height": 900}}
MARK = ".mixed-script"


async def test_names_that_mix_look_alike_scripts_are_marked(start_gateway, browser):
    camera = camera_entry(
        "cam-a", "demo:testsrc", demo_size="320x240", demo_fps=15, name="臺北車站"
    )
    gateway = await start_gateway(settings_for([camera]), grant=False)
    gateway.grant(members=[SPOOF, "viewer-1"], cameras=["cam-a"], project=PROJECT)
    gateway.grant(members=["viewer-1"], cameras=["cam-a"], project="2028 跨年 Xinyi")
    # The look-alike account watches: a live session, and its audit rows.
    viewer = await open_page(browser, gateway.url + "/", jwt(gateway, SPOOF))
    await viewer.page.click("#cameras button[data-camera='cam-a']")
    await wait_state(viewer, "cam-a", "live")
    # A grant that waits for a second administrator names it too.
    now = datetime.now(UTC)
    response = await gateway.http.post(
        f"{gateway.url}/api/grants",
        headers=gateway.bearer(ADMIN, admin=True),
        json={
            "project": "Expo \u0415ast",  # a Cyrillic Е
            "purpose": "test",
            "authorization_id": gateway.authorization().id,
            "members": [SPOOF, "Ivan"],
            "cameras": ["cam-a"],
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(),
        },
    )
    assert response.status == 201

    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **WIDE
    )
    page = admin.page
    # The rule itself, in the page: which names get the mark.
    marked = await page.evaluate(
        """async (names) => {
            const { mixedScripts } = await import("/web/admin/names.js");
            return names.map((name) => mixedScripts(name).length > 0);
        }""",
        [SPOOF, PROJECT, "ρaypal", *HONEST],
    )
    assert marked == [True, True, True] + [False] * len(HONEST)

    # Live sessions: the account.
    session = page.locator(f"#session-table tr[data-account='{SPOOF}']")
    await expect(session.locator(MARK)).to_have_count(2)  # the account and the project
    title = await session.locator(MARK).first.get_attribute("title")
    assert "混用拉丁與西里爾字母" in title, title
    await expect(session.locator(MARK).first).to_be_visible()
    # What waits for approval: the project, the asker's list of members.
    waiting = page.locator("#approvals li", has_text="Expo")
    await expect(waiting.locator("strong " + MARK)).to_have_count(1)
    await expect(waiting.locator(".diff " + MARK)).to_have_count(
        1
    )  # the look-alike admin, not Ivan
    # The grants table: the project and the member, not the honest ones.
    await page.click("[data-tab='grants']")
    row = page.locator("#grant-table tbody tr", has_text="2028")
    await expect(row.locator(MARK)).to_have_count(2)
    honest = page.locator("#grant-table tbody tr", has_text="跨年")
    await expect(honest).to_be_visible()
    await expect(honest.locator(MARK)).to_have_count(0)
    await page.screenshot(path=screenshot("admin-mixed-scripts.png"))
    # The police authorizations: the grants under each, by project.
    await page.click("[data-tab='authorizations']")
    await expect(page.locator("#authorization-table tbody " + MARK)).to_have_count(2)
    # The audit tab: the account and the project of the session's rows.
    await page.click("[data-tab='audit']")
    start = page.locator("#audit-table tr[data-event='session_start']").first
    await expect(start.locator(MARK)).to_have_count(2)
    # In English, the title says it in English.
    await page.click("#lang")
    title = await start.locator(MARK).first.get_attribute("title")
    assert "mixes Latin and Cyrillic letters in one word" in title, title
    await admin.check_token_stays_out_of_urls()
