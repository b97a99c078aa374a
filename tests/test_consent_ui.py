"""The chain of consent in the console, in real headless Chromium (Debian's): a police
liaison records the consent, an administrator asks for a grant, a second one approves
it after seeing the diff, the viewer watches, the liaison withdraws and the tile goes
down; emergency access sounds the alarm on every console; the auditor makes the
report, and Chromium prints it to a PDF whose tables are there."""

from __future__ import annotations

import asyncio
import io
import re
import unicodedata
from datetime import datetime

import pytest
from support.chromium import assert_plays, jwt, open_page, open_viewer, player, wait_state
from support.gateway import LIAISON, VIEWER, camera_entry, settings_for

from gateway.app import STORE
from gateway.control.report import TAIPEI
from gateway.store.verify import verify_database

playwright_api = pytest.importorskip("playwright.async_api")
pypdf = pytest.importorskip("pypdf")
expect = playwright_api.expect

ADMIN, SECOND, AUDITOR, MEDIC = "admin-1", "admin-2", "auditor-1", "medic-1"
REFERENCE = "北市警資字第1150000777號"
WIDE = {"viewport": {"width": 1280, "height": 900}}


async def console(browser, gateway, account: str, **options):
    page = await open_page(
        browser,
        gateway.url + "/admin",
        jwt(gateway, account, admin=account.startswith("admin")),
        **WIDE,
    )
    await expect(page.page.locator("#who")).to_have_text(account)
    return page


async def call(gateway, method: str, path: str, account: str, body=None) -> tuple[int, dict]:
    """(status, JSON) of an API call as `account` (an administrator when its name says so)."""
    headers = gateway.bearer(account, admin=account.startswith("admin"))
    response = await gateway.http.request(method, gateway.url + path, json=body, headers=headers)
    return response.status, await response.json()


