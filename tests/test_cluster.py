"""Several gateways (issue 14): real PostgreSQL, real HAProxy (deploy/haproxy.cfg) and
two gateway processes on loopback, in front of real RTSP cameras.

PostgreSQL, the cameras and the cluster start once for the module; the tests run in
order, and the last one stops PostgreSQL mid-run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import psycopg
import pytest
import yarl
from support.camera import RtspCamera, make_camera
from support.chromium import frames_decoded, open_page, player, wait_more_frames, wait_state
from support.cluster import (
    ADMIN,
    SECOND,
    Cluster,
    Postgres,
    audit_rows,
    closed_within,
    cluster_settings,
    local_cluster,
    node_of,
    run_gateway,
    running_postgres,
    session_id_of,
    sessions_of,
    wait_for_audit,
    watching,
)
from support.events import EventReader
from support.gateway import LIAISON, VIEWER, bearer
from support.viewer import Viewer, offer_sdp

from gateway.store.audit import AuditLog
from gateway.store.database import open_database, schema_version
from gateway.store.schema import POSTGRESQL, latest
from gateway.store.verify import verify_connection

pytestmark = [pytest.mark.slow, pytest.mark.rtsp]

CAMERAS = ("cam-1", "cam-2", "cam-3")
CLOSE_WITHIN_SECONDS = 1.0
MAX_SESSIONS_PER_ACCOUNT = 3
TICKETS_PER_ACCOUNT = 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def cameras() -> Iterator[dict[str, RtspCamera]]:
    started: dict[str, RtspCamera] = {}
    try:
        for camera_id in CAMERAS:
            cam = make_camera(width=320, height=240, fps=15, bitrate_kbps=300, gop_seconds=1)
            cam.start()
            started[camera_id] = cam
        yield started
    finally:
        for cam in started.values():
            cam.stop()


@pytest.fixture(scope="module")
def cluster(folder: Path, postgres: Postgres, cameras: dict[str, RtspCamera]) -> Iterator[Cluster]:
    database = postgres.create_database("cluster")
    limits = {
        "max_sessions_per_account": MAX_SESSIONS_PER_ACCOUNT,
        "max_tickets_per_account": TICKETS_PER_ACCOUNT,
    }
    base = cluster_settings(cameras, limits=limits)
    running = Cluster(folder, database, base, ("gw1", "gw2"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def node_client(cluster: Cluster, http: aiohttp.ClientSession, node: str | None) -> Any:
    """What EventReader needs of a gateway: its address, a client and tokens."""

    def tokens(account: str, admin: bool = False) -> dict[str, str]:
        return bearer(account, admin=admin)

    return SimpleNamespace(url=cluster.url(node), http=http, bearer=tokens)


# --- without a cluster ---------------------------------------------------------------


def test_the_shipped_haproxy_config_is_valid() -> None:
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(local_cluster.HAPROXY_CONFIG)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_unreachable_postgres_at_start_exits_2_naming_the_setting(folder: Path) -> None:
    password = "S3cret-never-shown"
    port = local_cluster.free_port()  # nobody listens there
    config = folder / "unreachable.toml"
    settings = cluster_settings({}, storage={"database": {"env": "CCTV_TEST_DATABASE"}})
    settings["cameras"] = [
        {"id": "cam", "name": "cam", "lat": 25.0, "lon": 121.5, "source": "demo:testsrc"}
    ]
    settings["cluster"] = {"node_id": "gw9"}
    config.write_text(local_cluster.to_toml(settings))
    env = {**os.environ, "CCTV_TEST_DATABASE": f"postgresql://gw:{password}@127.0.0.1:{port}/gw"}
    done = run_gateway("--config", str(config), env=env)
    assert done.returncode == 2, done.stderr
    assert "[storage] database" in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert password not in done.stdout + done.stderr
    # `audit verify` cannot read it either: 2, nothing checked, no password.
    verify = run_gateway("audit", "verify", "--config", str(config), env=env)
    assert verify.returncode == 2, verify.stdout + verify.stderr
    assert "cannot be read, nothing verified" in verify.stderr
    assert password not in verify.stdout + verify.stderr


def test_nodes_starting_together_migrate_once(postgres: Postgres) -> None:
    database = postgres.create_database("migrate_race")
    with ThreadPoolExecutor(4) as pool:
        connections = list(pool.map(lambda _: open_database(database), range(4)))
    try:
        assert schema_version(connections[0]) == latest(POSTGRESQL)
        rows = connections[0].execute("SELECT count(*) FROM gateway_schema").fetchone()
        assert rows[0] == 1
    finally:
        for db in connections:
            db.close()


def test_appends_from_several_connections_queue_for_one_chain(postgres: Postgres) -> None:
    """Nodes append at once; each append waits its turn (none fails, none forks)."""
    database = postgres.create_database("one_chain")
    open_database(database).close()

    def append(writer: int) -> None:
        db = open_database(database, migrate_schema=False)
        try:
            for i in range(40):
                AuditLog(db).record("session_start", account=f"w{writer}", session_id=f"{i}")
        finally:
            db.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(append, range(4)))
    db = open_database(database)
    try:
        result = verify_connection(db)
        assert result.ok and result.rows_checked == 160, result
    finally:
        db.close()


def test_the_audit_log_is_append_only_in_postgres_too(postgres: Postgres) -> None:
    db = open_database(postgres.create_database("append_only"))
    try:
        AuditLog(db).record("session_start", account="a", camera_id="cam-1")
        for statement in ("UPDATE audit SET event = 'x'", "DELETE FROM audit", "TRUNCATE audit"):
            with pytest.raises(psycopg.Error, match="append-only"):
                db.execute(statement)
        assert verify_connection(db).ok
    finally:
        db.close()


# --- two nodes behind HAProxy ----------------------------------------------------------


async def test_one_rtsp_connection_per_camera_across_the_cluster(
    cluster: Cluster, cameras: dict[str, RtspCamera], http: aiohttp.ClientSession
) -> None:
    await cluster.wait_balanced(http)
    await cluster.grant(http, list(CAMERAS), [VIEWER, "viewer-2"])
    viewers = []
    try:
        for camera_id in CAMERAS:
            for account in (VIEWER, "viewer-2"):
                viewers.append(await watching(cluster.viewer(camera_id, account=account), http))
        # Another spelling of a camera's URL would hash elsewhere: it is refused.
        spelled = yarl.URL(f"{cluster.url()}/whep/c%61m-1", encoded=True)
        headers = {"Content-Type": "application/sdp", **bearer(VIEWER)}
        async with http.post(spelled, data=await offer_sdp(), headers=headers) as reply:
            assert reply.status == 404, await reply.text()
        for camera_id, cam in cameras.items():
            assert cam.connections == 1, (camera_id, cam.connections)
            nodes = {node_of(v) for v in viewers if v.url.endswith(f"/whep/{camera_id}")}
            assert len(nodes) == 1, (camera_id, nodes)  # both viewers on the owner
    finally:
        for viewer in viewers:
            await viewer.close(http)
    for cam in cameras.values():
        assert cam.wait_connections(0, timeout=10)


async def test_every_node_lists_hears_and_counts_every_nodes_sessions(
    cluster: Cluster, http: aiohttp.ClientSession, browser: Any
) -> None:
    account = "everywhere"
    await cluster.grant(http, list(CAMERAS), [account])
    async with EventReader(node_client(cluster, http, "gw1"), ADMIN, admin=True) as gw1_events:
        on_gw1 = await watching(cluster.viewer("cam-1", node="gw1", account=account), http)
        on_gw2 = await watching(cluster.viewer("cam-2", node="gw2", account=account), http)
        try:
            # The event stream on gw1 hears gw2's session start.
            started = await wait_event(gw1_events, "session_started", session_id_of(on_gw2))
            assert started["session"]["camera_id"] == "cam-2"
            assert started["session"]["node"] == "gw2"
            # Either node's admin list shows both sessions, with their nodes.
            for node in ("gw1", "gw2"):
                status, body = await cluster.admin(http, "GET", "/api/sessions", node=node)
                assert status == 200
                listed = {s["id"]: s["node"] for s in body["sessions"]}
                assert listed[session_id_of(on_gw1)] == "gw1", listed
                assert listed[session_id_of(on_gw2)] == "gw2", listed
            # So does the admin console, through the balancer, with a node column.
            console = await open_page(
                browser, cluster.url() + "/admin", bearer(ADMIN, admin=True)["Authorization"][7:]
            )
            for viewer, node in ((on_gw1, "gw1"), (on_gw2, "gw2")):
                row = console.page.locator(f"tr[data-session='{session_id_of(viewer)}']")
                await row.wait_for(timeout=10_000)
                assert await row.locator(".node-col").inner_text() == node
            assert await console.page.locator("th.node-col").is_visible()
            # The account's limit counts its sessions on both nodes.
            third = await watching(cluster.viewer("cam-3", node="gw2", account=account), http)
            fourth = cluster.viewer("cam-3", node="gw1", account=account)
            refused = await fourth.connect(http)
            assert refused.status == 429, await refused.text()
            await fourth.close()
            await third.close(http)
            # gw2's session end reaches gw1's stream.
            await on_gw2.close(http)
            ended = await wait_event(gw1_events, "session_ended", session_id_of(on_gw2))
            assert ended["code"] == "viewer_left"
        finally:
            await on_gw1.close(http)
            await on_gw2.close(http)


async def test_a_ticket_from_one_node_opens_a_stream_on_another_once(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{cluster.url('gw1')}/api/events/ticket", headers=bearer(VIEWER)
    ) as reply:
        ticket = (await reply.json())["ticket"]
    async with http.get(f"{cluster.url('gw2')}/api/events", params={"ticket": ticket}) as stream:
        assert stream.status == 200
        assert b"event: hello" in await asyncio.wait_for(stream.content.readline(), 5)
    for node in ("gw1", "gw2"):  # used: refused on every node
        async with http.get(f"{cluster.url(node)}/api/events", params={"ticket": ticket}) as again:
            assert again.status == 401
    forged = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
    async with http.get(f"{cluster.url('gw2')}/api/events", params={"ticket": forged}) as reply:
        assert reply.status == 401


@pytest.mark.parametrize("offers", [20, 200])
async def test_simultaneous_offers_for_one_account_split_over_both_nodes_admit_exactly_its_limit(
    cluster: Cluster, http: aiohttp.ClientSession, offers: int
) -> None:
    """Half the offers go to each node at once: the account's limit is counted on every
    node in one transaction, so no two nodes both admit its last place."""
    account = f"burst-{offers}"
    await cluster.grant(http, ["cam-1"], [account])
    body = (await offer_sdp()).encode()
    headers = {"Content-Type": "application/sdp", **bearer(account)}
    # Every request at once: no pool limit, each node's half in flight together.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as burst:

        async def offer(node: str) -> tuple[int, str | None]:
            url = f"{cluster.url(node)}/whep/cam-1"
            async with burst.post(url, data=body, headers=headers) as reply:
                return reply.status, reply.headers.get("Location")

        nodes = [("gw1", "gw2")[i % 2] for i in range(offers)]
        answers = await asyncio.gather(*(offer(node) for node in nodes))
        admitted = [
            (node, where)
            for node, (status, where) in zip(nodes, answers, strict=True)
            if status == 201
        ]
        try:
            statuses = sorted({status for status, _ in answers})
            print(f"{offers} offers: {len(admitted)} admitted, statuses {statuses}")
            assert len(admitted) == MAX_SESSIONS_PER_ACCOUNT, answers
            assert set(statuses) == {201, 429}, answers
            listed = await sessions_of(cluster, http, account)
            assert len(listed) == MAX_SESSIONS_PER_ACCOUNT, listed
        finally:
            for node, where in admitted:
                assert where is not None
                async with burst.delete(cluster.url(node) + where, headers=headers) as reply:
                    assert reply.status == 200
    # Ended and struck off: the account's places are free again, on either node.
    deadline = time.monotonic() + 5
    while await sessions_of(cluster, http, account):
        assert time.monotonic() < deadline, "the ended sessions stayed listed"
        await asyncio.sleep(0.1)


async def test_an_accounts_unused_tickets_are_counted_on_every_node_at_once(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    account, limit = "ticket-burst", TICKETS_PER_ACCOUNT

    async def ticket(node: str) -> tuple[int, str | None]:
        url = f"{cluster.url(node)}/api/events/ticket"
        async with http.post(url, headers=bearer(account)) as reply:
            return reply.status, (await reply.json()).get("ticket")

    nodes = [("gw1", "gw2")[i % 2] for i in range(3 * limit)]
    answers = await asyncio.gather(*(ticket(node) for node in nodes))
    issued = [t for status, t in answers if status == 200]
    assert len(issued) == limit, answers
    assert {status for status, _ in answers} == {200, 429}
    # One is used (on the other node than the one that issued it, perhaps): its place
    # is free again, on both nodes.
    async with http.get(f"{cluster.url('gw2')}/api/events", params={"ticket": issued[0]}) as stream:
        assert stream.status == 200
    assert (await ticket("gw1"))[0] == 200
    assert (await ticket("gw2"))[0] == 429


@pytest.mark.parametrize("what", ["session", "account", "grant"])
async def test_a_revoke_sent_to_one_node_ends_a_viewer_on_the_other_within_a_second(
    cluster: Cluster, http: aiohttp.ClientSession, what: str
) -> None:
    account = f"revoked-{what}"
    grant = await cluster.grant(http, ["cam-1"], [account])
    viewer = await watching(cluster.viewer("cam-1", node="gw2", account=account), http)
    try:
        path = {
            "session": f"/api/sessions/{session_id_of(viewer)}/revoke",
            "account": f"/api/accounts/{account}/revoke",
            "grant": f"/api/grants/{grant['id']}/revoke",
        }[what]
        started = time.monotonic()
        status, body = await cluster.admin(http, "POST", path, node="gw1", json={"reason": "x"})
        assert status == 200, body
        if what != "grant":
            assert body["ended"] == 1
        await asyncio.wait_for(viewer.closed.wait(), CLOSE_WITHIN_SECONDS * 3)
        took = time.monotonic() - started
        print(f"revoke of a {what} on gw1 to the viewer on gw2 closed: {took * 1000:.0f} ms")
        assert took < CLOSE_WITHIN_SECONDS, took
    finally:
        await viewer.close()
    # The revocation is on record, written by the node it was sent to, and the end by
    # the node that held the session.
    ended = await wait_for_audit(cluster, http, "gw1", session_id_of(viewer), "session_end")
    assert ended["detail"]["code"] == ("grant_revoked" if what == "grant" else "revoked")
    if what == "grant":
        rows = await audit_rows(cluster, http, event="grant_revoked")
        assert grant["id"] in {row["grant_id"] for row in rows}
    else:
        revoked = await wait_for_audit(
            cluster, http, "gw1", session_id_of(viewer), "session_revoked"
        )
        assert revoked["account"] == account and revoked["detail"]["by"] == ADMIN


async def test_a_withdrawal_on_one_node_ends_a_viewer_on_the_other_within_a_second(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """The police withdraw their consent through node gw1; the viewer of a grant under
    it, watching on gw2, is closed within a second with `authorization_withdrawn`."""
    account = "withdrawn-1"
    consent = await cluster.consent(http, ["cam-1"], reference="北市警資字第1150000009號")
    grant = await cluster.grant(http, ["cam-1"], [account], authorization=consent)
    viewer = await watching(cluster.viewer("cam-1", node="gw2", account=account), http)
    try:
        started = time.monotonic()
        async with http.post(
            f"{cluster.url('gw1')}/api/authorizations/{consent['id']}/withdraw",
            json={"reason": "案件結束"},
            headers=bearer(LIAISON),
        ) as reply:
            assert reply.status == 200, await reply.text()
        await asyncio.wait_for(viewer.closed.wait(), CLOSE_WITHIN_SECONDS * 3)
        took = time.monotonic() - started
        print(f"withdrawal on gw1 to the viewer on gw2 closed: {took * 1000:.0f} ms")
        assert took < CLOSE_WITHIN_SECONDS, took
    finally:
        await viewer.close()
    ended = await wait_for_audit(cluster, http, "gw1", session_id_of(viewer), "session_end")
    assert ended["detail"]["code"] == "authorization_withdrawn"
    _, after = await cluster.admin(http, "GET", f"/api/grants/{grant['id']}", node="gw2")
    assert after["status"] == "revoked" and after["revoked_by"] == LIAISON
    # Neither node admits anyone under it again.
    again = cluster.viewer("cam-1", node="gw2", account=account)
    response = await again.connect(http)
    assert response.status == 403
    assert (await response.json())["code"] == "authorization_withdrawn"
    await again.close()


async def test_masks_and_a_lift_set_on_one_node_are_in_force_on_the_other_within_a_second(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A camera's masks put through gw1 are stored in PostgreSQL and in force on gw2's
    hub within a second (the `masks_changed` notice); a lift approved on gw1 is in
    force on gw2 too, and ended early on gw1 it ends on gw2 within a second."""
    window = {"label": "住宅窗戶", "polygon": [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6]], "fill": "solid"}
    path = "/api/cameras/cam-3/masks"

    async def on_gw2(check: Any) -> float:
        started = time.monotonic()
        while time.monotonic() - started < 5:
            status, found = await cluster.admin(http, "GET", path, node="gw2")
            if status == 200 and check(found):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise AssertionError(f"gw2 never showed it: {found}")

    grant = await cluster.grant(http, ["cam-3"], ["lifted-1"])
    started = time.monotonic()
    body = {"masks": [window], "reason": "住宅窗戶"}
    status, changed = await cluster.admin(http, "PUT", path, node="gw1", json=body)
    assert status == 200 and changed["masks"] == [window], changed
    took = time.monotonic() - started + await on_gw2(lambda found: found["masks"] == [window])
    print(f"masks put on gw1 in force on gw2 after {took * 1000:.0f} ms")
    assert took < CLOSE_WITHIN_SECONDS, took
    try:
        ask = {"grant_id": grant["id"], "reason": "火警"}
        status, lift = await cluster.admin(http, "POST", f"{path}/lifts", node="gw1", json=ask)
        assert status == 201, lift
        async with http.post(
            f"{cluster.url('gw1')}/api/mask-lifts/{lift['id']}/approve",
            headers=bearer(SECOND, admin=True),
        ) as reply:
            assert reply.status == 200, await reply.text()
        await on_gw2(lambda found: found["lifted_for"] == [grant["id"]])
        # Ended early on gw1: the masks are back on gw2 too, within a second.
        started = time.monotonic()
        status, ended = await cluster.admin(
            http, "POST", f"/api/mask-lifts/{lift['id']}/end", node="gw1", json={"reason": "x"}
        )
        assert status == 200, ended
        took = time.monotonic() - started + await on_gw2(lambda found: found["lifted_for"] == [])
        print(f"lift ended on gw1, masks back on gw2 after {took * 1000:.0f} ms")
        assert took < CLOSE_WITHIN_SECONDS, took
        rows = await audit_rows(cluster, http, camera_id="cam-3")
        assert {"masks_changed", "mask_lift_approved", "mask_lift_ended"} <= {
            row["event"] for row in rows
        }
    finally:
        status, _ = await cluster.admin(
            http, "PUT", path, node="gw2", json={"masks": [], "reason": "test over"}
        )
        assert status == 200
    await on_gw2(lambda found: found["masks"] == [])


