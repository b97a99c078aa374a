"""Privacy masks as data (issue 23, the control half): administrators read and change a
camera's masks through the API, each change audited first and stored, so it wins
over the configured masks and survives a restart; a lift for one grant, approved by a
second person, shows that grant's viewers the unmasked picture until it runs out.

The pictures are checked as tests/test_masks.py checks them: a real RTSP camera shows
checkers with its clock in the middle, and every frame a real aiortc viewer decodes is
checked pixel by pixel."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from typing import Any

from support.database_lock import hold_write_lock
from support.events import EventReader
from support.gateway import LIAISON, VIEWER, camera_entry, settings_for
from support.waiting import until
from test_masks import CAMERA, CORNER, MIDDLE, masked_within_a_second, watch

from gateway.app import HUBS, SESSIONS, STORE
from gateway.config import parse_masks
from gateway.control.masks import WHOLE_PICTURE
from gateway.store import audit as events
from gateway.store.verify import verify_database

ADMIN, SECOND = "admin-1", "admin-2"
WITHIN_SECONDS = 1.0
CROSSED = {"label": "x", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.8]]}
OUTSIDE = {**CORNER, "polygon": [[0, 0], [1.2, 0], [1, 1]]}


async def call(gateway, method: str, path: str, account: str, body: Any = None):
    """(status, JSON) of an API call as `account` (an administrator when its name says so)."""
    headers = gateway.bearer(account, admin=account.startswith("admin"))
    response = await gateway.http.request(method, gateway.url + path, json=body, headers=headers)
    text = await response.text()
    return response.status, (json.loads(text) if text.startswith(("{", "[")) else text)


def in_force(gateway, camera_id: str = "cam") -> tuple:
    return gateway.app[HUBS].get(camera_id).masks


async def test_masks_changed_through_the_api_are_audited_first_and_survive_a_restart(
    start_gateway, tmp_path
):
    database = str(tmp_path / "gw.sqlite3")
    entry = camera_entry("cam", "demo:testsrc", masks=[CORNER])
    settings = settings_for([entry], database=database, max_masks=4)
    gateway = await start_gateway(settings, grant=False)

    status, found = await call(gateway, "GET", "/api/cameras/cam/masks", ADMIN)
    assert status == 200, found
    assert (found["source"], found["masks"]) == ("configured", [CORNER])

    # Bad masks: 422 naming the field, and nothing changes.
    for masks, field in [
        ([CROSSED], "masks[0].polygon"),
        ([MIDDLE, OUTSIDE], "masks[1].polygon"),
        ([MIDDLE] * 5, "masks"),
    ]:
        status, refused = await call(
            gateway, "PUT", "/api/cameras/cam/masks", ADMIN, {"masks": masks, "reason": "x"}
        )
        assert (status, refused["code"], refused["field"]) == (422, "invalid_mask", field)
        assert refused["error"].startswith(field + ": ")
    status, refused = await call(gateway, "PUT", "/api/cameras/cam/masks", ADMIN, {"masks": []})
    assert (status, refused["field"]) == (422, "reason")
    status, refused = await call(
        gateway, "PUT", "/api/cameras/cam/masks", "viewer-1", {"masks": [], "reason": "x"}
    )
    assert status == 403
    status, refused = await call(
        gateway, "PUT", "/api/cameras/nope/masks", ADMIN, {"masks": [], "reason": "x"}
    )
    assert (status, refused["code"]) == (404, "unknown_camera")
    assert in_force(gateway) == parse_masks([CORNER], 4)
    assert await gateway.audit(event=events.MASKS_CHANGED) == []
    response = await gateway.http.get(
        gateway.url + "/api/cameras", headers=gateway.bearer(ADMIN, admin=True)
    )
    (feature,) = (await response.json())["features"]
    assert feature["properties"]["masked"] is True

    # A change: audited (who, camera, before, after, why), stored, in force.
    body = {"masks": [MIDDLE], "reason": "住宅窗戶 seen from the new pole"}
    status, changed = await call(gateway, "PUT", "/api/cameras/cam/masks", ADMIN, body)
    assert status == 200, changed
    assert (changed["source"], changed["masks"], changed["changed_by"]) == (
        "administrator",
        [MIDDLE],
        ADMIN,
    )
    assert changed["configured"] == [CORNER]
    assert in_force(gateway) == parse_masks([MIDDLE], 4)
    (row,) = await gateway.audit(event=events.MASKS_CHANGED)
    assert (row["account"], row["camera_id"]) == (ADMIN, "cam")
    assert row["detail"] == {"before": [CORNER], "after": [MIDDLE], "reason": body["reason"]}

    # The audit row cannot be written: the change is refused and nothing changes.
    holder = await hold_write_lock(database, 4)
    try:
        status, refused = await call(
            gateway, "PUT", "/api/cameras/cam/masks", ADMIN, {"masks": [], "reason": "x"}
        )
        assert (status, refused["code"]) == (503, "audit_unavailable"), refused
        assert in_force(gateway) == parse_masks([MIDDLE], 4)
    finally:
        holder.wait(10)
    status, found = await call(gateway, "GET", "/api/cameras/cam/masks", ADMIN)
    assert found["masks"] == [MIDDLE]
    assert len(await gateway.audit(event=events.MASKS_CHANGED)) == 1

    # A restart (another gateway on the same database): the stored masks win over
    # the configured ones.
    again = await start_gateway(settings_for([entry], database=database, max_masks=4))
    assert in_force(again) == parse_masks([MIDDLE], 4)
    status, found = await call(again, "GET", "/api/cameras/cam/masks", SECOND)
    assert (found["source"], found["masks"], found["reason"]) == (
        "administrator",
        [MIDDLE],
        body["reason"],
    )
    await gateway.app[STORE].flush(timeout=10)
    result = verify_database(database)
    assert result.ok, result.problem

    # Stored masks that cannot be read (written by hand): the whole picture is hidden,
    # never the configured masks alone (fail closed).
    with sqlite3.connect(database) as db:
        db.execute('UPDATE camera_masks SET masks = \'[{"label": ""}]\'')
    unreadable = await start_gateway(settings_for([entry], database=database, max_masks=4))
    assert in_force(unreadable) == (WHOLE_PICTURE,)


async def test_masks_put_while_a_viewer_watches_show_within_a_second(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(**CAMERA)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    watcher = await watch(gateway, masks=[])
    assert watcher.arrivals[-1][1], "the middle shows"
    (session,) = gateway.app[SESSIONS]

    asked = time.monotonic()
    body = {"masks": [MIDDLE], "reason": "a window"}
    status, changed = await call(gateway, "PUT", "/api/cameras/cam/masks", ADMIN, body)
    assert status == 200, changed
    await masked_within_a_second(gateway, watcher, session, asked, "the PUT was sent")


async def test_a_lift_approved_by_a_second_person_shows_one_grant_the_picture_until_it_runs_out(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(**CAMERA)
    entry = camera_entry("cam", camera.url, masks=[MIDDLE])
    settings = settings_for([entry], governance={"mask_lift_minutes": 0.1})  # 6 s
    gateway = await start_gateway(settings, grant=False)
    lifted = gateway.grant(members=["viewer-1"])
    other = gateway.grant(members=["viewer-2"])
    a = await watch(gateway, masks=[MIDDLE])
    b = await watch(gateway, masks=[MIDDLE], account="viewer-2")

    async with (
        EventReader(gateway, "viewer-1") as heard,
        EventReader(gateway, "viewer-2") as not_heard,
    ):
        # Asked with a reason; the one who asked cannot approve, nor can a viewer.
        path = "/api/cameras/cam/masks/lifts"
        status, refused = await call(gateway, "POST", path, ADMIN, {"grant_id": lifted.id})
        assert (status, refused["field"]) == (422, "reason")
        ask = {"grant_id": lifted.id, "reason": "火警: 窗後有人受困"}
        status, lift = await call(gateway, "POST", path, ADMIN, ask)
        assert status == 201 and lift["status"] == "waiting", lift
        approve = f"/api/mask-lifts/{lift['id']}/approve"
        status, refused = await call(gateway, "POST", approve, ADMIN)
        assert (status, refused["code"]) == (403, "self_approval")
        status, refused = await call(gateway, "POST", approve, "viewer-1")
        assert status == 403
        assert gateway.app[HUBS].get("cam").lifted_for == frozenset()

        # A second person approves: the grant's viewer sees the middle within a second.
        a.masks = []  # during the lift, viewer-1's picture is not checked against the mask
        started = time.monotonic()
        status, approved = await call(gateway, "POST", approve, SECOND)
        assert status == 200 and approved["status"] == "lifted", approved
        assert approved["decided_by"] == SECOND
        ends = started + 6.0
        await until(lambda: a.arrivals[-1][1], 5, "the unmasked picture for the lifted grant")
        shown = next(t for t, shows in a.arrivals if t > started and shows)
        assert shown - started < WITHIN_SECONDS
        event = await heard.wait_for("masks_lifted")
        assert event == {
            "type": "masks_lifted",
            "camera_id": "cam",
            "grant_id": lifted.id,
            "until": approved["until"],
        }
        assert datetime.fromisoformat(event["until"]).tzinfo is not None
        # A page that opens during the lift hears it after its hello; another grant's not.
        async with (
            EventReader(gateway, "viewer-1") as late,
            EventReader(gateway, "viewer-2") as late_other,
        ):
            assert await late.wait_for("masks_lifted") == event
            assert "masks_lifted" not in {e["type"] for e in late_other.events}
        # Approved once only.
        status, refused = await call(gateway, "POST", approve, SECOND)
        assert (status, refused["code"]) == (409, "nothing_pending")

        # The time runs out: the mask is back within a second, without a reconnect.
        await until(lambda: time.monotonic() > ends and not a.arrivals[-1][1], 8, "the mask back")
        back = next(t for t, shows in a.arrivals if t > ends and not shows)
        print(f"lifted after {shown - started:.3f} s, masked {back - ends:.3f} s after expiry")
        assert back - ends < WITHIN_SECONDS
        restored = await heard.wait_for("masks_restored", timeout=5)
        assert restored == {"type": "masks_restored", "camera_id": "cam", "grant_id": lifted.id}
        kinds = {e["type"] for e in not_heard.events}
        assert not kinds & {"masks_lifted", "masks_restored"}, kinds
    seen = len(a.arrivals)
    assert await a.viewer.wait_frames(10)
    assert not any(shows for _, shows in a.arrivals[seen:])
    assert b.problems == [], "the other grant's viewer saw the picture unmasked"
    assert len(gateway.app[SESSIONS]) == 2 and not a.viewer.closed.is_set()

    # A declined lift: written down with its reason; it cannot be approved after.
    ask = {"grant_id": other.id, "reason": "想看看"}
    status, lift = await call(gateway, "POST", "/api/cameras/cam/masks/lifts", ADMIN, ask)
    assert status == 201, lift
    decline = f"/api/mask-lifts/{lift['id']}/decline"
    status, declined = await call(gateway, "POST", decline, SECOND, {"reason": "沒有危險"})
    assert status == 200 and declined["status"] == "declined", declined
    status, refused = await call(gateway, "POST", f"/api/mask-lifts/{lift['id']}/approve", SECOND)
    assert (status, refused["code"]) == (409, "nothing_pending")

    # A lift ended early, before its time: the mask is back within a second.
    ask = {"grant_id": lifted.id, "reason": "再次火警"}
    status, lift = await call(gateway, "POST", "/api/cameras/cam/masks/lifts", ADMIN, ask)
    a.masks = []
    status, approved = await call(gateway, "POST", f"/api/mask-lifts/{lift['id']}/approve", SECOND)
    assert status == 200, approved
    await until(lambda: a.arrivals[-1][1], 5, "the unmasked picture again")
    async with EventReader(gateway, "viewer-1") as heard:
        ended_at = time.monotonic()
        end = f"/api/mask-lifts/{lift['id']}/end"
        status, ended = await call(gateway, "POST", end, ADMIN, {"reason": "火已撲滅"})
        assert status == 200 and ended["status"] == "ended", ended
        assert (ended["ended_by"], ended["end_reason"]) == (ADMIN, "火已撲滅")
        await until(lambda: not a.arrivals[-1][1], 5, "the mask back")
        back = next(t for t, shows in a.arrivals if t > ended_at and not shows)
        print(f"masked {back - ended_at:.3f} s after the lift was ended")
        assert back - ended_at < WITHIN_SECONDS
        restored = await heard.wait_for("masks_restored")
        assert restored == {"type": "masks_restored", "camera_id": "cam", "grant_id": lifted.id}
    assert gateway.app[HUBS].get("cam").lifted_for == frozenset()
    status, refused = await call(gateway, "POST", end, ADMIN, {"reason": "again"})
    assert (status, refused["code"]) == (409, "nothing_pending")

    status, listing = await call(gateway, "GET", "/api/mask-lifts", SECOND)
    assert [x["status"] for x in listing["lifts"]] == ["ended", "declined", "ended"]

    rows = list(reversed(await gateway.audit(camera_id="cam")))  # oldest first
    steps = [(r["event"], r["account"]) for r in rows if r["event"].startswith("mask_lift")]
    assert steps == [
        (events.MASK_LIFT_REQUESTED, ADMIN),
        (events.MASK_LIFT_APPROVED, SECOND),
        (events.MASK_LIFT_EXPIRED, None),
        (events.MASK_LIFT_REQUESTED, ADMIN),
        (events.MASK_LIFT_DECLINED, SECOND),
        (events.MASK_LIFT_REQUESTED, ADMIN),
        (events.MASK_LIFT_APPROVED, SECOND),
        (events.MASK_LIFT_ENDED, ADMIN),
    ]
    assert rows[-4]["detail"]["decline_reason"] == "沒有危險"
    assert rows[-1]["detail"]["end_reason"] == "火已撲滅"
    for watcher in (a, b):
        await watcher.viewer.close(gateway.http)


async def test_waiting_lifts_are_listed_with_the_grants_that_wait_for_approval(start_gateway):
    """GET /api/approvals, what the console's waiting box reads, lists every lift that
    waits for a second person (with its grant's project), for administrators, liaisons
    and auditors; a lift decided, or on a grant that admits nobody now, is not there."""
    entry = camera_entry("cam", "demo:testsrc", demo_size="160x120", demo_fps=10, masks=[MIDDLE])
    governance = {"police_liaisons": [LIAISON], "auditors": ["auditor-1"]}
    gateway = await start_gateway(settings_for([entry], governance=governance), grant=False)
    fire = gateway.grant(members=["viewer-1"], project="火警 信義區")
    old = gateway.grant(members=["viewer-2"], project="舊案")
    path = "/api/cameras/cam/masks/lifts"
    _, first = await call(gateway, "POST", path, ADMIN, {"grant_id": fire.id, "reason": "火警"})
    _, second = await call(gateway, "POST", path, ADMIN, {"grant_id": old.id, "reason": "舊案"})
    status, waiting = await call(gateway, "GET", "/api/approvals", ADMIN)
    assert status == 200 and waiting["grants"] == []
    assert [(w["id"], w["project"]) for w in waiting["mask_lifts"]] == [
        (first["id"], "火警 信義區"),
        (second["id"], "舊案"),
    ]
    (shown, _) = waiting["mask_lifts"]
    assert (shown["camera_id"], shown["grant_id"], shown["asked_by"], shown["reason"]) == (
        "cam",
        fire.id,
        ADMIN,
        "火警",
    )
    assert shown["status"] == "waiting"
    for account in (LIAISON, "auditor-1"):
        status, seen = await call(gateway, "GET", "/api/approvals", account)
        assert status == 200 and seen["mask_lifts"] == waiting["mask_lifts"], account
    status, refused = await call(gateway, "GET", "/api/approvals", VIEWER)
    assert (status, refused["code"]) == (403, "role_required")

    # The old grant is revoked: its lift can no longer be approved, and is not listed.
    revoke = f"/api/grants/{old.id}/revoke"
    status, _ = await call(gateway, "POST", revoke, ADMIN, {"reason": "結案"})
    assert status == 200
    _, waiting = await call(gateway, "GET", "/api/approvals", ADMIN)
    assert [w["id"] for w in waiting["mask_lifts"]] == [first["id"]]
    # Approved: nothing waits.
    status, _ = await call(gateway, "POST", f"/api/mask-lifts/{first['id']}/approve", SECOND)
    assert status == 200
    _, waiting = await call(gateway, "GET", "/api/approvals", ADMIN)
    assert waiting["mask_lifts"] == []


async def test_an_inventory_reload_keeps_the_masks_an_administrator_set(start_gateway, tmp_path):
    inventory = tmp_path / "cameras.csv"

    def write(masks: list[dict]) -> None:
        cell = json.dumps(masks).replace('"', '""')
        inventory.write_text(
            f'id,name,lat,lon,source,masks\ncam,A,25.0,121.5,demo:testsrc,"{cell}"\n'
            f"other,B,25.0,121.5,demo:testsrc,\n"
        )

    write([CORNER])
    settings = settings_for([], tables={"inventory": {"file": str(inventory)}})
    gateway = await start_gateway(settings, grant=False)
    body = {"masks": [MIDDLE], "reason": "the inventory's mask misses the window"}
    status, changed = await call(gateway, "PUT", "/api/cameras/cam/masks", ADMIN, body)
    assert status == 200, changed

    write([CORNER, MIDDLE])  # the inventory changes this camera's masks
    status, reloaded = await call(gateway, "POST", "/api/inventory/reload", ADMIN)
    assert status == 200, reloaded
    assert in_force(gateway) == parse_masks([MIDDLE], 16)
    status, found = await call(gateway, "GET", "/api/cameras/cam/masks", ADMIN)
    assert (found["source"], found["configured"]) == ("administrator", [CORNER, MIDDLE])
    assert in_force(gateway, "other") == ()


async def test_a_lift_survives_a_restart_and_ends_at_once_while_the_database_is_locked(
    start_gateway, tmp_path
):
    database = str(tmp_path / "gw.sqlite3")
    entry = camera_entry("cam", "demo:testsrc", masks=[MIDDLE])
    settings = settings_for([entry], database=database, governance={"mask_lift_minutes": 5})
    gateway = await start_gateway(settings, grant=False)
    grant = gateway.grant(members=["viewer-1"])
    ask = {"grant_id": grant.id, "reason": "火警"}
    status, lift = await call(gateway, "POST", "/api/cameras/cam/masks/lifts", ADMIN, ask)
    status, approved = await call(gateway, "POST", f"/api/mask-lifts/{lift['id']}/approve", SECOND)
    assert status == 200, approved
    assert gateway.app[HUBS].get("cam").lifted_for == frozenset({grant.id})

    # A restart during the lift: read again at start-up, until its time.
    again = await start_gateway(settings, grant=False)
    assert again.app[HUBS].get("cam").lifted_for == frozenset({grant.id})

    # Ended while another process holds the write lock: the masks are back at once;
    # the caller hears that only the record waits, and it lands after.
    holder = await hold_write_lock(database, 4)
    try:
        end = f"/api/mask-lifts/{lift['id']}/end"
        status, pending = await call(gateway, "POST", end, ADMIN, {"reason": "火已撲滅"})
        assert (status, pending["code"]) == (503, "record_pending"), pending
        assert gateway.app[HUBS].get("cam").lifted_for == frozenset()
    finally:
        holder.wait(10)
    (row,) = await gateway.audit(event=events.MASK_LIFT_ENDED)
    assert (row["account"], row["grant_id"], row["detail"]["end_reason"]) == (
        ADMIN,
        grant.id,
        "火已撲滅",
    )
