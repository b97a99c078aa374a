"""The browser side in real headless Chromium (Debian's, never `playwright install`).

Chromium runs with its default WebRTC settings in every test: mDNS host-candidate
hiding stays on, as real users have it. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from support.chromium import (
    assert_plays,
    jwt,
    open_page,
    open_viewer,
    player,
    screenshot,
    wait_state,
    wait_until,
)
from support.gateway import ONE_PERSON, REFERENCE, VIEWER, camera_entry, settings_for

from gateway.app import SESSIONS
from gateway.config import CorsSettings
from gateway.signaling import CONNECTION_LOST

playwright_api = pytest.importorskip("playwright.async_api")

ADMIN = "admin-1"
# Four Taipei places, far enough apart that the map shows four separate points.
PLACES = {
    "cam-a": ("臺北車站", 25.0478, 121.5170),
    "cam-b": ("臺北市政府", 25.0375, 121.5637),
    "cam-c": ("西門町", 25.0422, 121.5078),
    "cam-d": ("大稻埕碼頭", 25.0563, 121.5087),
}


def demo_cameras(*ids: str) -> list[dict]:
    """Small synthetic cameras (a moving test picture), cheap to encode on 2 cores."""
    return [
        camera_entry(
            i,
            "demo:testsrc",
            demo_size="320x240",
            demo_fps=15,
            name=PLACES[i][0],
            lat=PLACES[i][1],
            lon=PLACES[i][2],
        )
        for i in ids
    ]


# --- the viewer ----------------------------------------------------------------------


async def test_viewer_opens_a_camera_from_the_map_and_it_plays(start_gateway, browser):
    gateway = await start_gateway(settings_for(demo_cameras("cam-a", "cam-b")))
    page = await open_viewer(browser, gateway)
    started = time.monotonic()
    await page.page.click(".cam-pin-dot[data-camera='cam-a']")
    await assert_plays(page, "cam-a")
    print(f"map click to a moving picture: {time.monotonic() - started:.2f} s")
    stats = page.page.locator(f"{player('cam-a')} .stats")
    await playwright_api.expect(stats).to_contain_text("kbps", timeout=5000)
    await playwright_api.expect(stats).to_contain_text("延遲")
    await playwright_api.expect(page.page.locator(f"{player('cam-a')} .state")).to_have_text(
        "直播中"
    )
    # The list filters as you type, in Traditional Chinese.
    await page.page.fill("#search", "市政")
    await playwright_api.expect(page.page.locator("#cameras button")).to_have_count(1)
    await playwright_api.expect(page.page.locator("#cameras button")).to_contain_text("臺北市政府")
    await page.page.fill("#search", "")
    # English on request; the tiles follow.
    await page.page.click("#lang")
    await playwright_api.expect(page.page.locator(f"{player('cam-a')} .state")).to_have_text("Live")
    await page.page.click("#lang")
    await page.page.screenshot(path=screenshot("viewer-single.png"))
    # Fullscreen, per tile.
    await page.page.click(f"{player('cam-a')} .fullscreen")
    await page.page.wait_for_function(
        "document.fullscreenElement?.getAttribute('camera') === 'cam-a'"
    )
    await page.page.click(f"{player('cam-a')} .fullscreen")
    await page.page.wait_for_function("document.fullscreenElement === null")
    # Closing the tile ends its session on the gateway (WHEP DELETE).
    assert len(gateway.app[SESSIONS]) == 1
    await page.page.click(f"{player('cam-a')} .close")
    await wait_until(lambda: len(gateway.app[SESSIONS]) == 0, timeout=3)
    await page.check_token_stays_out_of_urls()


async def test_four_tiles_play_at_once(start_gateway, browser):
    ids = ("cam-a", "cam-b", "cam-c", "cam-d")
    gateway = await start_gateway(settings_for(demo_cameras(*ids)))
    page = await open_viewer(browser, gateway, viewport={"width": 1440, "height": 900})
    await page.page.click("[data-layout='2']")
    for camera_id in ids:
        await page.page.click(f"#cameras button[data-camera='{camera_id}']")
    for camera_id in ids:
        await assert_plays(page, camera_id)
    assert len(gateway.app[SESSIONS]) == 4
    await page.page.screenshot(path=screenshot("viewer-grid-2x2.png"))
    # One place left: the three oldest tiles close and end their sessions.
    await page.page.click("[data-layout='1']")
    await wait_until(lambda: len(gateway.app[SESSIONS]) == 1, timeout=3)
    (session,) = gateway.app[SESSIONS]
    assert session.camera_id == "cam-d"
    await page.check_token_stays_out_of_urls()


async def test_a_dropped_connection_reconnects_by_itself(start_gateway, browser):
    gateway = await start_gateway(settings_for(demo_cameras("cam-a")))
    page = await open_viewer(browser, gateway)
    await page.page.click("#cameras button[data-camera='cam-a']")
    await wait_state(page, "cam-a", "live")
    (session,) = gateway.app[SESSIONS]
    posts = page.whep_posts()
    await gateway.app[SESSIONS].end(session.id, CONNECTION_LOST)
    await wait_state(page, "cam-a", "reconnecting", timeout=2)
    await assert_plays(page, "cam-a")
    assert page.whep_posts() == posts + 1
    (again,) = gateway.app[SESSIONS]
    assert again.id != session.id


async def test_admin_revocation_turns_the_tile_to_revoked_and_it_stays_down(start_gateway, browser):
    gateway = await start_gateway(settings_for(demo_cameras("cam-a")))
    viewer = await open_viewer(browser, gateway)
    await viewer.page.click("#cameras button[data-camera='cam-a']")
    await wait_state(viewer, "cam-a", "live")
    await viewer.page.evaluate(
        """(sel) => {
            window.seen = [];
            const p = document.querySelector(sel);
            for (const type of ["revoked", "ended"]) {
              p.addEventListener(type, (e) => seen.push([type, e.detail.reason]));
            }
        }""",
        player("cam-a"),
    )

    admin = await open_page(
        browser,
        gateway.url + "/admin",
        jwt(gateway, ADMIN, admin=True),
        viewport={"width": 1280, "height": 800},
    )
    row = admin.page.locator(f"#session-table tr[data-account='{VIEWER}']")
    await playwright_api.expect(row).to_have_count(1)
    await playwright_api.expect(row).to_contain_text("cam-a")
    await admin.page.screenshot(path=screenshot("admin-sessions.png"))
    await row.locator(".revoke-session").click()
    await admin.page.fill("#reason-input", "不當使用")
    posts = viewer.whep_posts()
    started = time.monotonic()
    await admin.page.click("#reason-confirm")
    await wait_state(viewer, "cam-a", "revoked", timeout=2)
    print(f"revoked on the tile {time.monotonic() - started:.2f} s after the click")
    message = viewer.page.locator(f"{player('cam-a')} .message")
    await playwright_api.expect(message).to_contain_text("觀看權限已撤銷")
    await playwright_api.expect(message).to_contain_text("管理員撤銷：不當使用")
    # The console's table follows the event stream.
    await playwright_api.expect(row).to_have_count(0)
    await viewer.page.wait_for_timeout(3000)  # nothing to wait for: it must not reconnect
    assert viewer.whep_posts() == posts, "the tile reconnected after a revocation"
    assert await viewer.page.evaluate(f'document.querySelector("{player("cam-a")}").state') == (
        "revoked"
    )
    assert await viewer.page.evaluate("seen") == [
        ["revoked", "revoked by an administrator: 不當使用"]
    ]
    assert len(gateway.app[SESSIONS]) == 0
    await viewer.page.screenshot(path=screenshot("viewer-revoked.png"))
    await viewer.check_token_stays_out_of_urls()
    await admin.check_token_stays_out_of_urls()


async def test_a_grant_ending_shows_grant_ended(start_gateway, browser):
    gateway = await start_gateway(settings_for(demo_cameras("cam-a")), grant=False)
    gateway.grant(starts_in=-1, lasts=9)
    page = await open_viewer(browser, gateway)
    await page.page.click("#cameras button[data-camera='cam-a']")
    await wait_state(page, "cam-a", "live")
    # The last ten minutes: the tile counts down.
    countdown = page.page.locator(f"{player('cam-a')} .countdown")
    await playwright_api.expect(countdown).to_be_visible()
    await playwright_api.expect(countdown).to_contain_text("授權剩餘 0:0")
    posts = page.whep_posts()
    await wait_state(page, "cam-a", "ended", timeout=12)
    message = page.page.locator(f"{player('cam-a')} .message")
    await playwright_api.expect(message).to_contain_text("授權期間已結束")
    await page.page.wait_for_timeout(1500)  # nothing to wait for: it must not reconnect
    assert page.whep_posts() == posts
    await page.page.screenshot(path=screenshot("viewer-grant-ended.png"))


async def test_a_shortened_grant_starts_the_countdown_from_the_viewers_copy(start_gateway, browser):
    """A viewer's grant events carry no members; the tile still follows its grant."""
    gateway = await start_gateway(settings_for(demo_cameras("cam-a")), grant=False)
    grant = gateway.grant(starts_in=-60, lasts=3600)
    page = await open_viewer(browser, gateway)
    await page.page.click("#cameras button[data-camera='cam-a']")
    await wait_state(page, "cam-a", "live")
    countdown = page.page.locator(f"{player('cam-a')} .countdown")
    await playwright_api.expect(countdown).to_be_hidden()  # more than ten minutes left
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    response = await gateway.http.patch(
        f"{gateway.url}/api/grants/{grant.id}",
        json={"ends_at": soon},
        headers=gateway.bearer(ADMIN, admin=True),
    )
    assert response.status == 200, await response.text()
    await playwright_api.expect(countdown).to_be_visible()
    await playwright_api.expect(countdown).to_contain_text("授權剩餘 4:")
    assert await page.page.evaluate(f'document.querySelector("{player("cam-a")}").state') == "live"