async def test_liaison_approver_viewer_emergency_and_auditor_through_the_console(
    start_gateway, browser, tmp_path
):
    camera = camera_entry(
        "cam-a",
        "demo:testsrc",
        demo_size="320x240",
        demo_fps=15,
        name="臺北車站",
        district="中正區",
    )
    settings = settings_for(
        [camera],
        database=str(tmp_path / "gw.sqlite3"),
        governance={
            "police_liaisons": [LIAISON],
            "auditors": [AUDITOR],
            "emergency_accounts": [MEDIC],
        },
    )
    gateway = await start_gateway(settings, grant=False)

    # The police liaison records the consent: it is confirmed as it is recorded.
    liaison = await console(browser, gateway, LIAISON)
    lp = liaison.page
    await expect(lp.locator("[data-tab='sessions']")).to_be_hidden()
    await expect(lp.locator("[data-tab='authorizations']")).to_have_attribute(
        "aria-selected", "true"
    )
    await lp.click("#new-authorization")
    await lp.fill("#z-reference", REFERENCE)
    await lp.check("#z-cameras input[value='cam-a']")
    await lp.fill("#z-note", "元宵燈節")
    await lp.click("#authorization-form [type=submit]")
    consent_row = lp.locator("#authorization-table tbody tr", has_text=REFERENCE)
    await expect(consent_row).to_contain_text("已確認")

    # An administrator asks for a grant under it: it waits, and they cannot approve it.
    asker = await console(browser, gateway, ADMIN)
    ap = asker.page
    await ap.click("[data-tab='grants']")
    await ap.click("#new-grant")
    await ap.fill("#f-project", "2028 元宵燈節 中正區")
    await ap.fill("#f-purpose", "人流管制")
    await ap.fill("#f-members", VIEWER)
    await ap.check("#f-cameras input[value='cam-a']")
    await expect(ap.locator("#f-authorization_id option", has_text=REFERENCE)).to_have_count(1)
    await ap.click("#grant-form [type=submit]")
    grant_row = ap.locator("#grant-table tbody tr", has_text="2028 元宵燈節 中正區")
    await expect(grant_row).to_contain_text("待核准")
    waiting = ap.locator("#approvals > li", has_text="2028 元宵燈節 中正區")
    await expect(waiting).to_contain_text(f"申請者: {ADMIN}")
    await waiting.locator(".approve-grant").click()
    await expect(ap.locator("#banner")).to_contain_text("cannot approve")
    await expect(grant_row).to_contain_text("待核准")

    # A second administrator sees what it would open, and approves it.
    approver = await console(browser, gateway, SECOND)
    pp = approver.page
    request = pp.locator("#approvals > li", has_text="2028 元宵燈節 中正區")
    await expect(request).to_contain_text("新授權")
    await expect(request.locator("ul.diff")).to_contain_text(REFERENCE)
    await request.locator(".approve-grant").click()
    await expect(request).to_have_count(0)
    await expect(grant_row).to_contain_text("生效中")

    # The viewer watches.
    viewer = await open_viewer(browser, gateway)
    await viewer.page.click("#cameras button[data-camera='cam-a']")
    await assert_plays(viewer, "cam-a")

    # A widening change waits; the approver sees it as a diff.
    await grant_row.locator(".edit-grant").click()
    await ap.fill("#f-members", f"{VIEWER}\nviewer-2")
    await ap.click("#grant-form [type=submit]")
    change = pp.locator("#approvals > li", has_text="擴大變更")
    await expect(change.locator("ul.diff")).to_contain_text("+ 增加 viewer-2")
    await expect(grant_row).not_to_contain_text("viewer-2")

    # The liaison withdraws the consent: the tile goes down and stays down.
    await consent_row.locator(".withdraw-authorization").click()
    await lp.fill("#reason-input", "活動取消")
    await lp.click("#reason-confirm")
    await wait_state(viewer, "cam-a", "revoked", timeout=2)
    await expect(consent_row).to_contain_text("已撤回")
    await expect(change).to_have_count(0)  # nothing waits on a revoked grant

    # Emergency access: the camera opens for the stated danger, and every
    # administrator's and liaison's console hears it, with a banner and a sound.
    medic = await console(browser, gateway, MEDIC)
    mp = medic.page
    await expect(mp.locator("[data-tab='emergency']")).to_have_attribute("aria-selected", "true")
    await mp.fill("#e-danger", "河濱公園有人受困，水位上升")
    await mp.click("#emergency-form [type=submit]")
    await wait_state(medic, "cam-a", "live", timeout=15)
    for page in (lp, pp):
        await expect(page.locator("#alarm")).to_be_visible()
        await expect(page.locator("#alarm-text")).to_contain_text(f"緊急調閱：{MEDIC}")
        assert await page.evaluate("document.body.dataset.alarmSounded") == "1"
    await expect(lp.locator("#unreviewed > li")).to_contain_text("河濱公園有人受困")
    # The liaison ends it, then reviews it from the front page.
    await lp.click("[data-tab='emergency']")
    await lp.locator("#emergency-table .end-emergency").click()
    await lp.fill("#reason-input", "已救出")
    await lp.click("#reason-confirm")
    await wait_state(medic, "cam-a", "revoked", timeout=2)
    await lp.locator("#unreviewed .review-emergency").click()
    await lp.check("#review-dialog input[value='yes']")
    await lp.fill("#review-note", "確有急迫危險")
    await lp.click("#review-confirm")
    await expect(lp.locator("#unreviewed-box")).to_be_hidden()
    await expect(lp.locator("#emergency-table tbody tr")).to_contain_text("有正當理由")

    # A camera's privacy masks changed, and lifted for one grant and ended early: the
    # report lists both.
    lifted = gateway.grant(members=["viewer-3"], project="火警 中正區")
    mask = {"label": "住宅窗戶", "polygon": [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4]]}
    body = {"masks": [mask], "reason": "新建住宅面向路口"}
    assert (await call(gateway, "PUT", "/api/cameras/cam-a/masks", ADMIN, body))[0] == 200
    ask = {"grant_id": lifted.id, "reason": "火警窗後有人受困"}
    status, lift = await call(gateway, "POST", "/api/cameras/cam-a/masks/lifts", ADMIN, ask)
    assert status == 201, lift
    assert (await call(gateway, "POST", f"/api/mask-lifts/{lift['id']}/approve", SECOND))[0] == 200
    end = {"reason": "火已撲滅"}
    assert (await call(gateway, "POST", f"/api/mask-lifts/{lift['id']}/end", ADMIN, end))[0] == 200

    # The auditor reads the report in the console, and it prints.
    auditor = await console(browser, gateway, AUDITOR)
    up = auditor.page
    for tab, shown in [("sessions", False), ("grants", False), ("report", True), ("audit", True)]:
        locator = up.locator(f"[data-tab='{tab}']")
        await (expect(locator).to_be_visible() if shown else expect(locator).to_be_hidden())
    await up.click("[data-tab='report']")
    today = datetime.now(TAIPEI).date().isoformat()
    await up.fill("#r-from", today)
    await up.fill("#r-to", today)
    await up.click("#report-form [type=submit]")
    frame = up.frame_locator("#report-frame")
    await expect(frame.locator("h2", has_text="稽核鏈驗證")).to_be_visible()
    await expect(frame.locator("table").first).to_be_visible()
    html = await up.eval_on_selector("#report-frame", "frame => frame.srcdoc")
    assert (
        await up.eval_on_selector(
            "#report-frame",
            "f => getComputedStyle(f.contentDocument.querySelector('th')).borderStyle",
        )
        == "solid"
    ), "the report's own stylesheet did not apply in the console (CSP)"

    printing = await (await browser.new_context()).new_page()
    await printing.set_content(html)
    pdf = await printing.pdf(format="A4", print_background=True)
    (tmp_path / "report.pdf").write_bytes(pdf)
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    # Without spaces, and with the PDF's ligatures (ﬁ) as letters.
    squeezed = unicodedata.normalize("NFKC", "".join(text.split()))
    for expected in [
        "Policeauthorization",
        REFERENCE,
        "Grants",
        "Sessions",
        "Revocations",
        "Refusalssummarised",
        "Emergencyaccess",
        MEDIC,
        "Auditchainverification",
        LIAISON,
        SECOND,
        "Privacymaskchanges",
        "新建住宅面向路口",
        "Masklifts",
        "火警窗後有人受困",
        "火警中正區",
        "endedearly",
    ]:
        assert expected in squeezed, f"{expected!r} is not in the printed report"
    await gateway.app[STORE].flush(timeout=10)
    result = verify_database(gateway.app[STORE].path)
    assert result.ok, result.problem
    # The printed head is a row of the log as it is now (rows may have come since:
    # the report's own read, a session's end).
    seq = int(re.search(r"headrow:#(\d+)", squeezed).group(1))
    (row,) = [r for r in gateway.app[STORE].audit.query(limit=100_000) if r["seq"] == seq]
    assert row["hash"] in squeezed
    for page in (liaison, asker, approver, viewer, medic, auditor):
        await page.check_token_stays_out_of_urls()
    assert player("cam-a")


async def test_the_emergency_form_cannot_be_sent_before_its_cameras_have_arrived(
    start_gateway, browser
):
    """The camera list comes with /api/emergency: until it has arrived the submit is
    disabled (a click would have named no camera)."""
    camera = camera_entry("cam-a", "demo:testsrc", demo_size="160x120", demo_fps=10)
    settings = settings_for([camera], governance={"emergency_accounts": [MEDIC]})
    gateway = await start_gateway(settings, grant=False)
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(route):
        held.set()
        await release.wait()
        await route.continue_()

    context = await browser.new_context(**WIDE)
    await context.route(re.compile(r"/api/emergency$"), hold)
    page = await context.new_page()
    await page.goto(f"{gateway.url}/admin#token={jwt(gateway, MEDIC)}")
    await asyncio.wait_for(held.wait(), 15)
    submit = page.locator("#emergency-form [type=submit]")
    await expect(page.locator("#emergency-form")).to_be_visible()
    await expect(page.locator("#e-camera option")).to_have_count(0)
    await expect(submit).to_be_disabled()
    release.set()
    await expect(page.locator("#e-camera option")).to_have_count(1)
    await expect(submit).to_be_enabled()
    await context.close()
