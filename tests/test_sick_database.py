"""Fail closed, never stall: access under a full disk, a lock held elsewhere, and grants
that cannot be read (issue 10). Real faults: a size-limited tmpfs (the tests run as
root), a second process holding a write transaction, a renamed table."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.database_lock import hold_write_lock
from support.events import EventReader
from support.gateway import REFERENCE, VIEWER, camera_entry, settings_for
from support.viewer import Viewer

from gateway.access.tokens import mint
from gateway.app import ACCESS, HUBS, SESSIONS, SETTINGS, STORE

pytestmark = pytest.mark.slow

ADMIN = "admin-1"
# The goal for the largest gap between a live viewer's frames while another
# process holds the database's write lock is 100 ms (57 ms measured on a quiet
# machine, README). The viewer decodes in the test's own process, on the same two
# cores, so the bound has headroom for a loaded machine; a frame that waited on the
# database would wait a lock step (100 ms) at least, and the old busy timeout 5 s.
MAX_FRAME_GAP_SECONDS = 0.25
CLOSE_WITHIN_SECONDS = 1.0


def demo(camera_id: str = "cam", fps: int = 25) -> dict:
    return camera_entry(camera_id, "demo:testsrc", demo_size="160x120", demo_fps=fps)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the database: a disk a test can really fill."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (the tests run as root): {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Use up every free byte of `disk`; the file returned frees it again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:
        for size in (65536, 1):  # then the last few bytes
            try:
                while file.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return filler


async def watch(gateway, camera_id: str = "cam", account: str = VIEWER) -> Viewer:
    viewer = gateway.viewer(camera_id, account)
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(3)
    return viewer


async def until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def new_grant() -> dict:
    """A grant an administrator would create now: a write the database must take."""
    now = datetime.now(UTC)
    return {
        "project": "p",
        "purpose": "p",
        "authorization_ref": REFERENCE,
        "members": ["x"],
        "cameras": ["cam"],
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }


def admin_headers(gateway) -> dict[str, str]:
    return gateway.bearer(ADMIN, admin=True)


async def status_of(gateway, path: str) -> int:
    return (await gateway.http.get(gateway.url + path)).status


async def test_a_full_disk_ends_revoked_sessions_at_once_and_records_them_later(
    start_gateway, small_disk
):
    settings = settings_for([demo("cam"), demo("cam-2")], database=str(small_disk / "gw.sqlite3"))
    gateway = await start_gateway(settings, grant=False)
    one = gateway.grant(cameras=["cam"])
    two = gateway.grant(cameras=["cam-2"], project="second")
    first = await watch(gateway, "cam")
    second = await watch(gateway, "cam-2")
    filler = fill(small_disk)

    # Make the gateway need the disk: administrators' changes fail until it is full
    # for SQLite too (a WAL reuses the space it already has for a while).
    grant_body = new_grant()
    for _ in range(200):
        created = await gateway.http.post(
            gateway.url + "/api/grants", json=grant_body, headers=admin_headers(gateway)
        )
        if created.status == 503:
            break
        assert created.status == 201
    assert created.status == 503, "the disk never filled up for SQLite"
    assert created.headers["Retry-After"]

    # Revoking a session ends it within a second; the answer says the record waits.
    (session,) = [s for s in gateway.app[SESSIONS] if s.camera_id == "cam"]
    started = time.monotonic()
    revoking = asyncio.ensure_future(
        gateway.http.post(
            f"{gateway.url}/api/sessions/{session.id}/revoke",
            json={"reason": "full disk test"},
            headers=admin_headers(gateway),
        )
    )
    await asyncio.wait_for(first.closed.wait(), CLOSE_WITHIN_SECONDS)
    revoke_to_closed = time.monotonic() - started
    revoked = await revoking
    assert revoked.status == 503, await revoked.text()
    body = await revoked.json()
    assert body["code"] == "record_pending" and "access has ended" in body["error"]

    # Revoking a grant: its sessions end at once too.
    revoking = asyncio.ensure_future(
        gateway.http.post(
            f"{gateway.url}/api/grants/{two.id}/revoke",
            json={"reason": "full disk test"},
            headers=admin_headers(gateway),
        )
    )
    await asyncio.wait_for(second.closed.wait(), CLOSE_WITHIN_SECONDS)
    revoked = await revoking
    assert revoked.status == 503 and (await revoked.json())["code"] == "record_pending"

    # Nobody new is let in, and the gateway says it is not ready.
    refused = await gateway.viewer("cam").connect(gateway.http)
    assert refused.status == 503 and refused.headers["Retry-After"]
    assert await status_of(gateway, "/readyz") == 503
    metrics = await (await gateway.http.get(gateway.url + "/metrics")).text()
    pending = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("cctv_audit_pending_rows ")
    )
    assert pending > 0

    # Space again: what waited lands, in order, and the gateway is ready again.
    filler.unlink()
    assert await until(lambda: _ready(gateway), timeout=10)
    rows = await gateway.audit()
    events = [(r["event"], r["session_id"]) for r in rows]
    assert ("session_revoked", session.id) in events
    assert ("session_end", session.id) in events
    assert gateway.app[STORE].grants.get(two.id).revoked_at is not None
    assert gateway.app[STORE].grants.get(one.id).revoked_at is None
    print(f"\nfull disk: revoke to closed {revoke_to_closed * 1000:.0f} ms")
    for viewer in (first, second):
        await viewer.close()


async def _ready(gateway) -> bool:
    return await status_of(gateway, "/readyz") == 200


async def test_a_write_lock_held_elsewhere_never_stalls_video_or_health(start_gateway, tmp_path):
    database = str(tmp_path / "gw.sqlite3")
    gateway = await start_gateway(settings_for([demo("cam")], database=database), grant=False)
    gateway.grant(cameras=["cam"])
    short = gateway.grant(members=["viewer-2"], cameras=["cam"], lasts=60 + 8)
    watching = await watch(gateway)
    ending = await watch(gateway, account="viewer-2")
    seconds = 25
    holder = await hold_write_lock(database, seconds)
    try:
        locked_at = time.monotonic()
        frames_before = len(watching.frames)

        health = []
        for _ in range(5):
            started = time.monotonic()
            assert await status_of(gateway, "/healthz") == 200
            health.append(time.monotonic() - started)
        # New viewers and administrators' writes get 503 with Retry-After.
        refused = await gateway.viewer("cam").connect(gateway.http)
        assert refused.status == 503 and refused.headers["Retry-After"]
        assert "cannot be recorded" in (await refused.json())["error"]
        grant_body = new_grant()
        created = await gateway.http.post(
            gateway.url + "/api/grants", json=grant_body, headers=admin_headers(gateway)
        )
        assert created.status == 503 and created.headers["Retry-After"]

        # A grant that ends during the lock ends its session within a second.
        ends_in = (short.ends_at - datetime.now(UTC)).total_seconds()
        await asyncio.wait_for(ending.closed.wait(), ends_in + CLOSE_WITHIN_SECONDS)
        late = (datetime.now(UTC) - short.ends_at).total_seconds()
        assert late < CLOSE_WITHIN_SECONDS, late

        remaining = seconds - (time.monotonic() - locked_at) - 1
        await asyncio.sleep(max(0.0, remaining))
        during = [t for t, _, _ in watching.frames[frames_before:]]
    finally:
        holder.wait(seconds + 10)
    gaps = [b - a for a, b in itertools.pairwise(during)]
    print(
        f"\nlock held {seconds} s: {len(during)} frames, largest gap {max(gaps) * 1000:.0f} ms,"
        f" /healthz slowest {max(health) * 1000:.1f} ms, grant end to closed {late * 1000:.0f} ms"
    )
    # A gap can also come from this process (gateway and viewer together) stalling
    # past LoopWatch's 0.5 s, whatever the cause: the hub then skips to the next
    # keyframe, as under any overload. One full run on the 2-core VM saw a 1.4 s gap
    # (547 frames); alone it never has (43-49 ms). The failure says which it was.
    behind = gateway.app[HUBS].get("cam").frames_dropped_behind
    assert len(during) > 20 * (seconds - 3), behind  # 25 fps, kept up all along
    assert max(gaps) <= MAX_FRAME_GAP_SECONDS, f"frames dropped, loop behind: {behind}"
    assert max(health) < 0.05
    # Once the lock is gone, what waited is written.
    assert await until(lambda: _ready(gateway), timeout=10)
    await watching.close()


async def test_grants_that_cannot_be_read_still_end_sessions_at_their_window(
    start_gateway, tmp_path
):
    database = str(tmp_path / "gw.sqlite3")
    gateway = await start_gateway(settings_for([demo("cam")], database=database), grant=False)
    grant = gateway.grant(cameras=["cam"], lasts=60 + 5)
    viewer = await watch(gateway)
    with sqlite3.connect(database) as other:  # another process breaks the grants table
        other.execute("ALTER TABLE grants RENAME TO grants_gone")
    try:
        refused = await gateway.viewer("cam").connect(gateway.http)
        assert refused.status == 503
        assert (await refused.json())["code"] == "database_unavailable"
        ends_in = (grant.ends_at - datetime.now(UTC)).total_seconds()
        await asyncio.wait_for(viewer.closed.wait(), ends_in + CLOSE_WITHIN_SECONDS)
        late = (datetime.now(UTC) - grant.ends_at).total_seconds()
        assert late < CLOSE_WITHIN_SECONDS, late
        assert await status_of(gateway, "/readyz") == 503
    finally:
        with sqlite3.connect(database) as other:
            other.execute("ALTER TABLE grants_gone RENAME TO grants")
    (row,) = await gateway.audit(event="session_end")
    assert row["detail"]["code"] == "grant_ended"


def short_sign_ins(database: str):
    """Settings whose tokens get no leeway, so a 3 s token lasts 3 s."""
    settings = settings_for([demo("cam")], database=database)
    return dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, leeway_seconds=0.0)
    )


async def test_a_session_ends_with_its_sign_in_unless_renewed(start_gateway, tmp_path):
    gateway = await start_gateway(short_sign_ins(str(tmp_path / "gw.sqlite3")))
    settings_auth = gateway.app[SETTINGS].auth

    def bearer(ttl: float) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(settings_auth, VIEWER, ttl_seconds=ttl)}"}

    lapsing = Viewer(gateway.url, "cam", headers=bearer(3))
    renewed = Viewer(gateway.url, "cam", headers=bearer(3))
    for viewer in (lapsing, renewed):
        assert (await viewer.connect(gateway.http)).status == 201
        assert await viewer.wait_frames(2)
    async with EventReader(gateway) as events:
        answer = await gateway.http.post(renewed.session_url + "/renew", headers=bearer(60))
        assert answer.status == 200, await answer.text()
        await asyncio.wait_for(lapsing.closed.wait(), 3 + CLOSE_WITHIN_SECONDS + 1)
        ended = await events.wait_for("session_ended")
        assert ended["code"] == "token_expired"
    await asyncio.sleep(1)
    assert not renewed.closed.is_set()
    assert len(gateway.app[SESSIONS]) == 1
    await renewed.close(gateway.http)


async def test_one_account_cannot_take_every_place(start_gateway, tmp_path):
    from support.viewer import offer_sdp

    settings = settings_for(
        [demo("cam")],
        database=str(tmp_path / "gw.sqlite3"),
        limits={"max_sessions_per_account": 3, "max_tickets_per_account": 2},
        max_viewers_per_camera=10,
    )
    gateway = await start_gateway(settings)
    gateway.grant(members=["viewer-2"])
    offer = await offer_sdp()
    headers = {"Content-Type": "application/sdp", **gateway.bearer()}
    statuses = []
    for _ in range(4):
        response = await gateway.http.post(f"{gateway.url}/whep/cam", data=offer, headers=headers)
        statuses.append(response.status)
    assert statuses == [201, 201, 201, 429]
    assert response.headers["Retry-After"] and (await response.json())["code"] == "too_many"
    # Another account still gets its place at the camera.
    other = {"Content-Type": "application/sdp", **gateway.bearer("viewer-2")}
    assert (
        await gateway.http.post(f"{gateway.url}/whep/cam", data=offer, headers=other)
    ).status == 201
    tickets = [
        (
            await gateway.http.post(f"{gateway.url}/api/events/ticket", headers=gateway.bearer())
        ).status
        for _ in range(3)
    ]
    assert tickets == [200, 200, 429]


def test_the_failed_token_delay_is_capped_and_never_overflows():
    from gateway.access.throttle import FailureThrottle

    throttle = FailureThrottle(base_seconds=0.2, cap_seconds=5.0)
    # 5000 failures at once: queued one after another, each step capped at 5 s.
    waits = [throttle.delay_for("203.0.113.1") for _ in range(5000)]
    steps = [b - a for a, b in zip([0.0, *waits], waits, strict=False)]
    assert [round(step, 3) for step in steps[:3]] == [0.2, 0.4, 0.8]
    assert max(steps) < 5.0 + 1e-6
    assert throttle.delay_for("203.0.113.2") == 0.2  # per address


async def test_a_flood_of_bad_tokens_writes_one_row_per_address_and_minute(start_gateway, tmp_path):
    settings = settings_for([demo("cam")], database=str(tmp_path / "gw.sqlite3"))
    gateway = await start_gateway(settings)
    for i in range(50):
        response = await gateway.http.get(
            gateway.url + "/api/me", headers={"Authorization": f"Bearer nonsense-{i}"}
        )
        assert response.status == 401
    await gateway.app[ACCESS].failed_sign_ins.close()  # writes what a minute's end would
    rows = await gateway.audit(event="token_rejected")
    assert len(rows) <= 2 and sum(r["detail"]["count"] for r in rows) == 50
    assert os.path.getsize(tmp_path / "gw.sqlite3") < 1 << 20