# --- the embeddable element ------------------------------------------------------------

HOST_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>City dashboard</title></head>
<body style="font-family: sans-serif; margin: 2rem">
  <h1>City dashboard (another origin)</h1>
  <cctv-player id="tile" camera="cam-a" label="Taipei Main Station"
      base-url="{gateway}/" token-provider="dashboardToken" style="width: 480px"></cctv-player>
  <script>
    // The host signs its users in and hands the player a token (here: from its own server).
    window.dashboardToken = () => fetch("/token").then((r) => r.text());
    window.seen = [];
    const tile = document.getElementById("tile");
    tile.addEventListener("statechange", (e) => seen.push(e.detail.state));
  </script>
  <script type="module" src="{module}"></script>
  <h2>The whole viewer page, framed</h2>
  <script>
    // The framed page says it is ready; the host answers with the token, to that origin only.
    addEventListener("message", async (event) => {{
      if (event.origin !== "{gateway}" || event.data?.type !== "cctv-ready") return;
      const token = await dashboardToken();
      event.source.postMessage({{ type: "cctv-token", token }}, "{gateway}");
    }});
  </script>
  <iframe id="viewer" src="{gateway}/" style="width: 900px; height: 420px"></iframe>
</body>
</html>
"""


async def test_the_element_plays_inside_a_host_page_on_another_origin(start_gateway, browser):
    where: dict[str, str] = {}
    host_app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HOST_PAGE.format(**where), content_type="text/html")

    async def dashboard_token(request: web.Request) -> web.Response:
        return web.Response(text=where["token"])

    host_app.router.add_get("/", page)
    host_app.router.add_get("/token", dashboard_token)
    host = TestServer(host_app, host="127.0.0.1")
    await host.start_server()
    origin = f"http://127.0.0.1:{host.port}"
    try:
        settings = settings_for(demo_cameras("cam-a"))
        settings = dataclasses.replace(settings, cors=CorsSettings(origins=(origin,)))
        gateway = await start_gateway(settings)
        where.update(gateway=gateway.url, token=jwt(gateway))
        # The module itself comes from the gateway, which lets this origin load it.
        async with ClientSession() as http:
            probe = await http.get(f"{gateway.url}/web/cctv-player.js", headers={"Origin": origin})
            assert probe.headers.get("Access-Control-Allow-Origin") == origin
        where["module"] = f"{gateway.url}/web/cctv-player.js"

        page = await open_page(browser, origin + "/", where["token"])
        assert urlsplit(page.page.url).netloc != urlsplit(gateway.url).netloc
        await assert_plays(page, "cam-a")
        await playwright_api.expect(page.page.locator("#tile .state")).to_have_text("Live")
        assert await page.page.evaluate("seen") == ["connecting", "waiting", "live"]
        # The framed viewer page got its token by postMessage.
        framed = page.page.frame_locator("#viewer").locator("#cameras button")
        await playwright_api.expect(framed).to_have_count(1, timeout=10_000)
        await playwright_api.expect(framed).to_contain_text("臺北車站")
        await page.page.screenshot(path=screenshot("embedded-other-origin.png"), full_page=True)
        # Taken off the page, it ends its session (a cross-origin WHEP DELETE).
        assert len(gateway.app[SESSIONS]) == 1
        await page.page.evaluate("document.getElementById('tile').remove()")
        await wait_until(lambda: len(gateway.app[SESSIONS]) == 0, timeout=3)
        await page.check_token_stays_out_of_urls()
    finally:
        await host.close()


# --- tablets ---------------------------------------------------------------------------

TABLET = {"viewport": {"width": 768, "height": 1024}, "has_touch": True, "is_mobile": True}
TOO_SMALL = """() => {
    const small = [];
    const check = (el) => {
      const r = el.getBoundingClientRect();
      // Rounded: a marker mid zoom animation measures 43.99998 px.
      const w = Math.round(r.width), h = Math.round(r.height);
      if (w && h && (w < 44 || h < 44)) {
        const name = el.className || el.id || el.textContent.trim();
        small.push(`${el.tagName} ${name} ${r.width}x${r.height}`);
      }
    };
    const targets = "button, input:not([type=checkbox]), select, textarea, .cam-pin";
    document.querySelectorAll(`${targets}, .leaflet-bar a`).forEach(check);
    for (const p of document.querySelectorAll("cctv-player")) {
      p.shadowRoot.querySelectorAll("button").forEach(check);
    }
    return small;
}"""


async def no_horizontal_scroll(page) -> None:
    sizes = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert sizes[0] <= sizes[1], f"horizontal scroll: {sizes}"


async def test_tablet_portrait_has_no_horizontal_scroll_and_touch_sized_targets(
    start_gateway, browser
):
    gateway = await start_gateway(settings_for(demo_cameras("cam-a", "cam-b", "cam-c")))
    viewer = await open_viewer(browser, gateway, **TABLET)
    await viewer.page.tap("#cameras button[data-camera='cam-a']")
    await wait_state(viewer, "cam-a", "live")
    await no_horizontal_scroll(viewer.page)
    assert await viewer.page.evaluate(TOO_SMALL) == []
    await viewer.page.screenshot(path=screenshot("tablet-viewer.png"), full_page=True)
    for layout in ("3", "1"):
        await viewer.page.tap(f"[data-layout='{layout}']")
        await no_horizontal_scroll(viewer.page)

    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **TABLET
    )
    await playwright_api.expect(admin.page.locator("#session-table tbody tr")).to_have_count(1)
    await no_horizontal_scroll(admin.page)
    await admin.page.screenshot(path=screenshot("tablet-admin-sessions.png"), full_page=True)
    await admin.page.tap("[data-tab='grants']")
    await admin.page.tap("#new-grant")
    await playwright_api.expect(admin.page.locator("#grant-table tbody tr")).to_have_count(1)
    await no_horizontal_scroll(admin.page)
    assert await admin.page.evaluate(TOO_SMALL) == []
    await admin.page.screenshot(path=screenshot("tablet-admin-grants.png"), full_page=True)
    await admin.page.tap("[data-tab='audit']")
    await playwright_api.expect(admin.page.locator("#audit-table tbody tr").first).to_be_visible()
    await no_horizontal_scroll(admin.page)
    await viewer.check_token_stays_out_of_urls()
    await admin.check_token_stays_out_of_urls()


# --- the admin console ---------------------------------------------------------------------


async def test_admin_console_grants_and_audit(start_gateway, browser, tmp_path):
    # One person alone (approval "none"): this is about the form, the table and the
    # audit tab; approvals in the console are tests/test_consent_ui.py's.
    gateway = await start_gateway(
        settings_for(demo_cameras("cam-a", "cam-b"), governance=ONE_PERSON)
    )
    later = gateway.authorization("北市警資字第1130000003號")  # a second police consent
    # Without the admin claim: a clear message, no console.
    stranger = await open_page(browser, gateway.url + "/admin", jwt(gateway))
    await playwright_api.expect(stranger.page.locator("#banner")).to_contain_text("沒有管理權限")
    await playwright_api.expect(stranger.page.locator("#grants")).to_be_hidden()

    admin = await open_page(
        browser,
        gateway.url + "/admin",
        jwt(gateway, ADMIN, admin=True),
        viewport={"width": 1280, "height": 900},
    )
    page = admin.page
    day = lambda n: (datetime.now(UTC) + timedelta(days=n)).strftime("%Y-%m-%dT10:00")  # noqa: E731
    await page.click("[data-tab='grants']")
    await playwright_api.expect(page.locator("#grant-table tbody tr")).to_have_count(1)
    await page.click("#new-grant")
    await page.fill("#f-project", "2028 元宵燈節 中正區")
    await page.fill("#f-purpose", "跨年活動人流管制")
    await page.fill("#f-members", "viewer-2")
    await page.check("#f-cameras input[value='cam-a']")
    await page.select_option(
        "#f-authorization_id", label=f"{REFERENCE} — 已確認 — 臺北車站, 臺北市政府"
    )
    await page.fill("#f-starts_at", day(2))
    await page.fill("#f-ends_at", day(1))
    # The gateway's 422 {error, field}: each message sits next to its field.
    await page.click("#grant-form [type=submit]")
    await playwright_api.expect(
        page.locator("#grant-form .field-error[data-for='ends_at']")
    ).to_have_text("必須晚於開始時間")
    await page.fill("#f-ends_at", day(3))
    await page.click("#grant-form [type=submit]")
    await playwright_api.expect(page.locator("#grant-form")).to_be_hidden()
    row = page.locator("#grant-table tbody tr", has_text="2028 元宵燈節 中正區")
    await playwright_api.expect(row).to_contain_text("尚未開始")
    await playwright_api.expect(row).to_contain_text("臺北車站")
    # Edit the members and the cameras.
    await row.locator(".edit-grant").click()
    await playwright_api.expect(page.locator("#f-project")).to_be_disabled()
    await page.fill("#f-members", "viewer-2\nviewer-3")
    await page.check("#f-cameras input[value='cam-b']")
    await page.click("#grant-form [type=submit]")
    await playwright_api.expect(row).to_contain_text("viewer-3")
    await playwright_api.expect(row).to_contain_text("臺北市政府")
    # Moved under another police consent: the earlier reference stays listed.
    await row.locator(".edit-grant").click()
    await page.select_option("#f-authorization_id", str(later.id))
    await page.click("#grant-form [type=submit]")
    await playwright_api.expect(page.locator("#grant-form")).to_be_hidden()
    await playwright_api.expect(row).to_contain_text("北市警資字第1130000003號")
    await playwright_api.expect(row.locator(".earlier-refs")).to_have_text(f"先前文號：{REFERENCE}")
    await page.screenshot(path=screenshot("admin-grants.png"), full_page=True)
    # Revoke it, with a reason; shown once ended grants are listed.
    await row.locator(".revoke-grant").click()
    await page.fill("#reason-input", "活動取消")
    await page.click("#reason-confirm")
    await playwright_api.expect(row).to_have_count(0)
    await page.check("#include-ended")
    await playwright_api.expect(row).to_contain_text("已撤銷")
    await playwright_api.expect(row).to_contain_text("活動取消")

    # The audit log, filtered by project, and its CSV export.
    await page.click("[data-tab='audit']")
    await page.fill("#a-project", "2028 元宵燈節 中正區")
    await page.click("#audit-filters [type=submit]")
    events = page.locator("#audit-table tbody tr")
    await playwright_api.expect(events).to_have_count(4)
    assert await events.evaluate_all("rows => rows.map((r) => r.dataset.event)") == [
        "grant_revoked",
        "grant_updated",
        "grant_updated",
        "grant_created",
    ]
    await page.screenshot(path=screenshot("admin-audit.png"), full_page=True)
    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    download = await download_info.value
    assert download.suggested_filename.endswith(".csv")
    saved = tmp_path / "audit.csv"
    await download.save_as(saved)
    lines = saved.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("seq,at,event")
    assert len(lines) == 5 and "grant_created" in lines[4]
    await admin.check_token_stays_out_of_urls()
    await stranger.check_token_stays_out_of_urls()
