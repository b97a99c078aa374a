"""`api:` cameras: the stream URL comes from the police API, asked at pull time only.

The police API is a stand-in: a small aiohttp server that requires a token, answers
with the real GStreamer test camera's URL (its password in it), and can be told to
fail, stall, or hand out a URL that no longer works.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import re
import secrets
import statistics
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support.events import EventReader
from support.gateway import camera_entry, settings_for

from gateway.app import SESSIONS
from gateway.logs import log_handler

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SMALL = {"width": 320, "height": 240, "fps": 25}
USER = "gw"
ADMIN = "admin-1"


class PoliceApiStandIn:
    """The police API: GET /cctv/{ref}/stream with `Authorization: Bearer <token>`.

    mode: "ok", "error" (500), "stall" (never answers in time), "bad_answer" (JSON
    without the URL), "expired" (a URL whose password no longer works).
    """

    def __init__(self, camera, password: str) -> None:
        self.camera = camera
        self.password = password
        self.token = "stand-in-" + secrets.token_hex(12)
        self.marker = "ANSWER-" + secrets.token_hex(8)  # in every answer: must never show
        self.mode = "ok"
        self.calls: list[tuple[float, str, str]] = []  # (when, path, mode)
        self.released = asyncio.Event()  # ends every stall
        app = web.Application()
        app.router.add_get("/cctv/{ref}/stream", self.json_answer)
        app.router.add_get("/redirect/{ref}", self.redirect_answer)
        self.server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> PoliceApiStandIn:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.released.set()
        await self.server.close()

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def url_with(self, password: str) -> str:
        return f"rtsp://{USER}:{password}@127.0.0.1:{self.camera.port}/cam"

    @property
    def stream_url(self) -> str:
        password = "expired-" + self.password if self.mode == "expired" else self.password
        return self.url_with(password)

    async def _check(self, request: web.Request) -> None:
        self.calls.append((time.monotonic(), request.path, self.mode))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(text=json.dumps({"error": "bad token " + self.marker}))
        if self.mode == "stall":
            await asyncio.wait_for(self.released.wait(), timeout=30)
        if self.mode == "error":
            raise web.HTTPInternalServerError(text=f"database down {self.marker}")

    async def json_answer(self, request: web.Request) -> web.Response:
        await self._check(request)
        if self.mode == "bad_answer":
            return web.json_response({"data": {"note": self.marker}})
        return web.json_response(
            {"data": {"stream": {"url": self.stream_url}, "expires_in": 60, "note": self.marker}}
        )

    async def redirect_answer(self, request: web.Request) -> web.Response:
        await self._check(request)
        raise web.HTTPFound(self.stream_url, text=self.marker)


def police_api_table(api: PoliceApiStandIn, answer: str = "json", **extra) -> dict:
    if answer == "redirect":
        where = {"url": f"{api.base}/redirect/{{ref}}", "answer": "redirect"}
    else:
        where = {"url": f"{api.base}/cctv/{{ref}}/stream", "url_field": "data.stream.url"}
    return {"police_api": {**where, "token": {"env": "POLICE_API_TOKEN"}, **extra}}


class GatewayLog:
    """The gateway's log lines through its own handler (JSON, credentials masked)."""

    def __enter__(self) -> GatewayLog:
        self.stream = io.StringIO()
        self.handler = log_handler("json", self.stream)
        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.addHandler(self.handler)
        self.root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.level)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


