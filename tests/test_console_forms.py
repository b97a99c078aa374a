"""The console's grant form in Debian's headless Chromium (issue 26): members checked in
the form by the gateway's own rule for account names, and every wrong field marked at
once on submit, in both languages; the gateway's own 422 names every field too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.chromium import jwt, open_page
from support.gateway import ONE_PERSON, camera_entry, settings_for

from gateway.access.grants import GrantInvalid, members_of

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

ADMIN = "admin-1"
WIDE = {"viewport": {"width": 1280, "height": 900}}

# Names on both sides of the rule, and the edges between: scripts, marks, e-mail,
# full-width forms (NFKC), invisible characters, spaces and signs.
NAMES = [
    "alice",
    "張小明",
    "o'brien",
    "ana.lopez+cctv@taipei.gov.tw",
    "user_7-b",
    "12345",
    "\uff41\uff4c\uff49\uff43\uff45",  # full-width: "alice"
    "e\u0301cole",  # a combining accent
    "\u0661\u0662\u0663",  # Arabic-Indic digits
    "\u0430dmin",  # a Cyrillic a: allowed, and marked in the console
    "not a valid account!!",
    "ad min",
    "alice!!",
    "user#1",
    "tab\tname",
    "a/b",
    "DOMAIN\\user",
    "\U0001f600",
    "bob\u202e",
    "al\u200bice",
    "x" * 257,
]


def day(n: int) -> str:
    """A datetime-local value n days from now."""
    return (datetime.now(UTC) + timedelta(days=n)).strftime("%Y-%m-%dT10:00")


def gateway_rule(name: str) -> bool:
    try:
        members_of([name])
        return True
    except GrantInvalid:
        return False


async def test_the_form_checks_members_by_the_gateways_rule(start_gateway, browser):
    gateway = await start_gateway(
        settings_for(
            [camera_entry("cam-a", "demo:testsrc", name="臺北車站")], governance=ONE_PERSON
        )
    )
    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **WIDE
    )
    page = admin.page
    await expect(page.locator("#who")).to_have_text(ADMIN)
    in_page = await page.evaluate(
        """async (names) => {
            const { membersProblem } = await import("/web/admin/members.js");
            return names.map((name) => membersProblem([name]));
        }""",
        NAMES,
    )
    verdicts = {
        name: (problem is None, gateway_rule(name))
        for name, problem in zip(NAMES, in_page, strict=True)
    }
    assert all(console == server for console, server in verdicts.values()), verdicts
    assert sum(ok for ok, _ in verdicts.values()) == 10  # both sides of the rule are tried


async def test_every_wrong_field_shows_at_once_in_both_languages(start_gateway, browser):
    gateway = await start_gateway(
        settings_for(
            [camera_entry("cam-a", "demo:testsrc", name="臺北車站")], governance=ONE_PERSON
        )
    )
    admin = await open_page(
        browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True), **WIDE
    )
    page = admin.page
    await page.click("[data-tab='grants']")
    await page.click("#new-grant")
    await page.fill("#f-ends_at", "")
    posts = lambda: sum(1 for m, u in admin.requests if m == "POST" and u.endswith("/api/grants"))  # noqa: E731
    await page.click("#grant-form [type=submit]")
    error = lambda field: page.locator(f"#grant-form .field-error[data-for='{field}']")  # noqa: E731
    for field, words in (
        ("project", "必填"),
        ("purpose", "必填"),
        ("members", "至少需要一項"),
        ("cameras", "至少需要一項"),
        ("ends_at", "必填"),
    ):
        await expect(error(field)).to_have_text(words)
    assert await page.locator("#grant-form [aria-invalid=true]").count() == 5
    assert await page.evaluate("document.activeElement.id") == "f-project"  # the first
    assert posts() == 0  # nothing was sent

    # A member that is no account name, named in the page's language; the rest fixed.
    await page.fill("#f-project", "2028 元宵燈節")
    await page.fill("#f-purpose", "人流管制")
    await page.fill("#f-members", "viewer-2\nnot a valid account!!")
    await page.check("#f-cameras input[value='cam-a']")
    await page.fill("#f-starts_at", day(1))
    await page.fill("#f-ends_at", day(2))
    await page.click("#grant-form [type=submit]")
    await expect(error("members")).to_have_text(
        "第 2 項「not a valid account!!」含空格：帳號是一個詞，只能有文字、數字與 . _ - @ + '"
    )
    for field in ("project", "purpose", "cameras", "ends_at"):
        await expect(error(field)).to_have_text("")
    await page.click("#lang")
    await page.click("#grant-form [type=submit]")
    await expect(error("members")).to_contain_text("item 2 'not a valid account!!' has a space")
    await page.fill("#f-members", "viewer-2\nviewer-2")
    await page.fill("#f-purpose", " ")
    await page.click("#grant-form [type=submit]")
    await expect(error("members")).to_have_text("'viewer-2' is listed twice")
    await expect(error("purpose")).to_have_text("is required")
    assert posts() == 0

    # What only the gateway can tell (here: the window's longest length) sits by its field.
    await page.fill("#f-members", "viewer-2")
    await page.fill("#f-purpose", "crowd control")
    await page.fill("#f-ends_at", day(60))
    await page.click("#grant-form [type=submit]")
    await expect(error("ends_at")).to_contain_text("a grant may run at most")
    assert posts() == 1
    await page.fill("#f-ends_at", day(2))
    await page.click("#grant-form [type=submit]")
    await expect(page.locator("#grant-form")).to_be_hidden()
    await admin.check_token_stays_out_of_urls()
