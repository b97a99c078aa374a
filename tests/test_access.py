"""Access control end to end: tokens, grants, live revocation, audit, CORS, restart."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from support.events import EventReader
from support.gateway import (
    LIAISON,
    ONE_PERSON,
    SECRET,
    VIEWER,
    bearer,
    camera_entry,
    settings_for,
    token,
)
from support.process import GatewayProcess, demo_camera
from support.viewer import Viewer, offer_sdp

from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import mint
from gateway.app import ACCESS, HUBS, SESSIONS, STORE
from gateway.config import AuditSettings, AuthSettings, MapSettings
from gateway.http.admin import GRANT_FIELDS
from gateway.store.audit import AuditLog
from gateway.store.database import open_database
from gateway.store.grants import GrantStore
from gateway.store.verify import verify_file

ROOT = Path(__file__).resolve().parent.parent
SDP = {"Content-Type": "application/sdp"}
ADMIN = "admin-1"


def demo_cameras(*ids: str) -> list[dict]:
    return [camera_entry(i, "demo:testsrc", demo_size="160x120", demo_fps=10) for i in ids]


async def gateway_with(start_gateway, *ids: str, **options):
    settings = settings_for(demo_cameras(*(ids or ("cam-a", "cam-b"))), governance=ONE_PERSON)
    return await start_gateway(settings, **options)


async def audit_rows(gateway, **filters) -> list[dict]:
    return await gateway.audit(**filters)


async def watch(gateway, camera_id: str = "cam-a", account: str = VIEWER) -> Viewer:
    viewer = gateway.viewer(camera_id, account)
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(2)
    return viewer


# --- tokens ---------------------------------------------------------------------


def unsigned() -> str:
    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"account_id": VIEWER, "iss": "Taipei citydashboard", "exp": time.time() + 600}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        f"Bearer {token()[:-4]}AAAA",  # bad signature
        f"Bearer {unsigned()}",  # alg: none
        f"Bearer {token(ttl=-120)}",  # expired beyond the leeway
        f"Bearer {token(iss='someone else')}",
        f"Bearer {token(nbf=int(time.time()) + 3600)}",
    ],
    ids=[
        "missing",
        "basic",
        "malformed",
        "bad-signature",
        "alg-none",
        "expired",
        "wrong-iss",
        "nbf-future",
    ],
)
async def test_bad_tokens_get_401_and_are_audited(start_gateway, authorization):
    gateway = await gateway_with(start_gateway)
    headers = dict(SDP) | ({"Authorization": authorization} if authorization else {})
    response = await gateway.http.post(
        f"{gateway.url}/whep/cam-a", data=await offer_sdp(), headers=headers
    )
    assert response.status == 401
    body = await response.json()
    assert body == {"error": "missing or invalid token", "code": "invalid_token"}  # no oracle
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    (row,) = await audit_rows(gateway, event="token_rejected")
    assert row["remote"] == "127.0.0.1" and row["detail"]["reason"]
    for path in ("/api/cameras", "/api/me", "/api/grants", "/api/sessions", "/api/audit"):
        assert (await gateway.http.get(gateway.url + path, headers=headers)).status == 401


async def timed_failure(gateway, source: str) -> float:
    """Seconds a bad token from `source` (a loopback address) waits for its 401."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.monotonic()
        response = await http.get(
            f"{gateway.url}/api/me", headers={"Authorization": "Bearer forged"}
        )
        assert response.status == 401
        return time.monotonic() - started


async def test_failed_token_checks_are_slowed_per_address_up_to_a_cap(start_gateway):
    # The real figures are 0.2 s doubling up to 5 s (checked below); scaled down here.
    base, cap = 0.05, 0.4
    gateway = await gateway_with(
        start_gateway, throttle=FailureThrottle(base_seconds=base, cap_seconds=cap)
    )
    waits = [await timed_failure(gateway, "127.0.0.1") for _ in range(7)]
    # 0.05, 0.1, 0.2, 0.4, 0.4, 0.4, 0.4. Each answer also costs a few ms of work, and
    # a loaded machine may add 0.2 s, never the 0.4 s of one more doubling.
    expected = [min(base * 2**i, cap) for i in range(7)]
    for got, want in zip(waits, expected, strict=True):
        assert want - 0.01 <= got < want + 0.2, (waits, expected)
    # Another address starts from the beginning: the delay is per address.
    assert await timed_failure(gateway, "127.0.0.2") < base + 0.2
    started = time.monotonic()
    assert (await gateway.http.get(f"{gateway.url}/api/me", headers=bearer())).status == 200
    assert time.monotonic() - started < 0.2  # a good token is never held back


async def test_the_running_gateway_waits_at_most_5_s_more_per_failed_token(start_gateway):
    gateway = await gateway_with(start_gateway, throttle=None)  # the gateway's own throttle
    throttle = gateway.app[ACCESS].throttle
    # Ten failures at once from one address: answered one after another, each step
    # twice the last, up to 5 s.
    waits = [throttle.delay_for("198.51.100.7") for _ in range(10)]
    steps = [round(b - a, 3) for a, b in itertools.pairwise([0.0, *waits])]
    assert steps == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert throttle.delay_for("198.51.100.8") == 0.2  # per address