class Seen:
    """Everything the gateway said to anyone: bodies and headers."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    async def add(self, response) -> str:
        text = await response.text()
        self.parts.append(f"{response.status} {dict(response.headers)} {text}")
        return text

    def check_clean(self, api: PoliceApiStandIn, log: GatewayLog, *extra: str) -> None:
        said = "\n".join(self.parts)
        assert said and log.text
        for secret in (api.token, api.password, api.marker, f"127.0.0.1:{api.camera.port}", *extra):
            assert secret not in said, f"{secret!r} in a response"
            assert secret not in log.text, f"{secret!r} in a log line"
        assert "rtsp://" not in said and "rtsp://" not in log.text


async def everything_a_client_can_read(gateway, seen: Seen) -> None:
    admin = gateway.bearer(ADMIN, admin=True)
    for path, headers in (
        ("/api/cameras", gateway.bearer()),
        ("/api/cameras", admin),
        ("/api/me", gateway.bearer()),
        ("/api/sessions", admin),
        ("/api/audit?limit=1000", admin),
        ("/api/grants", admin),
        ("/metrics", {}),
        ("/healthz", {}),
    ):
        response = await gateway.http.get(f"{gateway.url}{path}", headers=headers)
        await seen.add(response)


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in the metrics"
    return float(match[1])


@pytest.fixture
def police_token(monkeypatch):
    def set_token(api: PoliceApiStandIn) -> None:
        monkeypatch.setenv("POLICE_API_TOKEN", api.token)

    return set_token


@pytest.mark.parametrize("answer", ["json", "redirect"])
async def test_a_viewer_plays_an_api_camera_and_the_api_is_asked_only_then(
    make_rtsp_camera, start_gateway, police_token, answer
):
    password = "Pw-" + secrets.token_hex(6)
    camera = make_rtsp_camera(user=USER, password=password, **SMALL)
    seen = Seen()
    with GatewayLog() as log:
        async with PoliceApiStandIn(camera, password) as api:
            police_token(api)
            cameras = [camera_entry("cam", "api:CAM-0123")]
            gateway = await start_gateway(
                settings_for(cameras, tables=police_api_table(api, answer))
            )
            # Signing in, listing, the event stream, the console: nobody asks the API.
            async with EventReader(gateway) as events:
                await everything_a_client_can_read(gateway, seen)
                assert api.calls == []
                seen.parts.append(json.dumps(events.events))

                viewer = gateway.viewer("cam")
                response = await viewer.connect(gateway.http)
                await seen.add(response)
                assert response.status == 201
                assert await viewer.wait_frames(10)
                assert [path for _, path, _ in api.calls] == [
                    "/redirect/CAM-0123" if answer == "redirect" else "/cctv/CAM-0123/stream"
                ]
                await everything_a_client_can_read(gateway, seen)
                seen.parts.append(json.dumps(events.events))
            await viewer.close(gateway.http)

            # A pull restarted within reuse_seconds uses the answer it has.
            deadline = time.monotonic() + 10
            while camera.connections:
                assert time.monotonic() < deadline, "the pull did not stop after the linger"
                await asyncio.sleep(0.1)
            again = gateway.viewer("cam")
            assert (await again.connect(gateway.http)).status == 201
            assert await again.wait_frames(5)
            assert len(api.calls) == 1
            metrics = await (await gateway.http.get(f"{gateway.url}/metrics")).text()
            assert metric(metrics, "cctv_police_api_requests_total") == 1
            assert metric(metrics, "cctv_police_api_reused_total") == 1
            assert metric(metrics, "cctv_police_api_failures_total", '{reason="timeout"}') == 0
            await again.close(gateway.http)
    seen.check_clean(api, log)


FAULTS = {
    # fault: (what the stand-in does, the viewer's words, the metric's reason)
    "error": ("error", "police API answered 500", "http_error"),
    "stall": ("stall", "police API did not answer within 1 s", "timeout"),
    "wrong token": ("ok", "police API refused the gateway's credentials (401)", "refused"),
    "no URL in the answer": (
        "bad_answer",
        "police API answer has no data.stream.url",
        "bad_answer",
    ),
    "down": ("ok", "police API cannot be reached", "unreachable"),
}


@pytest.mark.parametrize("fault", FAULTS)
async def test_the_api_failing_gives_503_with_retry_after_and_reveals_nothing(
    make_rtsp_camera, start_gateway, monkeypatch, fault
):
    mode, words, reason = FAULTS[fault]
    password = "Pw-" + secrets.token_hex(6)
    camera = make_rtsp_camera(user=USER, password=password, **SMALL)
    seen = Seen()
    with GatewayLog() as log:
        async with PoliceApiStandIn(camera, password) as api:
            api.mode = mode
            token = "not-the-token" if fault == "wrong token" else api.token
            monkeypatch.setenv("POLICE_API_TOKEN", token)
            tables = police_api_table(api, timeout_seconds=1)
            if fault == "down":
                tables["police_api"]["url"] = "http://127.0.0.1:9/cctv/{ref}/stream"
            gateway = await start_gateway(
                settings_for([camera_entry("cam", "api:CAM-0123")], tables=tables)
            )
            started = time.monotonic()
            response = await gateway.viewer("cam").connect(gateway.http)
            waited = time.monotonic() - started
            body = json.loads(await seen.add(response))
            assert response.status == 503
            assert int(response.headers["Retry-After"]) >= 1
            assert body["code"] == "camera_unavailable"
            assert words in body["error"], body
            assert waited < 3, f"the viewer waited {waited:.1f} s"
            assert camera.total_connections == 0
            # The pull keeps trying, with backoff, through its linger.
            await asyncio.sleep(1.5)
            metrics = await (await gateway.http.get(f"{gateway.url}/metrics")).text()
            seen.parts.append(metrics)
            failures = metric(metrics, "cctv_police_api_failures_total", f'{{reason="{reason}"}}')
            assert failures >= 2
            assert metric(metrics, "cctv_police_api_requests_total") == failures
            await everything_a_client_can_read(gateway, seen)
    assert words in log.text
    seen.check_clean(api, log, "not-the-token")


async def test_an_expired_url_is_asked_for_again_when_the_pull_reconnects(
    make_rtsp_camera, start_gateway, police_token
):
    password = "Pw-" + secrets.token_hex(6)
    camera = make_rtsp_camera(user=USER, password=password, **SMALL)
    seen = Seen()
    with GatewayLog() as log:
        async with PoliceApiStandIn(camera, password) as api:
            police_token(api)
            # Answers are good for 5 minutes, unless they stop working.
            tables = police_api_table(api, reuse_seconds=300)
            gateway = await start_gateway(
                settings_for(
                    [camera_entry("cam", "api:CAM-0123")],
                    tables=tables,
                    reconnect_initial_seconds=0.2,
                    reconnect_max_seconds=0.8,
                )
            )
            async with EventReader(gateway) as events:
                viewer = gateway.viewer("cam")
                assert (await viewer.connect(gateway.http)).status == 201
                assert await viewer.wait_frames(5)
                assert len(api.calls) == 1

                # The police rotate the camera's credentials: the URL the gateway holds
                # is dead, and for a while their API is down too.
                api.mode = "error"
                new_password = "Pw-" + secrets.token_hex(6)
                await asyncio.to_thread(camera.restart, user=USER, password=new_password, **SMALL)
                offline = await events.wait_for("camera_state", timeout=10)
                assert offline["state"] == "offline"
                await asyncio.sleep(1.5)  # retries with backoff while the viewer stays
                failed = [t for t, _, mode in api.calls if mode == "error"]
                assert len(failed) >= 2
                gaps = [b - a for a, b in itertools.pairwise(failed)]
                assert gaps[-1] >= gaps[0] * 0.9 and max(gaps) >= 0.35, gaps

                api.password = new_password
                api.mode = "ok"
                assert await viewer.wait_frames(10, timeout=15), "no picture after the rotation"
                assert len(gateway.app[SESSIONS]) == 1  # the viewer never signalled again
                assert api.calls[-1][2] == "ok"
                seen.parts.append(json.dumps(events.events))
            await everything_a_client_can_read(gateway, seen)
            await viewer.close(gateway.http)
    seen.check_clean(api, log, password, new_password)


async def test_cold_start_of_an_api_camera_against_plain_rtsp(
    make_rtsp_camera, start_gateway, police_token
):
    password = "Pw-" + secrets.token_hex(6)
    camera = make_rtsp_camera(user=USER, password=password, **SMALL)
    async with PoliceApiStandIn(camera, password) as api:
        police_token(api)
        cameras = [
            camera_entry("plain", api.url_with(password)),
            camera_entry("api", "api:CAM-0123"),
        ]
        # reuse_seconds = 0: every cold start asks the API, the worst case.
        tables = police_api_table(api, reuse_seconds=0)
        gateway = await start_gateway(settings_for(cameras, tables=tables, linger_seconds=0.2))
        times: dict[str, list[float]] = {"plain": [], "api": []}
        for _ in range(3):
            for camera_id in ("plain", "api"):
                viewer = gateway.viewer(camera_id)
                started = time.monotonic()
                assert (await viewer.connect(gateway.http)).status == 201
                assert await viewer.wait_frames(1)
                times[camera_id].append(time.monotonic() - started)
                await viewer.close(gateway.http)
                deadline = time.monotonic() + 10
                while camera.connections:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
        assert len(api.calls) == 3
    plain, via_api = statistics.median(times["plain"]), statistics.median(times["api"])
    print(f"cold start to first frame: rtsp:// {plain:.3f} s, api: {via_api:.3f} s (medians)")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "police-api-cold-start.json").write_text(
        json.dumps({"rtsp_seconds": times["plain"], "api_seconds": times["api"]}, indent=2)
    )
    assert via_api - plain < 0.5, times
