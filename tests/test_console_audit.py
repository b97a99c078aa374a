"""The console's audit tab in the reader's language, in Debian's headless Chromium (issue
26): event names and details in words (no raw keys such as bytes_sent or grant_hash),
cameras by name with their id, and a filter that offers every kind the gateway writes,
checked against the gateway's code so that the two cannot drift apart."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.chromium import (
    jwt,
    open_page,
    open_viewer,
    player,
    screenshot,
    wait_state,
    wait_until,
)
from support.gateway import ONE_PERSON, camera_entry, settings_for

from gateway.app import SESSIONS
from gateway.store import audit

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin-1"
WIDE = {"viewport": {"width": 1440, "height": 900}}


def kinds_the_gateway_writes() -> set[str]:
    """Every audit event name the gateway's code uses: `events.X` (gateway.store.audit
    imported as `events`) in any module, and the names audit.py uses itself."""
    names = {
        name
        for name, value in vars(audit).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z]+(_[a-z]+)+", value)
    }
    used: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in names:
                if isinstance(node.value, ast.Name) and node.value.id in ("events", "audit"):
                    used.add(node.attr)
            elif (
                path.name == "audit.py"
                and isinstance(node, ast.Name)
                and node.id in names
                and isinstance(node.ctx, ast.Load)
            ):
                used.add(node.id)
    return {getattr(audit, name) for name in used}


def kinds_the_console_names() -> dict[str, list[str]]:
    text = (ROOT / "web" / "admin" / "audit-words.js").read_text(encoding="utf-8")
    block = text[text.index("export const EVENT_NAMES = {") : text.index("};")]
    return {
        kind: [zh, en]
        for kind, zh, en in re.findall(r'^  (\w+): \["([^"]+)", "([^"]+)"\]', block, re.M)
    }


def test_the_consoles_event_kinds_are_the_ones_the_gateway_writes():
    written, named = kinds_the_gateway_writes(), kinds_the_console_names()
    assert {"session_ice", "session_start", "audit_pruned", "inventory_refused"} <= written
    assert set(named) == written, (sorted(written - set(named)), sorted(set(named) - written))
    for kind, (zh, en) in named.items():
        assert zh and en and "_" not in zh + en, kind


async def test_the_audit_tab_speaks_the_readers_language(start_gateway, browser):
    camera = camera_entry(
        "cam-a", "demo:testsrc", demo_size="320x240", demo_fps=15, name="臺北車站"
    )
    gateway = await start_gateway(settings_for([camera], governance=ONE_PERSON))
    # A session that starts and ends (its end row has bytes_sent and duration_seconds).
    viewer = await open_viewer(browser, gateway)
    await viewer.page.click("#cameras button[data-camera='cam-a']")
    await wait_state(viewer, "cam-a", "live")
    await viewer.page.click(f"{player('cam-a')} .close")
    await wait_until(lambda: len(gateway.app[SESSIONS]) == 0, timeout=3)
    await gateway.http.get(f"{gateway.url}/api/sessions", headers={"Authorization": "Bearer x"})
    # A grant made through the API: its row lists members, cameras and the window.
    now = datetime.now(UTC)
    body = {
        "project": "2028 元宵燈節",
        "purpose": "人流管制",
        "authorization_id": gateway.authorization().id,
        "members": ["viewer-2"],
        "cameras": ["cam-a"],
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=8)).isoformat(),
    }
    response = await gateway.http.post(
        f"{gateway.url}/api/grants", json=body, headers=gateway.bearer(ADMIN, admin=True)
    )
    assert response.status == 201

    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **WIDE
    )
    page = admin.page
    await page.click("[data-tab='audit']")
    rows = page.locator("#audit-table tbody tr")
    await expect(rows.first).to_be_visible()
    kinds = set(await rows.evaluate_all("(rows) => rows.map((r) => r.dataset.event)"))
    assert {"session_start", "session_end", "grant_created", "token_rejected"} <= kinds, kinds

    labels = page.locator("#audit-table .k")

    async def check_labels(english: bool = False) -> None:
        found = await labels.evaluate_all(
            "(els) => els.map((e) => [e.dataset.key, e.textContent, 'unknown' in e.dataset])"
        )
        assert found
        for key, shown, unknown in found:
            assert not unknown and "_" not in shown, (key, shown)
            assert english or shown != key, (key, shown)
        text = await page.locator("#audit-table tbody").inner_text()
        for raw in ("bytes_sent", "grant_hash", "duration_seconds", "session_end", "{"):
            assert raw not in text, raw

    await check_labels()
    end = page.locator("#audit-table tr[data-event='session_end']").first
    await expect(end.locator("td").nth(1)).to_have_text("結束觀看")
    await expect(end.locator("td.detail")).to_contain_text("傳送量：")
    await expect(end.locator("td.detail")).to_contain_text("原因：")
    await expect(end.locator("td").nth(3)).to_have_text("臺北車站cam-a")  # name, id beneath
    created = page.locator("#audit-table tr[data-event='grant_created']", has_text="2028 元宵燈節")
    await expect(created.locator("td.detail")).to_contain_text("攝影機：臺北車站")
    await expect(created.locator("td.detail")).to_contain_text("授權紀錄雜湊：")
    await page.screenshot(path=screenshot("admin-audit-words.png"), full_page=True)
    # The filter offers every kind, in words; session_ice among them.
    options = page.locator("#a-event option")
    await expect(options).to_have_count(len(kinds_the_console_names()) + 1)
    await expect(page.locator("#a-event option[value='session_ice']")).to_have_text("連線候選位址")
    await page.select_option("#a-event", "session_end")
    await page.click("#audit-filters [type=submit]")
    await expect(rows).to_have_count(1)

    # English, the rows already shown included.
    await page.click("#lang")
    await expect(end.locator("td").nth(1)).to_have_text("viewing ended")
    await expect(end.locator("td.detail")).to_contain_text("sent: ")
    await expect(page.locator("#a-event option[value='session_ice']")).to_have_text(
        "ICE candidates added"
    )
    await expect(page.locator("#a-event")).to_have_value("session_end")
    await page.select_option("#a-event", "")
    await page.click("#audit-filters [type=submit]")
    await expect(rows.first).to_be_visible()
    await check_labels(english=True)
    await admin.check_token_stays_out_of_urls()
