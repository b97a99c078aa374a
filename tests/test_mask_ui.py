"""The console's privacy masks tab in real Chromium (issue 23): an administrator sees
the camera's live picture, draws a mask on it by clicking its corners, saves it with
a reason (a bad one is refused naming its field), and the picture is masked; a lift
asked for one grant there waits in every console's waiting box (Approve never shown to
its asker), is approved there by a second administrator, and ended early."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from playwright.async_api import expect
from support.chromium import jwt, open_page, player, screenshot, wait_state
from support.gateway import camera_entry, settings_for
from support.waiting import until
from test_masks import CAMERA, MIDDLE, MIDDLE_AND_CORNER, OPEN, box_of

from gateway.app import HUBS
from gateway.store import audit as events

pytestmark = pytest.mark.browser

ADMIN, SECOND = "admin-1", "admin-2"
CROSSED = [[0.1, 0.1], [0.4, 0.4], [0.4, 0.1], [0.1, 0.4]]


async def console(browser, gateway, account: str):
    opened = await open_page(
        browser,
        gateway.url + "/admin",
        jwt(gateway, account, admin=True),
        viewport={"width": 1280, "height": 900},
    )
    await expect(opened.page.locator("#who")).to_have_text(account)  # signed in
    await opened.page.click("[data-tab='masks']")
    return opened


async def draw(page, points: list[list[float]], label: str, index: int) -> None:
    """Click the mask's corners on the picture, in order, and name it."""
    box = await page.locator("#m-overlay").bounding_box()
    await page.click("#m-draw")
    for x, y in points:
        await page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
    await page.click("#m-finish")
    await page.fill(f"#m-list li[data-index='{index}'] input", label)


