"""The chain of consent (issue 22), through the API of a real gateway with real
viewers: police authorizations, two pairs of eyes, withdrawal, emergency access,
the report, the adoption of old references, and `gateway audit verify` after all
of it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.database_lock import hold_write_lock
from support.events import EventReader
from support.gateway import LIAISON, VIEWER, camera_entry, settings_for

from gateway.app import SESSIONS, STORE
from gateway.control.report import TAIPEI, make, period
from gateway.store import audit as events
from gateway.store.database import open_database, schema_version
from gateway.store.schema import SQLITE, latest
from gateway.store.verify import verify_database

ADMIN, SECOND = "admin-1", "admin-2"
MEDIC = "medic-1"  # allowed emergency access
GOVERNANCE = {
    "police_liaisons": [LIAISON],
    "auditors": ["auditor-1"],
    "emergency_accounts": [MEDIC],
    "emergency_cameras": 1,
}
WITHIN_SECONDS = 1.0
MASK = {"label": "住宅窗戶", "polygon": [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4]], "fill": "solid"}


def demo_cameras(*ids: str) -> list[dict]:
    return [
        camera_entry(i, "demo:testsrc", demo_size="160x120", demo_fps=10, district="信義區")
        for i in ids
    ]


async def consent_gateway(start_gateway, tmp_path: Path, **governance: Any):
    settings = settings_for(
        demo_cameras("cam-a", "cam-b"),
        database=str(tmp_path / "gw.sqlite3"),
        governance=GOVERNANCE | governance,
    )
    return await start_gateway(settings, grant=False)


async def call(gateway, method: str, path: str, account: str, body: Any = None, **kw: Any):
    """(status, JSON) of an API call as `account` (an administrator when its name says so)."""
    headers = gateway.bearer(account, admin=account.startswith("admin"))
    response = await gateway.http.request(
        method, gateway.url + path, json=body, headers=headers, **kw
    )
    text = await response.text()
    return response.status, (json.loads(text) if text.startswith(("{", "[")) else text)


def window(start_hours: float, end_hours: float) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now + timedelta(hours=start_hours)).isoformat(),
        "ends_at": (now + timedelta(hours=end_hours)).isoformat(),
    }


def consent_body(**fields: Any) -> dict[str, Any]:
    return {
        "reference": "北市警資字第1150000001號",
        "cameras": ["cam-a"],
        "purpose_class": "legal_duty",
        "note": "跨年晚會",
        **window(-1, 24),
    } | fields


def grant_body(authorization_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "project": "2027 跨年 信義區",
        "purpose": "人潮管理",
        "authorization_id": authorization_id,
        "members": [VIEWER],
        "cameras": ["cam-a"],
        **window(-0.5, 4),
    } | fields


async def offer(gateway, camera_id: str = "cam-a", account: str = VIEWER):
    viewer = gateway.viewer(camera_id, account)
    response = await viewer.connect(gateway.http)
    body = await response.text()
    return viewer, response.status, (json.loads(body) if response.status != 201 else None)


async def verified(gateway) -> None:
    """`gateway audit verify` (the function the command runs) finds it all intact."""
    await gateway.app[STORE].flush(timeout=10)
    result = verify_database(gateway.app[STORE].path)
    assert result.ok, result.problem
    assert result.records_checked >= 1


async def test_consent_two_pairs_of_eyes_and_a_withdrawal_that_ends_the_viewer(
    start_gateway, tmp_path
):
    gateway = await consent_gateway(start_gateway, tmp_path)
    status, consent = await call(gateway, "POST", "/api/authorizations", LIAISON, consent_body())
    assert status == 201, consent
    assert consent["status"] == "confirmed" and consent["confirmed_by"] == LIAISON

    status, grant = await call(gateway, "POST", "/api/grants", ADMIN, grant_body(consent["id"]))
    assert status == 201 and grant["status"] == "pending", grant
    assert grant["approval"]["asked_by"] == [ADMIN]
    viewer, status, refused = await offer(gateway)
    assert (status, refused["code"]) == (403, "grant_pending")  # a pending grant admits nobody

    # The one who asked cannot approve: refused with its code, nothing changed.
    status, body = await call(gateway, "POST", f"/api/grants/{grant['id']}/approve", ADMIN)
    assert (status, body["code"]) == (403, "self_approval")
    status, unchanged = await call(gateway, "GET", f"/api/grants/{grant['id']}", ADMIN)
    assert unchanged["status"] == "pending" and unchanged["approved_by"] is None
    assert await gateway.audit(event=events.GRANT_APPROVED) == []
    # A viewer is no approver either.
    status, body = await call(gateway, "POST", f"/api/grants/{grant['id']}/approve", VIEWER)
    assert (status, body["code"]) == (403, "role_required")

    status, approved = await call(gateway, "POST", f"/api/grants/{grant['id']}/approve", SECOND)
    assert status == 200 and approved["status"] == "active", approved
    assert approved["approved_by"] == SECOND
    viewer, status, _ = await offer(gateway)
    assert status == 201 and await viewer.wait_frames(2)

    # Widening waits, with the change as a diff; narrowing takes effect at once.
    status, widened = await call(
        gateway,
        "PATCH",
        f"/api/grants/{grant['id']}",
        ADMIN,
        {"members": [VIEWER, "viewer-2"]},
    )
    assert status == 200, widened
    assert widened["members"] == [VIEWER] and widened["status"] == "active"
    assert widened["approval"]["diff"] == {"members": {"added": ["viewer-2"], "removed": []}}
    status, waiting = await call(gateway, "GET", "/api/approvals", LIAISON)
    assert [g["id"] for g in waiting["grants"]] == [grant["id"]]
    _, status, refused = await offer(gateway, account="viewer-2")
    assert refused["code"] == "no_grant"  # not until approved
    # Outside the consent (cam-b): refused naming the field; nothing changed.
    status, body = await call(
        gateway, "PATCH", f"/api/grants/{grant['id']}", ADMIN, {"cameras": ["cam-a", "cam-b"]}
    )
    assert (status, body["code"], body["field"]) == (422, "outside_authorization", "cameras")

    # The police withdraw their consent: the viewer's session ends within a second.
    async with EventReader(gateway) as heard:
        started = time.monotonic()
        status, withdrawn = await call(
            gateway,
            "POST",
            f"/api/authorizations/{consent['id']}/withdraw",
            LIAISON,
            {"reason": "活動取消"},
        )
        assert status == 200 and withdrawn["status"] == "withdrawn", withdrawn
        ended = await heard.wait_for("session_ended", timeout=WITHIN_SECONDS)
        assert time.monotonic() - started <= WITHIN_SECONDS
    assert ended["code"] == "authorization_withdrawn"
    assert len(gateway.app[SESSIONS]) == 0
    _, status, refused = await offer(gateway)
    assert (status, refused["code"]) == (403, "authorization_withdrawn")
    status, after = await call(gateway, "GET", f"/api/grants/{grant['id']}", ADMIN)
    assert after["status"] == "revoked" and after["revoked_by"] == LIAISON
    # Written down before it took effect: the withdrawal, then the grant it ended.
    rows = [r["event"] for r in reversed(await gateway.audit())]
    assert rows.index(events.AUTHORIZATION_WITHDRAWN) < rows.index(events.GRANT_REVOKED)
    assert rows.index(events.AUTHORIZATION_WITHDRAWN) < rows.index("session_end")
    await viewer.close()
    await verified(gateway)


async def test_grants_outside_or_after_their_authorization_are_refused_and_change_nothing(
    start_gateway, tmp_path
):
    gateway = await consent_gateway(start_gateway, tmp_path)
    _, consent = await call(gateway, "POST", "/api/authorizations", LIAISON, consent_body())
    for fields, field in [
        ({"cameras": ["cam-a", "cam-b"]}, "cameras"),
        (window(-2, 3), "starts_at"),
        (window(1, 30), "ends_at"),
    ]:
        status, body = await call(
            gateway, "POST", "/api/grants", ADMIN, grant_body(consent["id"], **fields)
        )
        assert (status, body["code"], body["field"]) == (422, "outside_authorization", field)
    # An authorization whose validity is over takes no grant.
    _, old = await call(
        gateway,
        "POST",
        "/api/authorizations",
        LIAISON,
        consent_body(reference="舊", **window(-5, -1)),
    )
    status, body = await call(gateway, "POST", "/api/grants", ADMIN, grant_body(old["id"]))
    assert (status, body["code"], body["field"]) == (
        422,
        "authorization_expired",
        "authorization_id",
    )
    status, listed = await call(gateway, "GET", "/api/grants", ADMIN)
    assert listed["grants"] == []  # nothing changed
    assert await gateway.audit(event=events.GRANT_CREATED) == []

    # An administrator enters one for a liaison: unconfirmed until a liaison confirms.
    status, entered = await call(
        gateway,
        "POST",
        "/api/authorizations",
        ADMIN,
        consent_body(
            reference="北市警資字第1150000002號",
            on_behalf_of=LIAISON,
            districts=["信義區"],
            cameras=[],
        ),
    )
    assert status == 201 and entered["status"] == "unconfirmed", entered
    status, body = await call(
        gateway, "POST", f"/api/authorizations/{entered['id']}/confirm", ADMIN
    )
    assert (status, body["code"]) == (403, "role_required")  # only a liaison confirms
    status, body = await call(
        gateway, "POST", f"/api/authorizations/{entered['id']}/withdraw", ADMIN, {"reason": "x"}
    )
    assert (status, body["code"]) == (403, "role_required")  # ... or withdraws
    status, confirmed = await call(
        gateway, "POST", f"/api/authorizations/{entered['id']}/confirm", LIAISON
    )
    assert confirmed["status"] == "confirmed" and confirmed["confirmed_by"] == LIAISON
    # A district's consent covers the district's cameras.
    status, grant = await call(
        gateway, "POST", "/api/grants", ADMIN, grant_body(entered["id"], cameras=["cam-a", "cam-b"])
    )
    assert status == 201, grant
    status, body = await call(gateway, "GET", "/api/authorizations", VIEWER)
    assert (status, body["code"]) == (403, "role_required")
    status, body = await call(gateway, "GET", "/api/authorizations", "auditor-1")
    assert status == 200 and [g["id"] for g in body["authorizations"][0]["grants"]] == [grant["id"]]
    await verified(gateway)


async def test_emergency_access_is_heard_limited_ended_and_reviewed(start_gateway, tmp_path):
    gateway = await consent_gateway(start_gateway, tmp_path)
    async with (
        EventReader(gateway, LIAISON) as liaison,
        EventReader(gateway, ADMIN, admin=True) as admin,
    ):
        # Past its minutes: refused with its code, nothing changed.
        status, body = await call(
            gateway, "POST", "/api/emergency/cam-a", MEDIC, {"danger": "有人受困", "minutes": 31}
        )
        assert (status, body["code"], body["field"]) == (422, "emergency_too_long", "minutes")
        assert await gateway.audit(event=events.EMERGENCY_ACCESS) == []
        _, status, refused = await offer(gateway, account=MEDIC)
        assert refused["code"] == "no_grant"
        status, body = await call(gateway, "POST", "/api/emergency/cam-a", VIEWER, {"danger": "x"})
        assert (status, body["code"]) == (403, "role_required")

        status, opened = await call(
            gateway, "POST", "/api/emergency/cam-a", MEDIC, {"danger": "河濱有人受困，水位上升"}
        )
        assert status == 201 and opened["whep"] == "/whep/cam-a", opened
        emergency = opened["emergency"]
        for console in (liaison, admin):  # every liaison's and administrator's console hears it
            heard = await console.wait_for("emergency_started")
            assert heard["emergency"]["id"] == emergency["id"]
        viewer, status, _ = await offer(gateway, account=MEDIC)  # then WHEP as usual
        assert status == 201 and await viewer.wait_frames(2)
        (session,) = gateway.app[SESSIONS]
        assert session.viewer.emergency_id == emergency["id"]
        ends = datetime.fromisoformat(emergency["ends_at"].replace("Z", "+00:00"))
        assert session.window_ends_at == ends  # it ends at its minutes, whatever happens
        assert ends - datetime.fromisoformat(emergency["starts_at"].replace("Z", "+00:00")) == (
            timedelta(minutes=30)
        )
        status, body = await call(gateway, "POST", "/api/emergency/cam-b", MEDIC, {"danger": "x"})
        assert (status, body["code"]) == (429, "too_many")  # emergency_cameras = 1

        # A liaison ends it: the session closes within a second, and it stays closed.
        started = time.monotonic()
        status, ended = await call(
            gateway, "POST", f"/api/emergency/{emergency['id']}/end", LIAISON, {"reason": "已救出"}
        )
        assert status == 200 and ended["status"] == "ended"
        await viewer.closed.wait()
        assert time.monotonic() - started <= WITHIN_SECONDS
        _, status, refused = await offer(gateway, account=MEDIC)
        assert (status, refused["code"]) == (403, "emergency_ended")

    # Reviewed: justified or not, with a note; its own user never reviews it.
    status, body = await call(
        gateway,
        "POST",
        f"/api/emergency/{emergency['id']}/review",
        MEDIC,
        {"justified": True, "note": "x"},
    )
    assert (status, body["code"]) == (403, "role_required")
    status, listed = await call(gateway, "GET", "/api/emergency", "auditor-1")
    assert [e["justified"] for e in listed["emergencies"]] == [None]
    status, reviewed = await call(
        gateway,
        "POST",
        f"/api/emergency/{emergency['id']}/review",
        LIAISON,
        {"justified": True, "note": "確有急迫危險"},
    )
    assert status == 200 and reviewed["justified"] is True and reviewed["reviewed_by"] == LIAISON
    (start_row,) = await gateway.audit(event="session_start")
    assert start_row["detail"]["emergency_id"] == emergency["id"]
    await viewer.close()
    await verified(gateway)


async def test_the_report_tells_the_whole_chain_and_ends_with_the_verified_head(
    start_gateway, tmp_path
):
    gateway = await consent_gateway(start_gateway, tmp_path)
    _, consent = await call(gateway, "POST", "/api/authorizations", LIAISON, consent_body())
    _, grant = await call(gateway, "POST", "/api/grants", ADMIN, grant_body(consent["id"]))
    await call(gateway, "POST", f"/api/grants/{grant['id']}/approve", SECOND)
    viewer, status, _ = await offer(gateway)
    assert status == 201 and await viewer.wait_frames(2)
    await viewer.close(gateway.http)
    await offer(gateway, "cam-b")  # refused: no grant names cam-b
    _, opened = await call(gateway, "POST", "/api/emergency/cam-b", MEDIC, {"danger": "火警"})
    # Privacy masks: one set on cam-a, then lifted for the grant (approved by a second
    # person, ended early), and a second lift declined.
    masks = {"masks": [MASK], "reason": "新建住宅面向路口"}
    status, _ = await call(gateway, "PUT", "/api/cameras/cam-a/masks", ADMIN, masks)
    assert status == 200
    ask = {"grant_id": grant["id"], "reason": "火警：窗後有人受困"}
    _, lift = await call(gateway, "POST", "/api/cameras/cam-a/masks/lifts", ADMIN, ask)
    status, approved = await call(gateway, "POST", f"/api/mask-lifts/{lift['id']}/approve", SECOND)
    assert status == 200
    end = {"reason": "火已撲滅"}
    status, _ = await call(gateway, "POST", f"/api/mask-lifts/{lift['id']}/end", ADMIN, end)
    assert status == 200
    ask = {"grant_id": grant["id"], "reason": "想看看"}
    _, asked = await call(gateway, "POST", "/api/cameras/cam-a/masks/lifts", ADMIN, ask)
    decline = {"reason": "沒有危險"}
    await call(gateway, "POST", f"/api/mask-lifts/{asked['id']}/decline", SECOND, decline)
    await call(
        gateway,
        "POST",
        f"/api/authorizations/{consent['id']}/withdraw",
        LIAISON,
        {"reason": "結束"},
    )
    await gateway.app[STORE].flush(timeout=10)

    today = datetime.now(TAIPEI).date().isoformat()  # a bare date is a day in Taipei
    since, until = period(today, today)
    data = json.loads(make(gateway.app[STORE].path, since, until, None, "json", "second_admin"))
    (project,) = data["projects"]
    assert project["project"] == "2027 跨年 信義區"
    (authorization,) = project["authorizations"]
    assert (authorization["reference"], authorization["confirmed_by"]) == (
        consent["reference"],
        LIAISON,
    )
    (reported,) = project["grants"]
    assert (reported["created_by"], reported["approved_by"]) == (ADMIN, SECOND)
    assert [h["event"] for h in reported["history"]] == [
        "grant_created",
        "grant_approved",
        "grant_revoked",
    ]
    (sessions,) = project["sessions"]
    assert (sessions["account"], sessions["camera_id"], sessions["sessions"]) == (
        VIEWER,
        "cam-a",
        1,
    )
    assert sessions["seconds"] > 0
    assert [r["event"] for r in project["revocations"]] == ["grant_revoked"]
    assert data["refusals_without_project"] == [{"code": "no_grant", "count": 1}]
    assert [a["reference"] for a in data["withdrawals"]] == [consent["reference"]]
    (urgent,) = data["emergencies"]
    assert (urgent["id"], urgent["justified"]) == (opened["emergency"]["id"], None)
    # Mask changes: camera, who, when, how many before and after, why.
    (changed,) = data["mask_changes"]
    assert changed["at"].startswith(today[:4])
    assert {k: changed[k] for k in ("camera_id", "account", "before", "after", "reason")} == {
        "camera_id": "cam-a",
        "account": ADMIN,
        "before": 0,
        "after": 1,
        "reason": "新建住宅面向路口",
    }
    # Mask lifts: camera, grant and project, asked by, approved by, window, how it ended.
    ended, declined = data["mask_lifts"]
    assert (ended["camera_id"], ended["grant_id"], ended["project"]) == (
        "cam-a",
        grant["id"],
        "2027 跨年 信義區",
    )
    assert (ended["asked_by"], ended["approved_by"], ended["outcome"]) == (
        ADMIN,
        SECOND,
        "ended_early",
    )
    assert (ended["ended_by"], ended["end_reason"]) == (ADMIN, "火已撲滅")
    assert ended["lifted_from"] == approved["decided_at"]
    assert ended["lifted_from"] < ended["lifted_to"] < approved["until"]
    assert (declined["outcome"], declined["approved_by"], declined["lifted_from"]) == (
        "declined",
        None,
        None,
    )
    assert (declined["decided_by"], declined["decline_reason"]) == (SECOND, "沒有危險")
    # One project's report keeps its own lifts and its cameras' changes; another's none.
    other = json.loads(make(gateway.app[STORE].path, since, until, "別案", "json", "second_admin"))
    assert (other["mask_changes"], other["mask_lifts"]) == ([], [])
    mine = make(gateway.app[STORE].path, since, until, "2027 跨年 信義區", "json", "second_admin")
    assert len(json.loads(mine)["mask_lifts"]) == 2
    # ... and in the HTML the governance office prints.
    page = make(gateway.app[STORE].path, since, until, None, "html", "second_admin")
    for words in (
        "Privacy mask changes",
        "新建住宅面向路口",
        "0 → 1",
        "Mask lifts",
        "火警：窗後有人受困",
        "ended early",
        f"({ADMIN}: 火已撲滅)",
        f"({SECOND}: 沒有危險)",
    ):
        assert words in page, words
    head = data["verification"]
    assert head["ok"] is True
    last = (await gateway.audit(limit=1))[0]
    assert (head["head_seq"], head["head_hash"]) == (last["seq"], last["hash"])

    # The same through the console's API: auditors and administrators, the read audited.
    status, body = await call(
        gateway, "GET", f"/api/report?from={today}&to={today}&format=csv", "auditor-1"
    )
    assert status == 200 and "section,project" in body and "emergency" in body
    assert "mask_change,," in body and "mask_lift,2027 跨年 信義區,cam-a" in body
    status, body = await call(gateway, "GET", f"/api/report?from={today}&to={today}", VIEWER)
    assert (status, body["code"]) == (403, "role_required")
    (read,) = await gateway.audit(event=events.REPORT_READ)
    assert read["account"] == "auditor-1"
    await verified(gateway)


def test_old_references_become_unconfirmed_authorizations_at_start(tmp_path):
    """A database from before authorizations were records (schema 2): at start-up each
    grant's free-text reference becomes an unconfirmed authorization, audited, so the
    log still verifies and the report lists it."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    from gateway.store import database, schema

    for number, script in schema.pending(schema.SQLITE, 0):
        if number > 2:
            break
        for statement in database._statements(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    now = datetime.now(UTC)
    stamp = lambda moment: moment.isoformat(timespec="microseconds")  # noqa: E731
    db.execute(
        "INSERT INTO grants (project, purpose, authorization_ref, starts_at, ends_at, created_by,"
        " created_at, updated_at) VALUES ('舊專案', 'x', 'OLD-1', ?, ?, 'admin-1', ?, ?)",
        (stamp(now - timedelta(hours=1)), stamp(now + timedelta(hours=1)), stamp(now), stamp(now)),
    )
    db.execute("INSERT INTO grant_members VALUES (1, 'viewer-1')")
    db.execute("INSERT INTO grant_cameras VALUES (1, 'cam-a')")
    db.close()

    from gateway.store import Store
    from gateway.store.adoption import adopt_references

    store = Store(str(path), ["cam-a"], 14)
    assert schema_version(open_database(path)) == latest(SQLITE)
    (adopted,) = store.at_start(adopt_references)
    assert (adopted["reference"], adopted["grants"]) == ("OLD-1", [1])
    assert store.at_start(adopt_references) == []  # once
    authorization = store.grants.authorizations.get(adopted["authorization_id"])
    assert (authorization.state, authorization.migrated, authorization.cameras) == (
        "unconfirmed",
        True,
        {"cam-a"},
    )
    assert store.grants.get(1).authorization_id == authorization.id
    result = verify_database(str(path))
    assert result.ok and result.records_checked == 1, result.problem
    today = datetime.now(TAIPEI).date().isoformat()
    since, until = period(today, today)
    data = json.loads(make(str(path), since, until, None, "json", "second_admin"))
    assert [a["reference"] for a in data["unconfirmed"]] == ["OLD-1"]
    assert data["unconfirmed"][0]["migrated"] is True


@pytest.mark.slow
async def test_the_new_rules_fail_closed_while_another_process_holds_the_write_lock(
    start_gateway, tmp_path
):
    """Approval and emergency access give access: refused while the database cannot
    take them, nothing changed. A withdrawal takes it away: it ends the viewer within a
    second all the same, and its record waits and lands."""
    gateway = await consent_gateway(start_gateway, tmp_path)
    _, consent = await call(gateway, "POST", "/api/authorizations", LIAISON, consent_body())
    _, active = await call(gateway, "POST", "/api/grants", ADMIN, grant_body(consent["id"]))
    await call(gateway, "POST", f"/api/grants/{active['id']}/approve", SECOND)
    _, waiting = await call(
        gateway, "POST", "/api/grants", ADMIN, grant_body(consent["id"], members=["viewer-2"])
    )
    viewer, status, _ = await offer(gateway)
    assert status == 201 and await viewer.wait_frames(2)
    holder = await hold_write_lock(gateway.app[STORE].path, 8)
    try:
        status, body = await call(gateway, "POST", f"/api/grants/{waiting['id']}/approve", SECOND)
        assert (status, body["code"]) == (503, "database_unavailable")
        status, body = await call(
            gateway, "POST", "/api/emergency/cam-a", MEDIC, {"danger": "有人受困"}
        )
        assert (status, body["code"]) == (503, "database_unavailable")
        started = time.monotonic()
        status, body = await call(
            gateway,
            "POST",
            f"/api/authorizations/{consent['id']}/withdraw",
            LIAISON,
            {"reason": "活動取消"},
        )
        await asyncio.wait_for(viewer.closed.wait(), WITHIN_SECONDS)
        assert (status, body["code"]) == (503, "record_pending")  # access ended; record waits
        assert time.monotonic() - started <= 2 + WITHIN_SECONDS  # the write's own wait, 2 s
    finally:
        holder.wait(timeout=20)
    await gateway.app[STORE].flush(timeout=10)
    assert gateway.app[STORE].grants.get(waiting["id"]).approval is not None  # not approved
    assert gateway.app[STORE].grants.get(active["id"]).revoked_by == LIAISON  # landed
    assert await gateway.audit(event=events.EMERGENCY_ACCESS) == []
    (withdrawn,) = await gateway.audit(event=events.AUTHORIZATION_WITHDRAWN)
    assert withdrawn["account"] == LIAISON
    await viewer.close()
    await verified(gateway)


async def test_what_waits_may_be_declined(start_gateway, tmp_path):
    gateway = await consent_gateway(start_gateway, tmp_path, approval="police_liaison")
    _, consent = await call(gateway, "POST", "/api/authorizations", LIAISON, consent_body())
    _, grant = await call(gateway, "POST", "/api/grants", ADMIN, grant_body(consent["id"]))
    # With approval = "police_liaison", a second administrator is no approver.
    status, body = await call(gateway, "POST", f"/api/grants/{grant['id']}/approve", SECOND)
    assert (status, body["code"]) == (403, "role_required")
    status, declined = await call(
        gateway, "POST", f"/api/grants/{grant['id']}/decline", LIAISON, {"reason": "範圍過大"}
    )
    assert status == 200 and declined["status"] == "revoked", declined
    status, body = await call(gateway, "POST", f"/api/grants/{grant['id']}/approve", LIAISON)
    assert (status, body["code"]) == (409, "nothing_pending")
    (row,) = await gateway.audit(event=events.GRANT_DECLINED)
    assert (row["account"], row["detail"]["kind"]) == (LIAISON, "new")
    await verified(gateway)