async def test_a_revocation_whose_notice_a_node_missed_still_reaches_it(
    cluster: Cluster, postgres: Postgres, http: aiohttp.ClientSession
) -> None:
    account = "missed-notice"
    await cluster.grant(http, ["cam-2"], [account])
    viewer = await watching(cluster.viewer("cam-2", node="gw2", account=account), http)
    try:
        # Every node's listening connection is cut: the revocation's notice is lost.
        with psycopg.connect(postgres.url(), autocommit=True) as db:
            cut = db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'cctv-gateway listener'"
            ).fetchall()
        assert len(cut) == 2
        status, _ = await cluster.admin(
            http, "POST", f"/api/accounts/{account}/revoke", node="gw1", json={"reason": "x"}
        )
        assert status == 200
        await closed_within(viewer, 3)
    finally:
        await viewer.close()
    ended = await wait_for_audit(cluster, http, "gw1", session_id_of(viewer), "session_end")
    assert ended["detail"]["code"] == "revoked"


async def test_a_second_node_with_the_same_id_stops_before_touching_anything(
    cluster: Cluster, folder: Path, http: aiohttp.ClientSession
) -> None:
    gw1 = cluster.nodes["gw1"]
    twin = folder / "twin.toml"
    twin.write_text(gw1.config.read_text().replace(f"port = {gw1.port}", f"port = {gw1.port + 1}"))
    await cluster.grant(http, ["cam-1"], ["twin-check"])
    on_gw1 = await watching(cluster.viewer("cam-1", node="gw1", account="twin-check"), http)
    try:
        done = await asyncio.to_thread(run_gateway, "--config", str(twin))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "node_id 'gw1' is in use by another running gateway node" in done.stderr
        # It closed out nothing of gw1's.
        ends = await audit_rows(cluster, http, event="session_end")
        assert session_id_of(on_gw1) not in {row["session_id"] for row in ends}
        assert not on_gw1.closed.is_set()
    finally:
        await on_gw1.close(http)