async def test_the_console_draws_a_mask_on_the_live_picture_and_a_second_person_approves_a_lift(
    make_rtsp_camera, start_gateway, browser
):
    camera = make_rtsp_camera(**CAMERA)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]), grant=False)
    gateway.grant(members=[ADMIN])  # an administrator watches under a grant, as anyone
    lifted = gateway.grant(members=["viewer-1"], project="火警 信義區")
    hub = gateway.app[HUBS].get("cam")

    first = await console(browser, gateway, ADMIN)
    page = first.page
    await wait_state(first, "cam", "live")
    # The overlay takes the picture's proportions, so a click's fraction is the picture's.
    await page.wait_for_function("document.querySelector('#m-stage').dataset.aspect === '320x240'")
    await draw(page, MIDDLE["polygon"], "住宅窗戶", 0)
    await draw(page, CROSSED, "交叉", 1)
    await page.fill("#m-reason", "新建住宅面向路口")
    await page.click("#m-save")
    # The gateway's 422 names the field; the console marks that mask; nothing changed.
    await expect(page.locator("#m-error")).to_have_attribute("data-field", "masks[1].polygon")
    await expect(page.locator("#m-error")).to_contain_text("self-intersecting")
    await expect(page.locator("#m-list li[data-index='1']")).to_have_class(re.compile("invalid"))
    assert hub.masks == ()
    await page.click("#m-list li[data-index='1'] .remove-mask")
    await page.click("#m-save")
    await until(lambda: len(hub.masks) == 1, 5, "the mask saved")
    (mask,) = hub.masks
    assert mask.label == "住宅窗戶" and mask.fill == "solid"
    for (x, y), (want_x, want_y) in zip(mask.polygon, MIDDLE["polygon"], strict=True):
        assert abs(x - want_x) < 0.01 and abs(y - want_y) < 0.01, mask.polygon
    (row,) = await gateway.audit(event=events.MASKS_CHANGED)
    assert row["account"] == ADMIN and row["detail"]["reason"] == "新建住宅面向路口"
    await expect(page.locator("#m-source")).to_contain_text("由管理者設定：admin-1")

    # The console's own picture is masked now, without a reconnect.
    async def masked() -> bool:
        arg = [player("cam"), box_of(MIDDLE), OPEN]
        sample = await page.evaluate(MIDDLE_AND_CORNER, arg)
        return sample["middle"]["brightest"] < 45 and sample["open"]["red"] > 100

    deadline = time.monotonic() + 5
    while not await masked():
        assert time.monotonic() < deadline, "the console's picture was not masked in 5 s"
        await asyncio.sleep(0.1)
    assert first.whep_posts() == 1
    await page.screenshot(path=screenshot("admin-masks.png"), full_page=True)

    # A lift for viewer-1's grant, asked here: the one who asked gets no Approve.
    await page.select_option("#m-grant", str(lifted.id))
    await page.fill("#m-lift-reason", "火警：窗後有人受困")
    await page.click("#m-ask-lift")
    waiting = page.locator("#m-lift-table tbody tr[data-status='waiting']")
    await expect(waiting).to_have_count(1)
    await expect(waiting.locator(".approve-lift")).to_have_count(0)
    # It waits where waiting grants wait, on every tab: the asker sees no Approve there.
    asked = page.locator("#approvals > li[data-lift]")
    await expect(asked).to_contain_text("暫時解除隱私遮蔽")
    await expect(asked).to_contain_text("火警 信義區")
    await expect(asked).to_contain_text(f"申請者: {ADMIN}")
    await expect(asked.locator(".approve-lift")).to_have_count(0)
    await expect(asked.locator(".decline-lift")).to_have_count(1)
    # A second administrator approves it from the waiting box of his console.
    second = await console(browser, gateway, SECOND)
    request = second.page.locator("#approvals > li[data-lift]")
    await expect(request).to_contain_text("火警：窗後有人受困")
    await second.page.screenshot(path=screenshot("admin-mask-lift-waiting.png"))
    await request.locator(".approve-lift").click()
    await until(lambda: hub.lifted_for == frozenset({lifted.id}), 5, "the lift in force")
    in_force = "#m-lift-table tbody tr[data-status='lifted']"
    await expect(second.page.locator(in_force)).to_have_count(1)
    # The first console hears it (masks_lifted) and shows it too; nothing waits now.
    await expect(page.locator(in_force)).to_have_count(1)
    for opened in (first, second):
        await expect(opened.page.locator("#approvals > li[data-lift]")).to_have_count(0)
    # The fire is out: the masks return now, with a reason.
    # The reason is asked in the console's own dialog, as for a grant's revocation.
    await page.locator(in_force).locator(".end-lift").click()
    await expect(page.locator("#reason-dialog")).to_be_visible()
    await expect(page.locator("#reason-title")).to_contain_text("提前恢復")
    await page.fill("#reason-input", "火已撲滅")
    await page.click("#reason-confirm")
    await until(lambda: hub.lifted_for == frozenset(), 5, "the masks back")
    await expect(page.locator("#m-lift-table tbody tr[data-status='ended']")).to_have_count(1)
    (ended,) = await gateway.audit(event=events.MASK_LIFT_ENDED)
    assert ended["detail"]["end_reason"] == "火已撲滅"

    # The tab speaks the console's language, redrawn on a change like every other tab.
    await page.click("#lang")
    await expect(page.locator("[data-tab='masks']")).to_have_text("Privacy masks")
    await expect(page.locator("#masks h2")).to_have_text("Privacy masks")
    await expect(page.locator("#m-save")).to_have_text("Save masks")
    await expect(page.locator("#m-lift-table thead")).to_contain_text("Asked by")
    ended_row = page.locator("#m-lift-table tbody tr[data-status='ended']")
    await expect(ended_row).to_contain_text("Restored")
    await expect(page.locator("#m-source")).to_contain_text("Set by an administrator: admin-1")
    await page.click("#lang")
    await expect(page.locator("[data-tab='masks']")).to_have_text("隱私遮蔽")
    for opened in (first, second):
        await opened.check_token_stays_out_of_urls()
