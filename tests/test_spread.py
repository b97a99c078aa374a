"""A hot camera spreads over nodes, still pulled once from the police (issue 25).

Real PostgreSQL, real HAProxy (deploy/haproxy.cfg), two gateway processes with
`[cluster] spread_viewers = 2`, a real RTSP camera, aiortc viewers and a Chromium
tile. The camera's owner keeps two viewers; the third is sent (307) to the other
node, which takes the owner's stream of the camera instead of opening it. The
tests run in order on one cluster; the last one kills the owner.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from support.camera import RtspCamera, make_camera
from support.chromium import open_page, wait_state
from support.cluster import (
    Cluster,
    Postgres,
    closed_within,
    cluster_settings,
    node_of,
    running_postgres,
    sessions_of,
    watching,
)
from support.gateway import bearer
from support.viewer import Viewer, offer_sdp

pytestmark = [pytest.mark.slow, pytest.mark.rtsp]

CAMERA = "hot-1"
SPREAD_VIEWERS = 2
ACCOUNTS = [f"crowd-{i}" for i in range(14)]
# The first frame on an edge node may come this much later than on the owner
# (issue 25): the edge keeps its own GOP cache, filled from the owner's at once.
EDGE_FIRST_FRAME_MARGIN = 0.100
# kill -9 to a picture again, measured in tests/test_cluster.py (docs/cluster.md:
# about 4 s; that test allows 15 s on a busy machine, and so does this one).
FAILOVER_SECONDS = 15.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspCamera]:
    cam = make_camera(width=320, height=240, fps=15, bitrate_kbps=300, gop_seconds=1)
    cam.start()
    try:
        yield cam
    finally:
        cam.stop()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, camera: RtspCamera
) -> Iterator[Cluster]:
    base = cluster_settings({CAMERA: camera})
    base["cluster"] = {**base["cluster"], "spread_viewers": SPREAD_VIEWERS}
    running = Cluster(
        tmp_path_factory.mktemp("spread"),
        postgres.create_database("spread"),
        base,
        ("gw1", "gw2"),
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def busy_cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, camera: RtspCamera
) -> Iterator[Cluster]:
    """Spreading by the CPU alone: no count, and busy at 0.1 % of what a node may use,
    which a node pulling a camera always is."""
    base = cluster_settings({CAMERA: camera})
    base["cluster"] = {**base["cluster"], "spread_cpu_percent": 0.1}
    running = Cluster(
        tmp_path_factory.mktemp("busy"), postgres.create_database("busy"), base, ("gw1", "gw2")
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def timed(viewer: Viewer, http: aiohttp.ClientSession) -> float:
    """Seconds from the offer to the viewer's first decoded frame."""
    started = time.monotonic()
    await watching(viewer, http, frames=1)
    return viewer.frames[0][0] - started


async def spread_crowd(
    cluster: Cluster, http: aiohttp.ClientSession, accounts: list[str]
) -> tuple[str, str, list[Viewer], list[Viewer], list[float], list[float]]:
    """SPREAD_VIEWERS viewers on the camera's owner, then two more: they go to the other
    node. Returns the owner, the edge, their viewers, and each one's first frame."""
    first = cluster.viewer(CAMERA, account=accounts[0])
    await watching(first, http)
    owner = node_of(first)
    edge = next(n for n in cluster.nodes if n != owner)
    second = cluster.viewer(CAMERA, account=accounts[1])
    owner_first_frame = [await timed(second, http)]
    assert node_of(second) == owner
    # The owner hears the other node's load every second; then the third goes there.
    await asyncio.sleep(1.5)
    on_edge, edge_first_frame = [], []
    for account in accounts[2:4]:
        viewer = cluster.viewer(CAMERA, account=account)
        edge_first_frame.append(await timed(viewer, http))  # the first starts the edge's hub
        assert viewer.response is not None and viewer.response.history, "no 307 followed"
        assert viewer.response.history[0].status == 307
        assert node_of(viewer) == edge
        on_edge.append(viewer)
    return owner, edge, [first, second], on_edge, owner_first_frame, edge_first_frame