@pytest.mark.parametrize("guessers", ["one address", "one account from many addresses"])
async def test_parallel_guessing_gains_nothing(start_gateway, guessers):
    """Failures from one source (an address, or the account a token claims) are
    answered one after another: 8 guesses in parallel take as long as 8 in a row."""
    base, cap = 0.05, 0.1
    gateway = await gateway_with(
        start_gateway, throttle=FailureThrottle(base_seconds=base, cap_seconds=cap)
    )
    forged = mint(AuthSettings(secret="another-secret-of-at-least-32-bytes-0"), "victim")
    sources = (
        ["127.0.0.1"] * 8 if guessers == "one address" else [f"127.0.0.{i}" for i in range(2, 10)]
    )

    async def guess(source: str) -> None:
        connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            response = await http.get(
                f"{gateway.url}/api/me", headers={"Authorization": f"Bearer {forged}"}
            )
            assert response.status == 401

    started = time.monotonic()
    await asyncio.gather(*(guess(source) for source in sources))
    took = time.monotonic() - started
    in_a_row = base + 7 * cap  # 0.05, then 0.1 each
    assert took >= in_a_row - 0.02, took


# --- grants decide who watches ---------------------------------------------------


async def test_refusals_say_which_rule_failed(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    gateway.grant(members=["member-1"], cameras=["cam-a"])
    gateway.grant(members=["early-1"], cameras=["cam-a"], starts_in=600)
    gateway.grant(members=["late-1"], cameras=["cam-a"], starts_in=-7200, lasts=3600)
    revoked = gateway.grant(members=["gone-1"], cameras=["cam-a"])
    gateway.app[STORE].grants.revoke(revoked.id, by=ADMIN, reason="police withdrew consent")
    cases = [  # account, camera, the code, the reason audited
        ("stranger", "cam-a", "no_grant", "no grant"),
        ("member-1", "cam-b", "no_grant", "no grant"),
        ("early-1", "cam-a", "not_yet_started", "not yet started"),
        ("late-1", "cam-a", "grant_ended", "ended"),
        ("gone-1", "cam-a", "grant_revoked", "revoked"),
    ]
    for account, camera_id, code, reason in cases:
        response = await gateway.viewer(camera_id, account).connect(gateway.http)
        assert response.status == 403, account
        body = await response.json()
        assert body["code"] == code and body["error"].endswith(reason), (account, body)
    denied = await audit_rows(gateway, event="access_denied")
    assert sorted(r["detail"]["reason"] for r in denied) == sorted(c[3] for c in cases)
    response = await gateway.viewer("nope", "member-1").connect(gateway.http)
    assert response.status == 404


async def test_session_ends_within_a_second_of_its_grant_ending(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    grant = gateway.grant(cameras=["cam-a"], starts_in=-1, lasts=4)
    async with EventReader(gateway) as events:
        viewer = await watch(gateway)
        hello = events.events[0]
        assert hello["grants"][0]["id"] == grant.id  # the countdown's end
        await asyncio.wait_for(viewer.closed.wait(), timeout=10)
        late = (datetime.now(UTC) - grant.ends_at).total_seconds()
        # The enforcer sweeps twice a second: expect <= 0.5 s plus the close (ms).
        # 1 s, the promise, leaves 0.5 s of headroom for a loaded machine.
        assert late <= 1.0, f"session outlived its grant by {late:.2f} s"
        ended = await events.wait_for("session_ended")
        assert ended["reason"] == "grant ended"
    (row,) = await audit_rows(gateway, event="session_end")
    assert row["account"] == VIEWER and row["grant_id"] == grant.id
    assert row["project"] == grant.project and row["detail"]["reason"] == "grant ended"
    assert row["detail"]["bytes_sent"] > 0 and row["detail"]["duration_seconds"] > 0
    await viewer.close()


async def admin_post(gateway, path: str, body: dict) -> aiohttp.ClientResponse:
    return await gateway.http.post(
        gateway.url + path, json=body, headers=gateway.bearer(ADMIN, admin=True)
    )


@pytest.mark.parametrize("how", ["session", "account", "grant", "member", "camera"])
async def test_admin_revocation_closes_the_viewer_within_a_second(start_gateway, how):
    gateway = await gateway_with(start_gateway, grant=False)
    grant = gateway.grant(members=[VIEWER, "other-1"], cameras=["cam-a", "cam-b"])
    async with EventReader(gateway) as events:
        viewer = await watch(gateway)
        bystander = await watch(gateway, "cam-b", "other-1")
        (session,) = [s for s in gateway.app[SESSIONS] if s.account == VIEWER]
        started = time.monotonic()
        method, path, body = {
            "session": ("POST", f"/api/sessions/{session.id}/revoke", {"reason": "不當使用"}),
            "account": ("POST", f"/api/accounts/{VIEWER}/revoke", {"reason": "離職"}),
            "grant": ("POST", f"/api/grants/{grant.id}/revoke", {"reason": "活動結束"}),
            "member": ("PATCH", f"/api/grants/{grant.id}", {"members": ["other-1"]}),
            "camera": ("PATCH", f"/api/grants/{grant.id}", {"cameras": ["cam-b"]}),
        }[how]
        response = await gateway.http.request(
            method, gateway.url + path, json=body, headers=gateway.bearer(ADMIN, admin=True)
        )
        assert response.status == 200, await response.text()
        await asyncio.wait_for(viewer.closed.wait(), timeout=5)
        # Measured: a few ms (README, revoke -> peer connection closed). The request
        # ends the session before it answers; 1 s is the promise, ample on a busy machine.
        assert time.monotonic() - started <= 1.0
        ended = await events.wait_for("session_ended")
        assert ended["session_id"] == session.id and ended["reason"]
    if how == "grant":
        assert bystander.closed.is_set()
    else:  # the other member keeps watching
        assert not bystander.closed.is_set() and await bystander.wait_frames(3)
    events_written = {r["event"] for r in await audit_rows(gateway)}
    assert "session_end" in events_written
    assert {
        "session": "session_revoked",
        "account": "session_revoked",
        "grant": "grant_revoked",
        "member": "grant_updated",
        "camera": "grant_updated",
    }[how] in events_written
    await viewer.close()
    await bystander.close(gateway.http)


# --- what viewers see of their grants --------------------------------------------

VIEWER_GRANT_KEYS = {"id", "project", "cameras", "starts_at", "ends_at", "status"}
ADMIN_ONLY_KEYS = {"members", "purpose", "authorization_ref", "created_by"}


async def test_viewers_see_only_what_they_need_of_their_grants(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    grant = gateway.grant(members=[VIEWER, "co-member-7", ADMIN])
    admin = gateway.bearer(ADMIN, admin=True)
    mine = await (await gateway.http.get(f"{gateway.url}/api/me", headers=gateway.bearer())).json()
    (seen,) = mine["grants"]
    assert set(seen) == VIEWER_GRANT_KEYS
    assert seen["id"] == grant.id and seen["cameras"] == ["cam-a", "cam-b"]
    assert "co-member-7" not in json.dumps(mine, ensure_ascii=False)
    assert grant.authorization_ref not in json.dumps(mine, ensure_ascii=False)
    theirs = await (await gateway.http.get(f"{gateway.url}/api/me", headers=admin)).json()
    assert set(theirs["grants"][0]) >= ADMIN_ONLY_KEYS  # an administrator sees it all

    async with EventReader(gateway) as viewer, EventReader(gateway, ADMIN, admin=True) as watcher:
        (hello,) = viewer.events
        assert [set(g) for g in hello["grants"]] == [VIEWER_GRANT_KEYS]
        assert set(watcher.events[0]["grants"][0]) >= ADMIN_ONLY_KEYS
        url = f"{gateway.url}/api/grants/{grant.id}"
        assert (await gateway.http.patch(url, json={"cameras": ["cam-a"]}, headers=admin)).ok
        body = grant_body(members=[VIEWER, "co-member-8"], purpose="秘密行動")
        created = await (await admin_post(gateway, "/api/grants", body)).json()
        response = await admin_post(gateway, f"/api/grants/{created['id']}/revoke", {"reason": "x"})
        assert response.ok
        for kind in ("grant_updated", "grant_created", "grant_revoked"):
            event = await viewer.wait_for(kind)
            assert set(event["grant"]) == VIEWER_GRANT_KEYS, kind
            assert set((await watcher.wait_for(kind))["grant"]) >= ADMIN_ONLY_KEYS, kind
        assert (await viewer.wait_for("grant_revoked"))["grant"]["status"] == "revoked"
        text = json.dumps(viewer.events, ensure_ascii=False)
        for secret in ("co-member-7", "co-member-8", "秘密行動", grant.authorization_ref, ADMIN):
            assert secret not in text


async def test_a_removed_member_hears_no_more_of_the_grant(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    grant = gateway.grant(members=[VIEWER, "leaver"])
    admin = gateway.bearer(ADMIN, admin=True)
    url = f"{gateway.url}/api/grants/{grant.id}"
    async with EventReader(gateway) as stays, EventReader(gateway, "leaver") as leaves:
        assert (await gateway.http.patch(url, json={"members": [VIEWER]}, headers=admin)).ok
        assert (await gateway.http.patch(url, json={"purpose": "新用途"}, headers=admin)).ok
        assert (await admin_post(gateway, f"/api/grants/{grant.id}/revoke", {"reason": "x"})).ok
        await stays.wait_for("grant_revoked")
        # One more event that does name the leaver: events arrive in order, so anything
        # about the old grant would have come before it.
        await admin_post(gateway, "/api/grants", grant_body(members=["leaver"]))
        await leaves.wait_for("grant_created")
        assert [e["type"] for e in leaves.events] == ["hello", "grant_created"]
        assert len([e for e in stays.events if e["type"] == "grant_updated"]) == 2


async def test_administrators_need_a_grant_to_watch(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    gateway.grant(members=[VIEWER], cameras=["cam-a"])  # names someone else
    admin = Viewer(gateway.url, "cam-a", headers=gateway.bearer(ADMIN, admin=True))
    response = await admin.connect(gateway.http)
    assert response.status == 403
    assert (await response.json())["code"] == "no_grant"
    await admin.close()
    gateway.grant(members=[ADMIN], cameras=["cam-a"])  # the admin claim manages, a grant lets watch
    admin = Viewer(gateway.url, "cam-a", headers=gateway.bearer(ADMIN, admin=True))
    response = await admin.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await admin.wait_frames(2)
    await admin.close(gateway.http)


# Another process (a second gateway node, an administrator's script) changes the grant
# in the database file; it prints when its change was committed.
CHANGE_GRANT = """
import sys, time
from datetime import UTC, datetime
from gateway.config import AuditSettings, MapSettings
from gateway.store.audit import AuditLog
from gateway.store.database import open_database
from gateway.store.grants import GrantStore
from gateway.store.verify import verify_file

database, grant_id, change = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = GrantStore(open_database(database), ["cam-a"], 14)
if change == "revoke":
    store.revoke(grant_id, by="admin-9", reason="police withdrew consent")
elif change == "member":
    store.update(grant_id, by="admin-9", members=["other-1"])
else:
    store.update(grant_id, by="admin-9", ends_at=datetime.now(UTC))
print(time.time(), flush=True)
"""


@pytest.mark.parametrize(
    ("change", "code"),
    [("revoke", "grant_revoked"), ("member", "removed_from_grant"), ("end", "grant_ended")],
)
async def test_a_grant_changed_by_another_process_ends_the_session_within_a_second(
    start_gateway, tmp_path, change, code
):
    database = str(tmp_path / "gw.sqlite3")
    settings = settings_for(demo_cameras("cam-a"), database=database)
    gateway = await start_gateway(settings, grant=False)
    grant = gateway.grant(members=[VIEWER, "other-1"], cameras=["cam-a"])
    viewer = await watch(gateway)
    (session,) = list(gateway.app[SESSIONS])
    # Watch for a second (10 fps) first, so the enforcer has seen the grant allow it.
    assert await viewer.wait_frames(10)

    async def closed_at() -> float:
        await viewer.closed.wait()
        return time.time()

    closing = asyncio.ensure_future(closed_at())
    changer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHANGE_GRANT, database, str(grant.id), change,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(changer.communicate(), 30)
    assert changer.returncode == 0
    changed = float(out)
    try:
        late = await asyncio.wait_for(closing, 10) - changed
    except TimeoutError:
        raise AssertionError("the session went on for 10 s after its grant changed") from None
    # The enforcer re-reads grants twice a second, so expect <= 0.5 s plus the close
    # (milliseconds); 1 s leaves 0.5 s for a loaded machine and is the README's promise.
    assert late <= 1.0, f"the session outlived the change by {late:.2f} s"
    assert session.ending is not None and session.ending.code == code
    await viewer.close()


@pytest.mark.parametrize("retention_days", [400, 0])
async def test_audit_rows_past_retention_are_pruned_at_start_up(
    start_gateway, tmp_path, retention_days
):
    database = tmp_path / "gw.sqlite3"
    db = open_database(database)
    days_ago = lambda days: lambda: datetime.now(UTC) - timedelta(days=days)  # noqa: E731
    for i in range(3):
        AuditLog(db, clock=days_ago(401)).record("session_start", account=f"old-{i}")
    AuditLog(db, clock=days_ago(399)).record("session_start", account="recent")
    db.close()
    settings = settings_for(demo_cameras("cam-a"), database=str(database))
    settings = replace(settings, audit=AuditSettings(retention_days=retention_days))
    gateway = await start_gateway(settings, grant=False)
    rows = await audit_rows(gateway)
    # The standing police authorization the test gateway records at start (LIAISON).
    accounts = {row["account"] for row in rows} - {LIAISON}
    if retention_days:  # older than 400 days: gone, with a row saying so
        assert accounts == {"recent", None}
        (pruned,) = [row for row in rows if row["event"] == "audit_pruned"]
        assert pruned["detail"]["rows"] == 3
    else:  # 0 keeps every row
        assert accounts == {"recent", "old-0", "old-1", "old-2"}
    assert verify_file(str(database)).ok  # the rest of the chain still verifies


# --- the admin API ---------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", "/api/grants"),
    ("POST", "/api/grants"),
    ("GET", "/api/grants/1"),
    ("PATCH", "/api/grants/1"),
    ("POST", "/api/grants/1/revoke"),
    ("GET", "/api/sessions"),
    ("POST", "/api/sessions/x/revoke"),
    ("POST", "/api/accounts/viewer-1/revoke"),
    ("GET", "/api/audit"),
]


async def test_admin_endpoints_refuse_non_admins(start_gateway):
    gateway = await gateway_with(start_gateway)
    for method, path in ADMIN_CALLS:
        response = await gateway.http.request(
            method, gateway.url + path, json={"reason": "x"}, headers=gateway.bearer()
        )
        assert response.status == 403, (method, path)
        body = await response.json()
        assert body["code"] == "not_admin" and "administrator" in body["error"]
    denied = await audit_rows(gateway, event="access_denied")
    assert len(denied) == len(ADMIN_CALLS)


def grant_body(**fields) -> dict:
    now = datetime.now(UTC)
    return {
        "project": "2027 跨年 信義區",
        "purpose": "crowd safety",
        "authorization_ref": "北市警資字第1130000001號",
        "members": [VIEWER],
        "cameras": ["cam-a"],
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=4)).isoformat(),
    } | fields


async def test_grant_api_validates_and_stores_hostile_text_verbatim(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    sneaky = "'); DROP TABLE grants; --"
    response = await admin_post(gateway, "/api/grants", grant_body(project=sneaky, purpose=sneaky))
    assert response.status == 201
    created = await response.json()
    assert created["project"] == sneaky and created["status"] == "active"
    assert created["created_by"] == ADMIN
    response = await gateway.http.get(
        f"{gateway.url}/api/grants/{created['id']}", headers=gateway.bearer(ADMIN, admin=True)
    )
    assert (await response.json())["project"] == sneaky
    for bad, field in [
        ({"project": "x" * 100_000}, "project"),
        ({"members": []}, "members"),
        ({"cameras": ["cam-zzz"]}, "cameras"),
        ({"authorization_ref": ""}, "authorization_ref"),
        ({"ends_at": "2020-01-01T00:00:00+08:00"}, "ends_at"),
        ({"starts_at": "2027-01-01T00:00:00"}, "starts_at"),
    ]:
        response = await admin_post(gateway, "/api/grants", grant_body(**bad))
        assert response.status == 422, bad
        body = await response.json()
        assert (body["code"], body["field"]) == ("invalid_field", field)
    # Every wrong field at once, for the console to mark them all (issue 26).
    bad = grant_body(project="", members=["not a valid account!!"], cameras=[])
    body = await (await admin_post(gateway, "/api/grants", bad)).json()
    assert body["field"] == "project"
    assert sorted(body["fields"]) == ["cameras", "members", "project"]
    body = await (await admin_post(gateway, "/api/grants", {"purpose": "x"})).json()
    assert set(body["fields"]) == {*GRANT_FIELDS - {"purpose"}, "authorization_id"}
    response = await admin_post(gateway, "/api/grants", {"project": 1, "color": "red"})
    assert response.status == 400
    body = await response.json()
    assert body["code"] == "bad_request" and "color" in body["error"]
    response = await admin_post(gateway, "/api/grants/999/revoke", {"reason": "x"})
    assert (response.status, (await response.json())["code"]) == (404, "unknown_grant")
    response = await gateway.http.post(
        f"{gateway.url}/api/grants",
        data="{not json",
        headers=gateway.bearer(ADMIN, admin=True) | {"Content-Type": "application/json"},
    )
    assert response.status == 400
    (row,) = await audit_rows(gateway, event="grant_created")
    assert row["account"] == ADMIN and row["project"] == sneaky
    assert row["detail"]["authorization_ref"] == "北市警資字第1130000001號"


async def test_a_patch_moves_a_grant_under_another_authorization_keeping_the_old_reference(
    start_gateway,
):
    gateway = await gateway_with(start_gateway, grant=False)
    created = await (await admin_post(gateway, "/api/grants", grant_body())).json()
    admin = gateway.bearer(ADMIN, admin=True)
    url = f"{gateway.url}/api/grants/{created['id']}"
    new_ref = "北市警資字第1130000099號"
    gateway.authorization(new_ref)
    later = (datetime.fromisoformat(created["ends_at"]) + timedelta(hours=2)).isoformat()
    response = await gateway.http.patch(
        url, json={"ends_at": later, "authorization_ref": new_ref}, headers=admin
    )
    assert response.status == 200, await response.text()
    grant = await response.json()
    assert grant["authorization_ref"] == new_ref
    (previous,) = grant["previous_authorizations"]
    assert previous["authorization_ref"] == created["authorization_ref"]
    assert previous["replaced_by"] == ADMIN
    listed = await (await gateway.http.get(f"{gateway.url}/api/grants", headers=admin)).json()
    assert listed["grants"][0]["previous_authorizations"] == [previous]
    (updated,) = await audit_rows(gateway, event="grant_updated")
    assert updated["detail"]["changes"]["authorization_ref"] == {
        "from": created["authorization_ref"],
        "to": new_ref,
    }
    assert set(updated["detail"]["changes"]) == {"authorization_ref", "authorization_id", "ends_at"}


async def test_cameras_listing_follows_grants(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    gateway.grant(cameras=["cam-b"])
    listing = await (
        await gateway.http.get(f"{gateway.url}/api/cameras", headers=gateway.bearer())
    ).json()
    assert [f["id"] for f in listing["features"]] == ["cam-b"]
    assert listing["features"][0]["properties"]["granted_until"]
    listing = await (
        await gateway.http.get(
            f"{gateway.url}/api/cameras", headers=gateway.bearer(ADMIN, admin=True)
        )
    ).json()
    assert {f["id"] for f in listing["features"]} == {"cam-a", "cam-b"}
    assert "source" not in json.dumps(listing) and "demo:" not in json.dumps(listing)


async def test_me_names_the_account_and_only_its_active_grants(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    active = gateway.grant(members=[VIEWER], cameras=["cam-a"])
    gateway.grant(members=[VIEWER], cameras=["cam-b"], starts_in=-7200, lasts=3600)  # ended
    gateway.grant(members=["other-1"], cameras=["cam-b"])  # someone else's
    me = await (await gateway.http.get(f"{gateway.url}/api/me", headers=gateway.bearer())).json()
    assert me["account"] == VIEWER and me["is_admin"] is False
    assert [(g["id"], g["status"]) for g in me["grants"]] == [(active.id, "active")]
    assert me["grants"][0]["ends_at"]  # the tile's countdown
    admin = gateway.bearer(ADMIN, admin=True)
    me = await (await gateway.http.get(f"{gateway.url}/api/me", headers=admin)).json()
    assert (me["account"], me["is_admin"], me["grants"]) == (ADMIN, True, [])


async def test_map_settings_are_served_before_sign_in_without_secrets(start_gateway):
    settings = settings_for([camera_entry("cam-a", "rtsp://admin:S3cret@10.0.0.9/s")])
    settings = replace(settings, map=MapSettings(tile_url="https://tiles.example/{z}/{x}/{y}.png"))
    gateway = await start_gateway(settings)
    response = await gateway.http.get(f"{gateway.url}/config.json")  # no token
    assert response.status == 200
    body = await response.json()
    assert body["map"]["tile_url"] == "https://tiles.example/{z}/{x}/{y}.png"
    text = json.dumps(body)
    assert SECRET not in text and "S3cret" not in text and "rtsp" not in text


async def test_grants_are_listed_newest_first_with_their_status(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    ended = gateway.grant(cameras=["cam-a"], starts_in=-7200, lasts=3600)
    pending = gateway.grant(cameras=["cam-a"], starts_in=600)
    active = gateway.grant(cameras=["cam-b"])
    admin = gateway.bearer(ADMIN, admin=True)

    async def listed(query: str = "") -> list[tuple[int, str]]:
        response = await gateway.http.get(f"{gateway.url}/api/grants{query}", headers=admin)
        return [(g["id"], g["status"]) for g in (await response.json())["grants"]]

    everything = [(active.id, "active"), (pending.id, "scheduled"), (ended.id, "ended")]
    assert await listed() == everything
    assert await listed("?include_ended=false") == everything[:2]


async def test_admin_lists_sessions_and_exports_audit_csv(start_gateway):
    gateway = await gateway_with(start_gateway)
    viewer = await watch(gateway)
    admin = gateway.bearer(ADMIN, admin=True)
    sessions = await (await gateway.http.get(f"{gateway.url}/api/sessions", headers=admin)).json()
    (listed,) = sessions["sessions"]
    assert listed["account"] == VIEWER and listed["camera_id"] == "cam-a"
    assert listed["project"] and listed["grant_id"] and listed["remote"] == "127.0.0.1"
    response = await gateway.http.get(
        f"{gateway.url}/api/audit?account={VIEWER}&camera_id=cam-a&format=csv", headers=admin
    )
    assert response.status == 200 and response.content_type == "text/csv"
    text = await response.text()
    assert text.splitlines()[0].startswith("seq,at,event")
    assert "session_start" in text
    response = await gateway.http.get(f"{gateway.url}/api/audit?since=yesterday", headers=admin)
    assert response.status == 400
    exported = text.count("session_start")
    rows = await (
        await gateway.http.get(f"{gateway.url}/api/audit?event=admin_read&limit=5", headers=admin)
    ).json()
    assert [r["event"] for r in rows["rows"]] == ["admin_read", "admin_read"]  # this read: next
    # Every administrator read of sessions or of the audit log, and each export, is recorded:
    # who, from where, what, with which filters, how many rows. The refused one read nothing.
    reads = await audit_rows(gateway, event="admin_read")
    assert [(r["account"], r["remote"]) for r in reads] == [(ADMIN, "127.0.0.1")] * 3
    assert [r["detail"] for r in reversed(reads)] == [
        {"what": "sessions", "format": "json", "rows": 1},
        {
            "what": "audit",
            "format": "csv",
            "filters": {"account": VIEWER, "camera_id": "cam-a", "limit": 1000},
            "rows": exported,
        },
        {
            "what": "audit",
            "format": "json",
            "filters": {"event": "admin_read", "limit": 5},
            "rows": 2,
        },
    ]
    await viewer.close(gateway.http)


# --- audit chain, restart, nothing recorded, CORS ---------------------------------


def verify_config(tmp_path: Path, database: Path) -> Path:
    config = tmp_path / "gw.toml"
    config.write_text(
        f'[auth]\nsecret = "{SECRET}"\n[storage]\ndatabase = "{database}"\n'
        '[[cameras]]\nid = "cam-a"\nname = "A"\nlat = 25.0\nlon = 121.5\nsource = "demo:testsrc"\n',
        encoding="utf-8",
    )
    return config


def verify_cli(config: Path, *wrap: str) -> subprocess.CompletedProcess:
    """`gateway audit verify` in its own process, optionally inside a wrapper command."""
    cli = [*wrap, sys.executable, "-m", "gateway", "audit", "verify", "--config", str(config)]
    return subprocess.run(cli, capture_output=True, text=True, timeout=60, cwd=ROOT)


def edit_row(raw: sqlite3.Connection) -> str:
    raw.execute("DROP TRIGGER audit_no_update")  # as someone covering their tracks would
    raw.execute("UPDATE audit SET account = 'nobody' WHERE seq = 3")
    return "row 3"


def forge_anchor(raw: sqlite3.Connection) -> str:
    """Cut the oldest three rows and write the anchor a prune would have written."""
    raw.execute("DROP TRIGGER audit_no_delete")
    (last,) = raw.execute("SELECT hash FROM audit WHERE seq = 3").fetchone()
    raw.execute("DELETE FROM audit WHERE seq <= 3")
    raw.execute("INSERT INTO audit_anchor (seq, hash) VALUES (3, ?)", (last,))
    return "audit log BROKEN: the anchor (seq 3) has no audit_pruned row"


@pytest.mark.parametrize("tamper", [edit_row, forge_anchor])
def test_audit_verify_cli_names_what_was_tampered_with(tmp_path, tamper):
    database = tmp_path / "gw.sqlite3"
    config = verify_config(tmp_path, database)
    from gateway.store.audit import AuditLog

    log = AuditLog(open_database(database))
    for i in range(6):
        log.record("session_start", account=f"viewer-{i}", camera_id="cam-a")
    result = verify_cli(config)
    assert result.returncode == 0, result.stderr
    assert "6 rows" in result.stdout
    raw = sqlite3.connect(database, isolation_level=None)
    named = tamper(raw)
    raw.close()
    result = verify_cli(config)
    assert result.returncode == 1, result.stdout
    assert named in result.stderr


async def test_audit_verify_cli_names_a_grant_edited_outside_the_api(start_gateway, tmp_path):
    database = tmp_path / "gw.sqlite3"
    config = verify_config(tmp_path, database)
    gateway = await start_gateway(settings_for(demo_cameras("cam-a"), database=str(database)))
    created = await (await admin_post(gateway, "/api/grants", grant_body())).json()
    admin = gateway.bearer(ADMIN, admin=True)
    url = f"{gateway.url}/api/grants/{created['id']}"
    response = await gateway.http.patch(url, json={"members": [VIEWER, "viewer-2"]}, headers=admin)
    assert response.status == 200
    result = verify_cli(config)
    assert result.returncode == 0, result.stderr
    assert "2 grants match" in result.stdout  # the fixture's grant and this one

    # Someone with the file adds themselves, bypassing the API (and its audit row).
    raw = sqlite3.connect(database, isolation_level=None)
    raw.execute("INSERT INTO grant_members VALUES (?, 'mallory')", (created["id"],))
    raw.close()
    result = verify_cli(config)
    assert result.returncode == 1, result.stdout
    assert f"grant {created['id']} ('2027 跨年 信義區') differs from its last audited" in (
        result.stderr
    )


def test_audit_verify_cli_exits_2_when_it_cannot_read(tmp_path):
    database = tmp_path / "gw.sqlite3"
    config = verify_config(tmp_path, database)
    result = verify_cli(config)  # no such file
    assert result.returncode == 2, result.stderr
    assert "cannot be read" in result.stderr and "no such file" in result.stderr

    database.write_bytes(b"not a database, just bytes " * 100)
    result = verify_cli(config)
    assert result.returncode == 2, result.stderr
    assert "not a database" in result.stderr

    database.unlink()
    database.mkdir()  # a folder where the file should be
    assert verify_cli(config).returncode == 2
    database.rmdir()

    from gateway.store.audit import AuditLog

    db = open_database(database)
    AuditLog(db).record("session_start", account="a", camera_id="cam-a")
    db.close()
    # Another process keeps everyone else out: WAL with an exclusive lock held.
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = verify_cli(config)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 2, result.stderr
    assert "locked" in result.stderr
    assert verify_cli(config).returncode == 0  # and once the lock is gone, it checks


def test_audit_verify_cli_checks_a_read_only_copy(tmp_path):
    """A copy on read-only media (no -shm can be made) is verified, not a false alarm."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a read-only folder (unshare -m)")
    copy, ro = tmp_path / "copy", tmp_path / "ro"
    copy.mkdir()
    ro.mkdir()
    from gateway.store.audit import AuditLog

    db = open_database(copy / "gw.sqlite3")
    log = AuditLog(db)
    for i in range(4):
        log.record("session_start", account=f"viewer-{i}", camera_id="cam-a")
    db.close()  # the last connection checkpoints the WAL into the file
    config = verify_config(tmp_path, ro / "gw.sqlite3")
    mount = f'mount --bind {copy} {ro} && mount -o remount,bind,ro {ro} && exec "$@"'
    read_only = ["unshare", "-m", "sh", "-c", mount, "sh"]
    result = verify_cli(config, *read_only)
    assert result.returncode == 0, result.stderr
    assert "4 rows" in result.stdout

    raw = sqlite3.connect(copy / "gw.sqlite3", isolation_level=None)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET account = 'nobody' WHERE seq = 2")
    raw.close()
    result = verify_cli(config, *read_only)
    assert result.returncode == 1, result.stderr
    assert "row 2" in result.stderr


async def test_grant_revoked_while_gateway_was_down_is_honoured(start_gateway, tmp_path):
    database = str(tmp_path / "gw.sqlite3")
    settings = settings_for(demo_cameras("cam-a"), database=database)
    first = await start_gateway(settings)
    viewer = await watch(first)
    await first.server.close()  # the gateway stops: its viewers' sessions end
    await asyncio.wait_for(viewer.closed.wait(), timeout=10)
    await viewer.close()
    # While it is down, the grant is revoked in the database by another process.
    store = GrantStore(open_database(database), ["cam-a"], 14)
    (grant,) = store.active_for(VIEWER)
    store.revoke(grant.id, by=ADMIN, reason="police withdrew consent")
    second = await start_gateway(settings, grant=False)
    response = await second.viewer("cam-a").connect(second.http)
    assert response.status == 403
    assert (await response.json())["error"].endswith("revoked")
    rows = await audit_rows(second)
    assert {"session_start", "session_end", "access_denied"} <= {r["event"] for r in rows}


class OpenFiles:
    """Samples /proc/<pid>/fd in a thread: every regular file the process has open, and
    whether it was opened for writing."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen: dict[str, bool] = {}  # path -> ever open for writing
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OpenFiles:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                fds = os.listdir(f"/proc/{self.pid}/fd")
            except OSError:
                return  # the process is gone
            for fd in fds:
                try:
                    path = os.readlink(f"/proc/{self.pid}/fd/{fd}")
                    with open(f"/proc/{self.pid}/fdinfo/{fd}") as info:
                        flags = int(info.read().split("flags:", 1)[1].split()[0], 8)
                except (OSError, IndexError, ValueError):
                    continue  # closed meanwhile
                if path.startswith("/") and not path.startswith(("/dev/", "/proc/")):
                    writing = flags & os.O_ACCMODE != os.O_RDONLY
                    self.seen[path] = self.seen.get(path, False) or writing
            self.samples += 1


def footprint(*folders: Path) -> dict[Path, tuple[int, int]]:
    """(size, mtime) of every file under `folders`, but bytecode, git and test artifacts."""
    skip = {".git", "__pycache__", "test-artifacts", ".venv", ".ruff_cache", ".pytest_cache"}
    files = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if skip & set(path.parts) or not path.is_file():
                continue
            with contextlib.suppress(OSError):
                stat = path.stat()
                files[path] = (stat.st_size, stat.st_mtime_ns)
    return files


def database_contents(database: Path) -> tuple[set[str], list[str]]:
    """The tables, and any value in them that could hold media: bytes, or long text."""
    db = sqlite3.connect(database)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    bulky = []
    for table in sorted(tables):
        for row in db.execute(f'SELECT * FROM "{table}"'):
            for value in row:
                if isinstance(value, bytes) or (isinstance(value, str) and len(value) > 4000):
                    bulky.append(f"{table}: {type(value).__name__} of {len(value)}")
    db.close()
    return tables, bulky


async def test_nothing_is_recorded(make_rtsp_camera, tmp_path):
    """The gateway process relays a real RTSP camera and a demo camera; meanwhile it
    writes to no file but its database, whose rows hold no media."""
    data, own_tmp = tmp_path / "data", tmp_path / "tmp"
    data.mkdir()
    own_tmp.mkdir()
    camera = make_rtsp_camera(width=320, height=240)
    cameras = [camera_entry("cam-a", camera.url), demo_camera("cam-b")]
    gateway = GatewayProcess(data, cameras, env={"TMPDIR": str(own_tmp)})
    database = {gateway.database.name + suffix for suffix in ("", "-wal", "-shm", "-journal")}
    tables_before, _ = database_contents(gateway.database)
    before = footprint(data, own_tmp, ROOT)
    await gateway.start()
    try:
        with OpenFiles(gateway.pid) as files:
            async with aiohttp.ClientSession() as http:
                viewers = [Viewer(gateway.url, c, headers=bearer()) for c in ("cam-a", "cam-b")]
                for viewer in viewers:
                    assert (await viewer.connect(http)).status == 201
                for viewer in viewers:
                    assert await viewer.wait_frames(25)
                    await viewer.close(http)
        gateway.signal(signal.SIGTERM)
        assert await asyncio.to_thread(gateway.wait, 10) == 0
    finally:
        gateway.stop()
    assert files.samples > 50  # it really looked, all through the relaying
    written = sorted(path for path, writing in files.seen.items() if writing)
    assert {Path(path).name for path in written} <= database, f"opened for writing: {written}"
    assert not [p for p in files.seen if p.startswith(str(own_tmp))], files.seen
    after = footprint(data, own_tmp, ROOT)
    changed = sorted(str(p) for p, stamp in after.items() if before.get(p) != stamp)
    assert {Path(path).name for path in changed} <= database, f"written: {changed}"
    assert not list(own_tmp.iterdir()), "the gateway left files in its temp folder"
    tables, bulky = database_contents(gateway.database)
    assert tables == tables_before and not bulky, (tables - tables_before, bulky)
    ends = [row for row in gateway.audit() if row["event"] == "session_end"]
    assert len(ends) == 2 and all(row["detail"]["bytes_sent"] > 0 for row in ends)


async def test_cors_preflight_allows_only_configured_origins(start_gateway):
    settings = settings_for(demo_cameras("cam-a"))
    from dataclasses import replace

    from gateway.config import CorsSettings

    gateway = await start_gateway(
        replace(settings, cors=CorsSettings(origins=("https://dashboard.taipei",)))
    )
    for path, method in (("/whep/cam-a", "POST"), ("/api/cameras", "GET")):
        preflight = {
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        allowed = await gateway.http.options(
            gateway.url + path, headers=preflight | {"Origin": "https://dashboard.taipei"}
        )
        assert allowed.status == 200, path
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://dashboard.taipei"
        refused = await gateway.http.options(
            gateway.url + path, headers=preflight | {"Origin": "https://evil.example"}
        )
        assert refused.status == 403, path
        assert "Access-Control-Allow-Origin" not in refused.headers
    response = await gateway.http.get(
        f"{gateway.url}/api/cameras",
        headers=gateway.bearer() | {"Origin": "https://dashboard.taipei"},
    )
    assert response.headers["Access-Control-Allow-Origin"] == "https://dashboard.taipei"


async def test_a_grant_revoked_while_the_offer_is_answered_lets_no_media_flow(start_gateway):
    gateway = await gateway_with(start_gateway)
    (grant,) = gateway.app[STORE].grants.list()
    hub = gateway.app[HUBS].get("cam-a")
    join = hub.join

    async def revoked_meanwhile(*args):  # the administrator revokes between decision and answer
        gateway.app[STORE].grants.revoke(grant.id, by="admin-1", reason="meanwhile")
        return await join(*args)

    hub.join = revoked_meanwhile
    viewer = gateway.viewer("cam-a")
    response = await viewer.connect(gateway.http)
    body = await response.json()
    assert response.status == 403 and body["code"] == "grant_revoked", body
    assert len(gateway.app[SESSIONS]) == 0 and not hub.viewers
    assert not await audit_rows(gateway, event="session_start")
    await viewer.close()
