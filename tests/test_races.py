"""Races at a session's opening (issue 27): what an attacker with a valid token, or an
administrator's revocation, meets while offers are being answered.

One gateway, real parallel offers over HTTP, real aiortc viewers counting the RTP
packets they receive.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
from support.database_lock import hold_write_lock
from support.gateway import VIEWER, bearer, camera_entry, settings_for
from support.viewer import offer_sdp
from support.waiting import until

from gateway.app import SESSIONS

LIMIT = 12
CAMERAS = [camera_entry("cam", "demo:testsrc", demo_size="160x120")]


async def test_a_burst_of_offers_from_one_account_admits_exactly_its_limit(start_gateway, tmp_path):
    """200 offers at once with one token (a red-team run got 35 sessions for a limit of
    12): an offer counts from the moment it is taken until its session ends, also
    while its start row waits on a busy database (a second process holds the write
    lock for half a second)."""
    database = str(tmp_path / "gw.sqlite3")
    gateway = await start_gateway(
        settings_for(CAMERAS, database=database, limits={"max_sessions_per_account": LIMIT})
    )
    offer, headers = await offer_sdp(), {"Content-Type": "application/sdp", **bearer()}

    async def post(http: aiohttp.ClientSession, at: float) -> aiohttp.ClientResponse:
        await asyncio.sleep(at)
        return await http.post(f"{gateway.url}/whep/cam", data=offer, headers=headers)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        holder = await hold_write_lock(database, 0.5)
        try:
            # Spread over the lock: later offers arrive while the first wait on it.
            answers = await asyncio.gather(*(post(http, i * 0.002) for i in range(200)))
        finally:
            await asyncio.to_thread(holder.wait, 10)
        statuses = sorted(a.status for a in answers)
        assert statuses.count(201) == LIMIT, statuses
        assert set(statuses) == {201, 429}, set(statuses)
        listed = await gateway.http.get(
            f"{gateway.url}/api/sessions", headers=gateway.bearer("admin-1", admin=True)
        )
        assert len((await listed.json())["sessions"]) == LIMIT
        for answer in answers:
            if answer.status == 201:
                await http.delete(gateway.url + answer.headers["Location"], headers=headers)


async def packets_received(viewer) -> int:
    if viewer.pc.connectionState == "new":  # refused: it never had an answer
        return 0
    stats = await viewer.pc.getStats()
    return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")


async def test_a_grant_revoked_during_offers_lets_no_packet_through_after_its_answer(
    start_gateway,
):
    """A grant revoked at a random moment among offers being answered: once its 200 is
    back, no viewer receives another RTP packet (a session still writing its start
    used to go live and play until the next sweep)."""
    gateway = await start_gateway(
        settings_for(CAMERAS, limits={"max_sessions_per_account": 60}), grant=False
    )
    admin = gateway.bearer("admin-1", admin=True)
    rng = random.Random(27)
    for round_ in range(5):  # 5 rounds of 10 offers: 50 offers
        account = f"viewer-{round_}"
        grant = gateway.grant(members=[account])
        viewers = [gateway.viewer("cam", account=account) for _ in range(10)]

        async def offer(viewer, delay: float) -> int:
            await asyncio.sleep(delay)
            return (await viewer.connect(gateway.http)).status

        offers = asyncio.gather(*(offer(v, rng.uniform(0, 0.3)) for v in viewers))
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        revoked = await gateway.http.post(
            f"{gateway.url}/api/grants/{grant.id}/revoke", json={"reason": "x"}, headers=admin
        )
        assert revoked.status == 200, await revoked.text()
        await asyncio.sleep(0.1)  # packets sent before the 200, still in the sockets
        before = [await packets_received(v) for v in viewers]
        statuses = await offers
        await asyncio.sleep(1.5)  # three sweeps' worth: the old hole let media through
        after = [await packets_received(v) for v in viewers]
        assert after == before, (round_, statuses, before, after)
        assert not [s for s in gateway.app[SESSIONS] if s.account == account]
        for viewer in viewers:
            await viewer.close()
    rows = await gateway.audit()
    started = {r["session_id"] for r in rows if r["event"] == "session_start"}
    ended = {r["session_id"] for r in rows if r["event"] == "session_end"}
    assert started == ended, started ^ ended  # every start written has its end


async def test_an_account_revoked_while_its_offer_is_written_down_is_never_answered(
    start_gateway, tmp_path
):
    """A real fault keeps the session's start row waiting (a second process holds the
    database's write lock for a while). An account revoked meanwhile reaches the offer
    in that state: it is refused with `revoked` and no packet flows. (An account's
    revocation is not a ban, so no sweep would catch a session that slipped past.)"""
    database = str(tmp_path / "gw.sqlite3")
    gateway = await start_gateway(settings_for(CAMERAS, database=database))
    holder = await hold_write_lock(database, 1.2)
    try:
        viewer = gateway.viewer("cam")
        offering = asyncio.ensure_future(viewer.connect(gateway.http))
        # Taken, negotiated, and waiting for its start row to be written.
        await until(lambda: len(gateway.app[SESSIONS]) == 1, timeout=5, what="the offer")
        revoked = await gateway.http.post(
            f"{gateway.url}/api/accounts/{VIEWER}/revoke",
            json={"reason": "x"},
            headers=gateway.bearer("admin-1", admin=True),
        )
        assert revoked.status == 200, await revoked.text()
        answer = await asyncio.wait_for(offering, 10)
        assert answer.status == 403 and (await answer.json())["code"] == "revoked"
    finally:
        await asyncio.to_thread(holder.wait, 10)
    await asyncio.sleep(1.0)
    assert await packets_received(viewer) == 0
    assert len(gateway.app[SESSIONS]) == 0
    rows = await gateway.audit()
    started = {r["session_id"] for r in rows if r["event"] == "session_start"}
    ended = {r["session_id"] for r in rows if r["event"] == "session_end"}
    assert started == ended, started ^ ended
    await viewer.close()