async def test_audit_verify_is_clean_after_concurrent_writes_from_both_nodes(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async def busy(node: str, n: int) -> None:
        for i in range(n):
            if i % 5 == 0:
                await cluster.grant(http, ["cam-2"], [f"busy-{node}-{i}"], node=node)
            else:
                status, _ = await cluster.admin(
                    http, "GET", "/api/audit", node=node, params={"limit": "1"}
                )
                assert status == 200

    await asyncio.gather(*(busy(node, 30) for node in ("gw1", "gw2") for _ in range(3)))
    config = cluster.nodes["gw2"].config
    done = await asyncio.to_thread(run_gateway, "audit", "verify", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit log intact" in done.stdout
    rows = int(done.stdout.split(":")[1].split()[0])
    assert rows >= 2 * 3 * 30


async def test_kill_9_of_a_node_then_the_picture_is_back_on_the_other(
    cluster: Cluster, cameras: dict[str, RtspCamera], http: aiohttp.ClientSession
) -> None:
    await cluster.wait_balanced(http)
    await cluster.grant(http, list(CAMERAS), ["failover"])
    viewer = await watching(cluster.viewer("cam-3", account="failover"), http)
    dead = node_of(viewer)
    survivor = next(n for n in cluster.nodes if n != dead)
    lost_session = session_id_of(viewer)
    # A session on the survivor that must outlive the dead node's close-out and restart.
    other_camera = next(c for c in CAMERAS if c != "cam-3")
    staying = await watching(cluster.viewer(other_camera, node=survivor, account="failover"), http)
    try:
        killed_at = time.monotonic()
        cluster.nodes[dead].kill()
        # The player: no picture for a moment, then it offers again through the balancer.
        back = await reconnect_like_the_player(cluster, http, viewer, "cam-3", "failover")
        took = time.monotonic() - killed_at
        assert node_of(back) == survivor
        assert took < 15, took
        print(f"kill -9 to picture: {took:.2f} s")
        assert cameras["cam-3"].wait_connections(1, timeout=5)
        # The survivor closes out the dead node's session in the audit log.
        closed = await wait_for_audit(cluster, http, survivor, lost_session, "session_end")
        assert closed["detail"]["code"] == "node_lost"
        # The dead node comes back; it closes out only its own leftovers.
        cluster.nodes[dead].start()
        await asyncio.sleep(1)
        ends = await audit_rows(cluster, http, event="session_end")
        assert session_id_of(staying) not in {row["session_id"] for row in ends}
        assert [r for r in ends if r["session_id"] == lost_session] == [closed]
        assert not staying.closed.is_set()
        # It takes its camera back for new viewers (once HAProxy's checks see it up);
        # the one watching elsewhere stays.
        deadline = time.monotonic() + 15
        while True:
            returning = await watching(cluster.viewer("cam-3", account="failover"), http)
            if node_of(returning) == dead or time.monotonic() > deadline:
                break
            await returning.close(http)
            await asyncio.sleep(0.5)
        assert node_of(returning) == dead
        assert await back.wait_frames(5, timeout=5) and not back.closed.is_set()
        await returning.close(http)
        await back.close(http)
    finally:
        await staying.close(http)
        await viewer.close()
        if not cluster.nodes[dead].answers():
            cluster.nodes[dead].start()


async def test_a_returning_node_takes_its_camera_back_and_the_tile_moves_without_going_black(
    cluster: Cluster, cameras: dict[str, RtspCamera], http: aiohttp.ClientSession, browser: Any
) -> None:
    """While its owner is away a camera is pulled by another node, and a browser tile
    watches it there. When the owner is back and a new viewer makes it pull the
    camera, the tile moves to it (make-before-break) and the other node's pull ends:
    one RTSP connection again, and the tile never left "live"."""
    camera = "cam-2"
    await cluster.wait_balanced(http)
    await cluster.grant(http, [camera], [VIEWER, "newcomer"])
    probe = await watching(cluster.viewer(camera, account="newcomer"), http)
    owner = node_of(probe)
    holder = next(n for n in cluster.nodes if n != owner)
    await probe.close(http)
    cluster.nodes[owner].stop()
    newcomer = None
    try:
        page = await open_page(browser, cluster.url() + "/", bearer(VIEWER)["Authorization"][7:])
        await page.page.wait_for_selector("#cameras button")
        await page.page.click(f"#cameras button[data-camera='{camera}']")
        await wait_state(page, camera, "live", timeout=30)
        assert {s["node"] for s in await sessions_of(cluster, http, VIEWER)} == {holder}
        await page.page.evaluate(
            """(sel) => {
                window.states = [];
                document.querySelector(sel).addEventListener(
                    "statechange", (e) => window.states.push(e.detail.state));
            }""",
            player(camera),
        )
        cluster.nodes[owner].start()
        await cluster.wait_balanced(http)
        # A new viewer, once HAProxy's checks send the camera's viewers to its owner.
        deadline = time.monotonic() + 15
        while True:
            newcomer = await watching(cluster.viewer(camera, account="newcomer"), http)
            if node_of(newcomer) == owner or time.monotonic() > deadline:
                break
            await newcomer.close(http)
            await asyncio.sleep(0.5)
        assert node_of(newcomer) == owner
        # The tile moves to the owner; the holder's pull ends with its last viewer.
        deadline = time.monotonic() + 20
        while {s["node"] for s in await sessions_of(cluster, http, VIEWER)} != {owner}:
            assert time.monotonic() < deadline, "the tile did not move to the camera's owner"
            await asyncio.sleep(0.2)
        assert cameras[camera].wait_connections(1, timeout=10)
        await wait_state(page, camera, "live")
        await wait_more_frames(page, camera, await frames_decoded(page, camera))
        assert await page.page.evaluate("window.states") == []
    finally:
        if newcomer is not None:
            await newcomer.close(http)
        if not cluster.nodes[owner].answers():
            cluster.nodes[owner].start()


async def test_a_node_takes_only_signed_fresh_messages_from_its_peers(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    with psycopg.connect(cluster.database) as db:
        key = db.execute("SELECT secret FROM cluster_secret").fetchone()
    message = {"type": "end_account", "account": "nobody", "code": "revoked", "reason": "x"}

    async def post(url: str, sent_at: float, signing_key: bytes) -> tuple[int, str]:
        body = json.dumps({**message, "nonce": os.urandom(8).hex(), "sent_at": sent_at}).encode()
        signature = hmac.new(signing_key, body, hashlib.sha256).hexdigest()
        async with http.post(
            f"{url}/cluster/messages", data=body, headers={"X-Cluster-Signature": signature}
        ) as reply:
            return reply.status, await reply.text()

    assert (await post(cluster.url("gw2"), time.time(), key[0].encode()))[0] == 204
    status, text = await post(cluster.url("gw2"), time.time(), b"another key")
    assert status == 403 and "not_a_cluster_message" in text, text
    status, text = await post(cluster.url("gw2"), time.time() - 60, key[0].encode())
    assert status == 403 and "older than" in text, text
    # HAProxy keeps it from the outside.
    assert (await post(cluster.url(), time.time(), key[0].encode()))[0] == 404


async def test_revocations_reach_the_other_node_within_a_second_while_postgres_is_stopped(
    cluster: Cluster, postgres: Postgres, http: aiohttp.ClientSession
) -> None:
    """A session, an account and a grant revoked on gw1 while PostgreSQL is away end
    their viewers on gw2 within a second: revocations also go straight to the nodes."""
    by_session = await cluster.grant(http, ["cam-1"], ["outage-session"], node="gw1")
    await cluster.grant(http, ["cam-1"], ["outage-account"], node="gw1")
    by_grant = await cluster.grant(http, ["cam-1"], ["outage-grant"], node="gw1")
    # And a police consent withdrawn meanwhile (governance.md: as revocation does).
    consent = await cluster.consent(http, ["cam-1"], reference="OUTAGE-1", node="gw1")
    await cluster.grant(http, ["cam-1"], ["outage-consent"], node="gw1", authorization=consent)
    viewers = {
        account: await watching(cluster.viewer("cam-1", node="gw2", account=account), http)
        for account in ("outage-session", "outage-account", "outage-grant", "outage-consent")
    }
    postgres.stop()
    try:
        revocations = {
            "outage-session": f"/api/sessions/{session_id_of(viewers['outage-session'])}/revoke",
            "outage-account": "/api/accounts/outage-account/revoke",
            "outage-grant": f"/api/grants/{by_grant['id']}/revoke",
        }
        for account, path in revocations.items():
            revoking = asyncio.ensure_future(
                cluster.admin(http, "POST", path, node="gw1", json={"reason": "outage"})
            )
            took = await closed_within(viewers[account], CLOSE_WITHIN_SECONDS)
            print(f"{account}: closed on gw2 {took * 1000:.0f} ms after the revoke on gw1")
            status, body = await asyncio.wait_for(revoking, 10)
            if account == "outage-account":
                # The other nodes' sessions cannot be listed now: none is counted here
                # (their end records on gw2 name the administrator).
                assert (status, body) == (200, {"ended": 0})
            else:  # ended, and its record waits for the database
                assert status == 503 and body["code"] == "record_pending", (account, body)
        withdrawing = asyncio.ensure_future(
            http.post(
                f"{cluster.url('gw1')}/api/authorizations/{consent['id']}/withdraw",
                json={"reason": "outage"},
                headers=bearer(LIAISON),
            )
        )
        took = await closed_within(viewers["outage-consent"], CLOSE_WITHIN_SECONDS)
        print(f"outage-consent: closed on gw2 {took * 1000:.0f} ms after the withdrawal on gw1")
        reply = await asyncio.wait_for(withdrawing, 10)
        assert reply.status == 503 and (await reply.json())["code"] == "record_pending"
        # The grant stays revoked on gw2: a new viewer there is refused.
        again = cluster.viewer("cam-1", node="gw2", account="outage-grant")
        reply = await again.connect(http)
        assert reply.status in (403, 503), await reply.text()
        await again.close()
    finally:
        postgres.start()
        for viewer in viewers.values():
            await viewer.close()
    for account, viewer in viewers.items():
        ended = await wait_for_audit(cluster, http, "gw2", session_id_of(viewer), "session_end", 20)
        expected = {"outage-consent": ("authorization_withdrawn",)}
        codes = expected.get(account, ("revoked", "grant_revoked"))
        assert ended["detail"]["code"] in codes, (account, ended)
        if account not in ("outage-grant", "outage-consent"):
            assert ended["detail"]["ended_by"] == ADMIN, ended
    await wait_for_audit(
        cluster, http, "gw1", session_id_of(viewers["outage-session"]), "session_revoked", 20
    )
    assert by_session["id"] != by_grant["id"]


async def test_grant_changes_reach_the_other_node_within_a_second_while_postgres_is_stopped(
    cluster: Cluster, postgres: Postgres, http: aiohttp.ClientSession
) -> None:
    """A member removed from a grant, and another grant's window shortened, on gw1
    while PostgreSQL is away: the viewers they no longer allow on gw2 end within a
    second (the change goes straight from node to node, as revocations do); the
    member who stays keeps watching, and the changes land when the database is back."""
    members = await cluster.grant(http, ["cam-1"], ["stays", "removed"], node="gw1")
    window = await cluster.grant(http, ["cam-1"], ["shortened"], node="gw1")
    viewers = {
        account: await watching(cluster.viewer("cam-1", node="gw2", account=account), http)
        for account in ("stays", "removed", "shortened")
    }
    # The console lists the grants before an administrator edits one.
    assert (await cluster.admin(http, "GET", "/api/grants", node="gw1"))[0] == 200
    postgres.stop()
    try:
        now = datetime.now(UTC)
        changes = {
            "removed": (members["id"], {"members": ["stays"]}),
            "shortened": (window["id"], {"ends_at": now.isoformat()}),
        }
        for account, (grant_id, change) in changes.items():
            changing = asyncio.ensure_future(
                cluster.admin(http, "PATCH", f"/api/grants/{grant_id}", node="gw1", json=change)
            )
            took = await closed_within(viewers[account], CLOSE_WITHIN_SECONDS)
            print(f"{account}: closed on gw2 {took * 1000:.0f} ms after the change on gw1")
            status, body = await asyncio.wait_for(changing, 10)
            assert status == 503 and body["code"] == "record_pending", (account, body)
        assert not viewers["stays"].closed.is_set()
        # A change that gives access needs the database: refused, nothing changed.
        status, body = await cluster.admin(
            http,
            "PATCH",
            f"/api/grants/{members['id']}",
            node="gw1",
            json={"members": ["stays", "newcomer"]},
        )
        assert status == 503 and body["code"] == "database_unavailable", body
    finally:
        postgres.start()
        for viewer in viewers.values():
            await viewer.close()
    codes = {"removed": "removed_from_grant", "shortened": "grant_ended"}
    for account, code in codes.items():
        ended = await wait_for_audit(
            cluster, http, "gw2", session_id_of(viewers[account]), "session_end", 20
        )
        assert ended["detail"]["code"] == code, ended
    status, grant = await cluster.admin(http, "GET", f"/api/grants/{members['id']}", node="gw2")
    assert status == 200 and grant["members"] == ["stays"], grant


async def test_postgres_stopped_mid_run_fails_closed_and_records_wait(
    cluster: Cluster, postgres: Postgres, http: aiohttp.ClientSession
) -> None:
    window = 8.0
    short = await cluster.grant(http, ["cam-1"], ["short-grant"], lasts=window, node="gw1")
    await cluster.grant(http, ["cam-2"], ["long-grant"], node="gw1")
    lapsing = await watching(cluster.viewer("cam-1", node="gw1", account="short-grant"), http)
    revoked = await watching(cluster.viewer("cam-2", node="gw1", account="long-grant"), http)
    ends_at = datetime.fromisoformat(short["ends_at"]).timestamp()
    postgres.stop()
    try:
        # New viewers are refused (the grants cannot be read).
        refused = cluster.viewer("cam-3", node="gw1", account="long-grant")
        reply = await refused.connect(http)
        assert reply.status == 503, await reply.text()
        await refused.close()
        # A revocation on this node works from memory; its record waits.
        # (The answer waits a little for the record; the session does not.)
        revoking = asyncio.ensure_future(
            cluster.admin(
                http,
                "POST",
                f"/api/sessions/{session_id_of(revoked)}/revoke",
                node="gw1",
                json={"reason": "while the database is away"},
            )
        )
        await closed_within(revoked, CLOSE_WITHIN_SECONDS)
        status, body = await asyncio.wait_for(revoking, 10)
        assert status == 503 and body["code"] == "record_pending", body
        # A session ends at its grant's known window.
        await asyncio.wait_for(lapsing.closed.wait(), window + 5)
        assert time.time() - ends_at < CLOSE_WITHIN_SECONDS
    finally:
        postgres.start()
        await lapsing.close()
        await revoked.close()
    # The records that waited land, in one chain.
    for session in (revoked, lapsing):
        await wait_for_audit(cluster, http, "gw1", session_id_of(session), "session_end", 20)
    await wait_for_audit(cluster, http, "gw1", session_id_of(revoked), "session_revoked", 20)
    config = cluster.nodes["gw1"].config
    done = await asyncio.to_thread(run_gateway, "audit", "verify", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr


# --- helpers -----------------------------------------------------------------------------


async def wait_event(reader: EventReader, kind: str, session_id: str, timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in reader.events:
            found = event.get("session_id") or event.get("session", {}).get("id")
            if event["type"] == kind and found == session_id:
                return event
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} for {session_id}: {[e['type'] for e in reader.events]}")


async def reconnect_like_the_player(
    cluster: Cluster, http: aiohttp.ClientSession, lost: Viewer, camera_id: str, account: str
) -> Viewer:
    """What cctv-player does when its picture stops: wait, offer again with backoff."""
    deadline = time.monotonic() + 30
    while lost.frames and time.monotonic() - lost.frames[-1][0] < 1.0:
        assert time.monotonic() < deadline, "the picture never stopped"
        await asyncio.sleep(0.05)
    delay = 0.25
    while time.monotonic() < deadline:
        viewer = cluster.viewer(camera_id, account=account)
        reply = await viewer.connect(http)
        if reply.status == 201 and await viewer.wait_frames(1, timeout=10):
            return viewer
        await viewer.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise AssertionError("no picture after the node died")