async def test_viewers_past_spread_viewers_play_on_the_other_node_from_one_pull(
    cluster: Cluster, camera: RtspCamera, http: aiohttp.ClientSession, browser: Any
) -> None:
    """The third viewer plays on the other node, a browser tile too; the edge's viewers
    keep playing when the owner's leave; a revoke ends one within a second; and the
    camera sees one RTSP connection throughout."""
    await cluster.wait_balanced(http)
    # The cameras backend's own checks (rise 2, every second), which wait_balanced
    # cannot see: until both servers are up there, the hash may still move the camera.
    await asyncio.sleep(2.5)
    accounts = ACCOUNTS[:5]
    await cluster.grant(http, [CAMERA], accounts)
    before = camera.total_connections
    owner, edge, on_owner, on_edge, owner_first, edge_first = await spread_crowd(
        cluster, http, accounts
    )
    try:
        # Viewers that come while the owner holds its two (one leaves, one comes back).
        for _ in range(2):
            await on_owner[1].close(http)
            on_owner[1] = cluster.viewer(CAMERA, account=accounts[1])
            owner_first.append(await timed(on_owner[1], http))
            assert node_of(on_owner[1]) == owner
        print(
            f"first frame: owner {[round(t * 1000) for t in owner_first]} ms,"
            f" edge {[round(t * 1000) for t in edge_first]} ms"
        )
        assert statistics.median(edge_first) <= (
            statistics.median(owner_first) + EDGE_FIRST_FRAME_MARGIN
        ), (owner_first, edge_first)
        # A browser tile follows the 307 too (fetch keeps the offer and the token).
        page = await open_page(
            browser, cluster.url() + "/", bearer(accounts[4])["Authorization"][7:]
        )
        await page.page.wait_for_selector("#cameras button")
        await page.page.click(f"#cameras button[data-camera='{CAMERA}']")
        await wait_state(page, CAMERA, "live", timeout=30)
        assert {s["node"] for s in await sessions_of(cluster, http, accounts[4])} == {edge}
        await page.page.close()

        # The owner's own viewers leave: the edge's keep playing, from the same pull.
        for viewer in on_owner:
            await viewer.close(http)
        await asyncio.sleep(2.0)  # past the owner's linger_seconds (1 s)
        for viewer in on_edge:
            assert await viewer.wait_frames(15, timeout=5), "the edge's picture stopped"
            assert not viewer.closed.is_set()

        # A revoke (sent to the owner) ends an edge viewer within a second.
        revoked = on_edge[1]
        started = time.monotonic()
        status, body = await cluster.admin(
            http, "POST", f"/api/accounts/{accounts[3]}/revoke", node=owner, json={"reason": "x"}
        )
        assert status == 200, body
        await closed_within(revoked, 3)
        took = time.monotonic() - started
        print(f"revoke on the owner to the edge's viewer closed: {took * 1000:.0f} ms")
        assert took < 1.0, took
        assert not on_edge[0].closed.is_set()

        # One RTSP connection throughout: the edge took the owner's stream.
        assert camera.connections == 1
        assert camera.total_connections - before == 1
    finally:
        for viewer in on_owner + on_edge:
            await viewer.close(http)


