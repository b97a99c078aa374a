"""The event stream (SSE): one-use tickets, and who hears what."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from support.events import EventReader
from support.gateway import ONE_PERSON, REFERENCE, VIEWER, camera_entry, settings_for
from support.viewer import Viewer

from gateway.app import SESSIONS
from gateway.control import tickets as tickets_module

ADMIN = "admin-1"
OTHER = "other-1"


def demo_cameras(*ids: str) -> list[dict]:
    return [camera_entry(i, "demo:testsrc", demo_size="160x120", demo_fps=10) for i in ids]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_an_event_ticket_works_once_and_for_30_s(start_gateway, monkeypatch):
    clock = Clock()
    # Tickets are stamped with wall-clock time: any node of a cluster checks them.
    monkeypatch.setattr(tickets_module, "time", SimpleNamespace(time=clock))
    gateway = await start_gateway(settings_for(demo_cameras("cam-a")))

    async def ticket() -> str:
        response = await gateway.http.post(
            f"{gateway.url}/api/events/ticket", headers=gateway.bearer()
        )
        body = await response.json()
        assert body["url"] == f"/api/events?ticket={body['ticket']}"
        return body["ticket"]

    async def stream(ticket: str) -> tuple[int, str | None]:
        async with gateway.http.get(f"{gateway.url}/api/events?ticket={ticket}") as response:
            code = None if response.status == 200 else (await response.json())["code"]
            return response.status, code

    once = await ticket()
    assert await stream(once) == (200, None)
    assert await stream(once) == (401, "invalid_ticket")  # used
    assert await stream("made-up") == (401, "invalid_ticket")
    fresh, stale = await ticket(), await ticket()
    clock.now += 29.9
    assert await stream(fresh) == (200, None)
    clock.now += 0.2  # 30.1 s after it was issued
    assert await stream(stale) == (401, "invalid_ticket")  # expired


async def test_a_viewers_event_stream_carries_only_its_own_sessions_and_grants(start_gateway):
    gateway = await start_gateway(
        settings_for(demo_cameras("cam-a", "cam-b"), governance=ONE_PERSON), grant=False
    )
    mine = gateway.grant(members=[VIEWER], cameras=["cam-a"])
    theirs = gateway.grant(members=[OTHER], cameras=["cam-b"])
    admin = gateway.bearer(ADMIN, admin=True)
    early = await watching(gateway, "cam-b", OTHER)  # live before the streams open
    async with EventReader(gateway) as own, EventReader(gateway, ADMIN, admin=True) as every:
        hello = own.events[0]
        assert [g["id"] for g in hello["grants"]] == [mine.id] and hello["sessions"] == []
        assert [s["account"] for s in every.events[0]["sessions"]] == [OTHER]
        # Everything that happens to the other account and its grant ...
        late = await watching(gateway, "cam-b", OTHER)
        for path, body in [
            (f"/api/grants/{theirs.id}", {"purpose": "更新"}),
            (f"/api/sessions/{early.session_id}/revoke", {"reason": "測試"}),
            (f"/api/grants/{theirs.id}/revoke", {"reason": "活動結束"}),
        ]:
            method = "PATCH" if path.endswith(str(theirs.id)) else "POST"
            response = await gateway.http.request(
                method, gateway.url + path, json=body, headers=admin
            )
            assert response.status == 200, await response.text()
        created = await gateway.http.post(
            f"{gateway.url}/api/grants", json=grant_body(OTHER, "cam-b"), headers=admin
        )
        assert created.status == 201
        # ... and then to this viewer's own session.
        me = await watching(gateway, "cam-a", VIEWER)
        await me.viewer.close(gateway.http)
        await own.wait_for("session_ended")
        for kind in ("session_started", "grant_updated", "grant_revoked", "grant_created"):
            await every.wait_for(kind)
    heard = own.events[1:]
    assert [e["type"] for e in heard] == ["session_ended"], heard  # its own, and only that
    assert heard[0]["session_id"] == me.session_id and heard[0]["code"] == "viewer_left"
    ended = {e["session_id"] for e in every.events if e["type"] == "session_ended"}
    assert {early.session_id, late.session_id, me.session_id} <= ended  # administrators hear all
    assert len(gateway.app[SESSIONS]) == 0
    for watcher in (early, late):
        await watcher.viewer.close()


class Watching(SimpleNamespace):
    viewer: Viewer
    session_id: str


async def watching(gateway, camera_id: str, account: str) -> Watching:
    viewer = gateway.viewer(camera_id, account)
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(2)
    return Watching(viewer=viewer, session_id=viewer.session_url.rsplit("/", 1)[1])


def grant_body(member: str, camera_id: str) -> dict:
    now = datetime.now(UTC)
    return {
        "project": "另一個專案",
        "purpose": "test",
        "authorization_ref": REFERENCE,
        "members": [member],
        "cameras": [camera_id],
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }
