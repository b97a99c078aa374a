"""Access control end to end: tokens, grants, live revocation, audit, CORS, restart."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from support.events import EventReader
from support.gateway import SECRET, VIEWER, bearer, camera_entry, settings_for, token
from support.viewer import Viewer, offer_sdp

from gateway.access.throttle import FailureThrottle
from gateway.app import HUBS, SESSIONS, STORE
from gateway.store.database import open_database
from gateway.store.grants import GrantStore

ROOT = Path(__file__).resolve().parent.parent
SDP = {"Content-Type": "application/sdp"}
ADMIN = "admin-1"


def demo_cameras(*ids: str) -> list[dict]:
    return [camera_entry(i, "demo:testsrc", demo_size="160x120", demo_fps=10) for i in ids]


async def gateway_with(start_gateway, *ids: str, **options):
    return await start_gateway(settings_for(demo_cameras(*(ids or ("cam-a", "cam-b")))), **options)


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
    assert (await response.json())["error"] == "missing or invalid token"  # no oracle
    (row,) = await audit_rows(gateway, event="token_rejected")
    assert row["remote"] == "127.0.0.1" and row["detail"]["reason"]
    for path in ("/api/cameras", "/api/me", "/api/grants", "/api/sessions", "/api/audit"):
        assert (await gateway.http.get(gateway.url + path, headers=headers)).status == 401


async def test_failed_token_checks_are_slowed_per_address(start_gateway):
    gateway = await gateway_with(
        start_gateway, throttle=FailureThrottle(base_seconds=0.1, cap_seconds=2.0)
    )
    bad = {"Authorization": "Bearer forged"}
    started = time.monotonic()
    for _ in range(5):
        assert (await gateway.http.get(f"{gateway.url}/api/me", headers=bad)).status == 401
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4 + 0.8 + 1.6 - 0.05
    started = time.monotonic()
    assert (await gateway.http.get(f"{gateway.url}/api/me", headers=bearer())).status == 200
    assert time.monotonic() - started < 0.5  # a good token is never held back


# --- grants decide who watches ---------------------------------------------------


async def test_refusals_say_which_rule_failed(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    gateway.grant(members=["member-1"], cameras=["cam-a"])
    gateway.grant(members=["early-1"], cameras=["cam-a"], starts_in=600)
    cases = [
        ("stranger", "cam-a", "no grant"),
        ("member-1", "cam-b", "no grant"),
        ("early-1", "cam-a", "not yet started"),
    ]
    for account, camera_id, reason in cases:
        response = await gateway.viewer(camera_id, account).connect(gateway.http)
        assert response.status == 403
        assert (await response.json())["error"].endswith(reason)
    denied = await audit_rows(gateway, event="access_denied")
    assert sorted(r["detail"]["reason"] for r in denied) == sorted(c[2] for c in cases)
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
        assert late < 1.5, f"session outlived its grant by {late:.2f} s"
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
        assert time.monotonic() - started < 1.5
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
        assert "administrator" in (await response.json())["error"]
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
        assert (await response.json())["field"] == field
    response = await admin_post(gateway, "/api/grants", {"project": 1, "color": "red"})
    assert response.status == 400 and "color" in (await response.json())["error"]
    response = await gateway.http.post(
        f"{gateway.url}/api/grants",
        data="{not json",
        headers=gateway.bearer(ADMIN, admin=True) | {"Content-Type": "application/json"},
    )
    assert response.status == 400
    (row,) = await audit_rows(gateway, event="grant_created")
    assert row["account"] == ADMIN and row["project"] == sneaky
    assert row["detail"]["authorization_ref"] == "北市警資字第1130000001號"


async def test_patch_that_extends_a_window_needs_a_new_authorization_ref(start_gateway):
    gateway = await gateway_with(start_gateway, grant=False)
    created = await (await admin_post(gateway, "/api/grants", grant_body())).json()
    admin = gateway.bearer(ADMIN, admin=True)
    url = f"{gateway.url}/api/grants/{created['id']}"
    later = (datetime.fromisoformat(created["ends_at"]) + timedelta(hours=2)).isoformat()
    response = await gateway.http.patch(url, json={"ends_at": later}, headers=admin)
    assert response.status == 422
    body = await response.json()
    assert (body["code"], body["field"]) == ("invalid_field", "authorization_ref")
    assert "needs a new authorization reference" in body["error"]
    assert (await (await gateway.http.get(url, headers=admin)).json())["ends_at"] == created[
        "ends_at"
    ]

    new_ref = "北市警資字第1130000099號"
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
    assert set(updated["detail"]["changes"]) == {"authorization_ref", "ends_at"}


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


def test_audit_verify_cli_names_an_edited_row(tmp_path):
    database = tmp_path / "gw.sqlite3"
    config = verify_config(tmp_path, database)
    from gateway.store.audit import AuditLog

    log = AuditLog(open_database(database))
    for i in range(5):
        log.record("session_start", account=f"viewer-{i}", camera_id="cam-a")
    result = verify_cli(config)
    assert result.returncode == 0, result.stderr
    assert "5 rows" in result.stdout
    raw = sqlite3.connect(database)
    raw.execute("DROP TRIGGER audit_no_update")  # as someone covering their tracks would
    raw.execute("UPDATE audit SET account = 'nobody' WHERE seq = 3")
    raw.commit()
    result = verify_cli(config)
    assert result.returncode == 1
    assert "row 3" in result.stderr


def test_audit_verify_cli_names_a_forged_anchor(tmp_path):
    database = tmp_path / "gw.sqlite3"
    config = verify_config(tmp_path, database)
    from gateway.store.audit import AuditLog

    log = AuditLog(open_database(database))
    for i in range(6):
        log.record("session_start", account=f"viewer-{i}", camera_id="cam-a")
    # Cut the oldest three rows and write the anchor a prune would have written.
    raw = sqlite3.connect(database, isolation_level=None)
    raw.execute("DROP TRIGGER audit_no_delete")
    (last,) = raw.execute("SELECT hash FROM audit WHERE seq = 3").fetchone()
    raw.execute("DELETE FROM audit WHERE seq <= 3")
    raw.execute("INSERT INTO audit_anchor (seq, hash) VALUES (3, ?)", (last,))
    raw.close()
    result = verify_cli(config)
    assert result.returncode == 1, result.stdout
    assert "audit log BROKEN: the anchor (seq 3) has no audit_pruned row" in result.stderr


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


MEDIA_SIGNS = (b"\x00\x00\x00\x01\x67", b"\x00\x00\x01\x67", b"ftyp", b"\x1a\x45\xdf\xa3", b"mdat")


def snapshot(*folders: Path) -> dict[Path, tuple[int, int]]:
    files = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if ".venv" in path.parts or ".git" in path.parts or not path.is_file():
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            files[path] = (stat.st_size, stat.st_mtime_ns)
    return files


async def test_nothing_is_recorded(make_rtsp_camera, start_gateway, tmp_path):
    import tempfile

    folders = [ROOT, tmp_path, Path(tempfile.gettempdir())]
    before = snapshot(*folders)
    camera = make_rtsp_camera(width=320, height=240)
    cameras = [camera_entry("cam-a", camera.url), *demo_cameras("cam-b")]
    gateway = await start_gateway(settings_for(cameras, database=str(tmp_path / "gw.sqlite3")))
    viewers = [await watch(gateway, "cam-a"), await watch(gateway, "cam-b")]
    for viewer in viewers:
        assert await viewer.wait_frames(25)
        await viewer.close(gateway.http)
    await gateway.server.close()
    after = snapshot(*folders)
    changed = [p for p, stamp in after.items() if before.get(p) != stamp]
    assert any(p.name.startswith("gw.sqlite3") for p in changed)  # the audit rows
    for path in changed:
        data = path.read_bytes()
        found = [sign for sign in MEDIA_SIGNS if sign in data]
        assert not found, f"{path} gained media content {found}"


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