async def test_a_link_to_a_node_is_only_an_owners(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A /whep/nodes/ link not signed by an owner is refused; the stream between nodes
    answers only a node, and never through HAProxy."""
    headers = {"Content-Type": "application/sdp", **bearer(ACCOUNTS[0])}
    forged = f"/whep/nodes/gw2/{CAMERA}?origin=gw1&until=9999999999&sig=00"
    async with http.post(cluster.url() + forged, data=await offer_sdp(), headers=headers) as reply:
        assert reply.status == 403, await reply.text()
        assert (await reply.json())["code"] == "bad_spread"
    async with http.get(f"{cluster.url('gw1')}/cluster/cameras/{CAMERA}") as reply:
        assert reply.status == 403, await reply.text()
    async with http.get(f"{cluster.url()}/cluster/cameras/{CAMERA}") as reply:
        assert reply.status == 404


async def test_offers_that_come_at_once_are_spread_too(
    cluster: Cluster, camera: RtspCamera, http: aiohttp.ClientSession
) -> None:
    """Six offers at once: the owner counts those it is admitting with its sessions,
    so it keeps exactly SPREAD_VIEWERS and sends the rest on, all from one pull."""
    await cluster.wait_balanced(http)
    accounts = ACCOUNTS[8:14]
    await cluster.grant(http, [CAMERA], accounts)
    await asyncio.sleep(1.5)  # each node has heard the other's load
    before = camera.total_connections
    viewers = [cluster.viewer(CAMERA, account=account) for account in accounts]
    try:
        replies = await asyncio.gather(*(viewer.connect(http) for viewer in viewers))
        assert [reply.status for reply in replies] == [201] * len(viewers)
        for viewer in viewers:
            assert await viewer.wait_frames(3, timeout=20), "no picture"
        nodes = [node_of(viewer) for viewer in viewers]
        counts = {node: nodes.count(node) for node in set(nodes)}
        print(f"six offers at once: {counts}")
        assert sorted(counts.values()) == [SPREAD_VIEWERS, len(viewers) - SPREAD_VIEWERS], counts
        assert camera.connections == 1
        assert camera.total_connections - before <= 1  # still pulled for an earlier test's?
    finally:
        for viewer in viewers:
            await viewer.close(http)


async def test_when_the_owner_dies_the_edge_pulls_the_camera_itself(
    cluster: Cluster, camera: RtspCamera, http: aiohttp.ClientSession
) -> None:
    await cluster.wait_balanced(http)
    accounts = ACCOUNTS[4:8]
    await cluster.grant(http, [CAMERA], accounts)
    owner, _, on_owner, on_edge, _, _ = await spread_crowd(cluster, http, accounts)
    staying = on_edge[0]
    before = camera.total_connections
    try:
        killed_at = time.monotonic()
        cluster.nodes[owner].kill()
        # The owner's pull is gone with it; the edge opens the camera: one pull again.
        while camera.total_connections == before:
            assert time.monotonic() - killed_at < FAILOVER_SECONDS, "the edge never pulled"
            await asyncio.sleep(0.01)
        seen = len(staying.frames)
        assert await staying.wait_frames(5, timeout=FAILOVER_SECONDS), "no picture after"
        took = staying.frames[seen][0] - killed_at
        print(f"kill -9 of the owner to the edge's picture from its own pull: {took:.2f} s")
        assert took < FAILOVER_SECONDS, took
        for viewer in on_edge:
            assert not viewer.closed.is_set()
        assert camera.wait_connections(1, timeout=5)
        assert camera.total_connections == before + 1
    finally:
        for viewer in on_owner + on_edge:
            await viewer.close()


async def test_a_busy_owner_sends_the_next_viewer_on(
    busy_cluster: Cluster, camera: RtspCamera, http: aiohttp.ClientSession
) -> None:
    """`spread_cpu_percent` alone: the owner, busy past it with the camera's first
    viewer, sends the second to the other node, which relays the owner's pull."""
    cluster = busy_cluster
    await cluster.wait_balanced(http)
    await asyncio.sleep(2.5)  # the balancer's own checks (see the first test)
    assert camera.wait_connections(0, timeout=10)  # the other cluster's pull is over
    accounts = ACCOUNTS[:2]
    await cluster.grant(http, [CAMERA], accounts)
    first = await watching(cluster.viewer(CAMERA, account=accounts[0]), http)
    second = cluster.viewer(CAMERA, account=accounts[1])
    try:
        # A window of the owner's CPU with the camera pulled, and the other's load heard.
        await asyncio.sleep(2.5)
        await watching(second, http)
        assert second.response is not None and second.response.history, "no 307 followed"
        assert node_of(second) != node_of(first)
        assert camera.connections == 1
        async with http.get(f"{cluster.url(node_of(first))}/metrics") as reply:
            text = await reply.text()
        assert f'cctv_viewers_sent_on_total{{camera="{CAMERA}",why="cpu"}} 1.0' in text
    finally:
        for viewer in (first, second):
            await viewer.close(http)
