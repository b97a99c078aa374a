"""Issue 15, tablets in the field: TURN with a credential per session, a lighter
picture for weak links, and a player that chooses between them.

Real parts: Debian's coturn on loopback (REST API secret, `--max-bps` for a weak
link), a GStreamer RTSP camera, aiortc viewers and aioice TURN clients, and
Debian's headless Chromium forced to relay only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
from datetime import UTC, datetime, timedelta

import aioice
import pytest
from playwright.async_api import expect
from support.cgroup import chromium_processes, cpu_quota, join
from support.chromium import (
    Page,
    assert_plays,
    jwt,
    open_viewer,
    player,
    wait_state,
    wait_until,
)
from support.gateway import camera_entry, settings_for
from support.turn import Coturn, available

from gateway.app import HUBS, SESSIONS
from gateway.config import ConfigError, TurnSettings, parse_settings
from gateway.signaling import TurnServers

TURN_SECRET = "coturn-static-auth-secret-for-tests"
SMALL = {"width": 640, "height": 360}  # the camera; "low" here is 320x180


def needs_coturn() -> None:
    if not available():
        pytest.skip("Debian's coturn is not installed (apt-get install coturn)")


def turn_table(*urls: str, secret: str = TURN_SECRET, **extra) -> dict:
    return {"turn": {"urls": list(urls), "secret": secret, **extra}}


def parse_links(headers) -> list[dict[str, str]]:
    """The answer's Link headers, as a WHEP client reads them."""
    servers = []
    for value in headers.getall("Link", []):
        for entry in re.split(r",\s*(?=<)", value):
            url = re.match(r"\s*<([^>]+)>", entry)
            params = dict(re.findall(r';\s*([a-z-]+)="([^"]*)"', entry))
            if url and params.get("rel") == "ice-server":
                servers.append({"url": url.group(1), **params})
    return servers


async def turn_relay(url: str, username: str, credential: str) -> list[str]:
    """What aioice gathers through this TURN server: ["host", "relay"] when it
    allocated a relay, ["host"] when the server refused."""
    match = re.fullmatch(r"turn:([\d.]+):(\d+)\?transport=(udp|tcp)", url)
    assert match, url
    connection = aioice.Connection(
        ice_controlling=True,
        turn_server=(match.group(1), int(match.group(2))),
        turn_username=username,
        turn_password=credential,
        turn_transport=match.group(3),
        use_ipv6=False,
    )
    try:
        await asyncio.wait_for(connection.gather_candidates(), 10)
        return sorted({c.type for c in connection.local_candidates})
    finally:
        await connection.close()


# --- settings ------------------------------------------------------------------------


def base_settings(**tables) -> dict:
    return {
        "auth": {"secret": "x" * 40},
        "cameras": [{"id": "a", "name": "a", "lat": 1, "lon": 1, "source": "demo:testsrc"}],
        **tables,
    }


def test_turn_and_rendition_settings():
    settings = parse_settings(base_settings())
    assert not settings.turn.enabled
    assert [r.name for r in settings.relay.renditions] == ["low"]  # on by default
    low = settings.relay.renditions[0]
    assert (low.size, low.fps, low.bitrate_kbps) == ((640, 360), 15.0, 400)

    settings = parse_settings(
        base_settings(
            turn={
                "urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org"],
                "secret": {"env": "TURN_SECRET"},
                "ttl_seconds": 600,
            },
            relay={"renditions": [{"name": "tiny", "size": "320x180", "fps": 10}]},
        ),
        {"TURN_SECRET": TURN_SECRET},
    )
    assert settings.turn.secret == TURN_SECRET
    assert TURN_SECRET not in repr(settings)
    assert settings.relay.rendition("tiny").size == (320, 180)
    assert settings.relay.rendition("low") is None
    assert parse_settings(base_settings(relay={"renditions": []})).relay.renditions == ()

    for tables, words in [
        ({"turn": {"urls": ["turn:t.example.org"]}}, "turn.secret: [turn] urls need"),
        ({"turn": {"secret": TURN_SECRET}}, "turn.urls: a [turn] secret needs"),
        ({"turn": {"urls": ["stun:t.example.org"], "secret": TURN_SECRET}}, "turn.urls: entry 0"),
        ({"turn": {"urls": ["turn:u:p@t.example.org"], "secret": TURN_SECRET}}, "without a user"),
        ({"turn": {"urls": ["turn:t.example.org"], "secret": "short"}}, "at least 16 bytes"),
        ({"turn": {"urls": ["turn:t.example.org"], "secret": TURN_SECRET, "ttl_seconds": 5}}, ""),
        ({"relay": {"renditions": [{"name": "vp8"}]}}, "'vp8' is reserved"),
        ({"relay": {"renditions": [{"name": "Low Res"}]}}, "relay.renditions[0].name"),
        ({"relay": {"renditions": [{"name": "a"}, {"name": "a"}]}}, "same name 'a'"),
        ({"relay": {"renditions": [{"name": "a", "size": "641x360"}]}}, "even"),
    ]:
        with pytest.raises(ConfigError) as error:
            parse_settings(base_settings(**tables))
        assert words in str(error.value)
        assert "short" not in str(error.value) and TURN_SECRET not in str(error.value)


# --- TURN credentials ----------------------------------------------------------------


def test_credentials_follow_coturns_rest_scheme_and_expire_with_the_grant():
    now = time.time()
    servers = TurnServers(
        TurnSettings(urls=("turn:127.0.0.1:3478",), secret=TURN_SECRET, ttl_seconds=600),
        clock=lambda: now,
    )
    credential = servers.issue()
    expiry, _, name = credential.username.partition(":")
    assert int(expiry) == int(now + 600) and re.fullmatch(r"[0-9a-f]{16}", name)
    mac = hmac.new(TURN_SECRET.encode(), credential.username.encode(), hashlib.sha1).digest()
    assert credential.credential == base64.b64encode(mac).decode()
    assert servers.issue().username != credential.username  # one per session
    # Never past the grant window the session was admitted under.
    grant_ends = datetime.fromtimestamp(now + 120, UTC)
    assert servers.issue(grant_ends).expires_at == grant_ends.replace(microsecond=0)
    assert int(servers.issue(grant_ends).username.split(":")[0]) == int(now + 120)
    assert TURN_SECRET not in repr(servers) and credential.credential not in repr(credential)
    (link,) = credential.link_headers()
    assert link == (
        f'<turn:127.0.0.1:3478>; rel="ice-server"; username="{credential.username}"; '
        f'credential="{credential.credential}"; credential-type="password"'
    )


async def test_the_answer_hands_each_session_its_own_turn_credential(start_gateway, caplog):
    """The Link headers of the answer (WHEP), through CORS too; coturn allocates a
    relay with them, and refuses them once expired or made with another secret."""
    needs_coturn()
    caplog.set_level(logging.DEBUG)
    dashboard = "http://127.0.0.1:9"
    with Coturn(TURN_SECRET) as turn:
        cameras = [camera_entry("demo", "demo:testsrc", demo_size="320x240")]
        settings = settings_for(
            cameras,
            cors={"origins": [dashboard]},
            tables=turn_table(turn.urls["udp"], turn.urls["tcp"], ttl_seconds=900),
        )
        gateway = await start_gateway(settings, grant=False)
        grant = gateway.grant(lasts=3600)
        viewer = gateway.viewer("demo")
        viewer.headers["Origin"] = dashboard
        started = time.time()
        response = await viewer.connect(gateway.http)
        assert response.status == 201
        exposed = response.headers["Access-Control-Expose-Headers"].lower()
        assert "link" in exposed
        servers = parse_links(response.headers)
        assert [s["url"] for s in servers] == [turn.urls["udp"], turn.urls["tcp"]]
        assert {s["credential-type"] for s in servers} == {"password"}
        (username,) = {s["username"] for s in servers}
        (credential,) = {s["credential"] for s in servers}
        expiry = int(username.split(":")[0])
        assert started + 890 < expiry <= time.time() + 900  # ttl_seconds
        (session,) = gateway.app[SESSIONS]
        assert session.turn.username == username
        # The audit row of the start names the TURN username (never the credential).
        (start,) = await gateway.audit(event="session_start")
        assert start["detail"]["turn_username"] == username
        assert credential not in str(start)
        assert await viewer.wait_frames(3)

        # coturn takes them, over UDP and TCP.
        for url in turn.urls.values():
            assert await turn_relay(url, username, credential) == ["host", "relay"]
        # coturn's log lines come a moment after its answers.
        await wait_until(lambda: turn.allocations == 2, 3)

        # A second session gets another name; a grant ending in 5 minutes bounds it.
        await gateway.http.patch(
            f"{gateway.url}/api/grants/{grant.id}",
            json={"ends_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()},
            headers=gateway.bearer("admin-1", admin=True),
        )
        other = gateway.viewer("demo")
        response = await other.connect(gateway.http)
        assert response.status == 201
        (second,) = {s["username"] for s in parse_links(response.headers)}
        assert second != username
        assert int(second.split(":")[0]) <= time.time() + 300

        # Expired, or made with another secret: refused, nothing allocated.
        expired = TurnServers(
            TurnSettings(urls=(turn.urls["udp"],), secret=TURN_SECRET, ttl_seconds=60),
            clock=lambda: time.time() - 3600,
        ).issue()
        wrong = TurnServers(
            TurnSettings(urls=(turn.urls["udp"],), secret="another-secret-0123456789")
        ).issue()
        for bad in (expired, wrong):
            assert await turn_relay(turn.urls["udp"], bad.username, bad.credential) == ["host"]
        await wait_until(lambda: turn.refused >= 2, 3)
        assert turn.allocations == 2
        await viewer.close(gateway.http)
        await other.close(gateway.http)
    text = caplog.text
    assert TURN_SECRET not in text and credential not in text


async def test_without_turn_settings_the_answer_has_no_link(start_gateway):
    cameras = [camera_entry("demo", "demo:testsrc", demo_size="320x240")]
    gateway = await start_gateway(settings_for(cameras))
    viewer = gateway.viewer("demo")
    response = await viewer.connect(gateway.http)
    assert response.status == 201 and "Link" not in response.headers
    await viewer.close(gateway.http)


# --- the lighter rendition -------------------------------------------------------------


def answered_profile(answer: str) -> str:
    match = re.search(r"a=fmtp:\d+ .*profile-level-id=([0-9a-fA-F]{6})", answer)
    assert match, answer
    return match.group(1).lower()


async def test_the_lighter_rendition_is_shared_and_the_original_stays_passthrough(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(profile="high", **SMALL)
    settings = settings_for(
        [camera_entry("cam", camera.url)],
        renditions=[{"name": "low", "size": "320x180", "fps": 15, "bitrate_kbps": 300}],
    )
    gateway = await start_gateway(settings)
    hub = gateway.app[HUBS].get("cam")
    original = gateway.viewer("cam")
    assert (await original.connect(gateway.http)).status == 201
    assert await original.wait_frames(10)
    assert not hub.renditions, "nobody pays for a lighter picture before someone asks"

    low = []
    for _ in range(2):
        viewer = gateway.viewer("cam")
        viewer.url += "?rendition=low"
        response = await viewer.connect(gateway.http)
        assert response.status == 201, await response.text()
        assert answered_profile(viewer.answer).startswith("42e0")  # Constrained Baseline
        low.append(viewer)
    for viewer in low:
        assert await viewer.wait_frames(20)
        assert {(w, h) for _, w, h in viewer.frames[-10:]} == {(320, 180)}
    (rendition,) = hub.renditions.values()  # one encode for both
    assert rendition.spec.name == "low" and len(rendition.feeds) == 2
    assert camera.connections == 1
    # About 15 fps of the camera's 25.
    start, count = time.monotonic(), len(low[0].frames)
    await asyncio.sleep(3)
    fps = (len(low[0].frames) - count) / (time.monotonic() - start)
    assert 13 <= fps <= 16.5, fps
    # The original is the camera's own stream, at its own size and rate.
    assert hub.info.mode == "passthrough"
    assert {(w, h) for _, w, h in original.frames[-10:]} == {(640, 360)}
    assert await original.wait_frames(25, timeout=1.6)

    sessions = {s.id: s for s in gateway.app[SESSIONS]}
    assert sorted(str(s.rendition) for s in sessions.values()) == ["None", "low", "low"]
    starts = await gateway.audit(event="session_start")
    assert sorted(str(row["detail"].get("rendition")) for row in starts) == ["None", "low", "low"]

    await low[0].close(gateway.http)
    assert hub.renditions, "the encode lives while one of its viewers remains"
    assert await low[1].wait_frames(5)
    await low[1].close(gateway.http)
    assert not hub.renditions, "the last viewer of the lighter picture stops its encode"
    assert await original.wait_frames(10)
    await original.close(gateway.http)


async def test_an_unknown_rendition_is_a_clear_400(start_gateway):
    cameras = [camera_entry("demo", "demo:testsrc", demo_size="320x240")]
    gateway = await start_gateway(settings_for(cameras))
    viewer = gateway.viewer("demo")
    viewer.url += "?rendition=huge"
    response = await viewer.connect(gateway.http)
    assert response.status == 400
    body = await response.json()
    assert body["code"] == "unknown_rendition"
    assert "'huge'" in body["error"] and "low" in body["error"]
    assert not gateway.app[SESSIONS]
    (row,) = await gateway.audit(event="access_denied")
    assert row["detail"]["code"] == "unknown_rendition"
    await viewer.close()


# --- Chromium through TURN -------------------------------------------------------------

# A network where nothing but the TURN server gets through: every peer connection
# the page makes may use relay candidates only (as if UDP and TCP to the gateway
# were blocked).
RELAY_ONLY = """(() => {
  const Native = window.RTCPeerConnection;
  const relay = (config) => ({ ...(config || {}), iceTransportPolicy: "relay" });
  window.RTCPeerConnection = class extends Native {
    constructor(config) { super(relay(config)); }
    setConfiguration(config) { return super.setConfiguration(relay(config)); }
  };
})();"""

# Or the page asks the tiles for it: ice-transport-policy="relay" on each one the
# viewer page makes.
RELAY_ATTRIBUTE = """(() => {
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function (name, ...rest) {
    const element = create.call(this, name, ...rest);
    if (String(name).toLowerCase() === "cctv-player") {
      element.setAttribute("ice-transport-policy", "relay");
    }
    return element;
  };
})();"""

# How the tile's connection runs: the selected pair's local candidate, and frames.
SELECTED_PAIR = """async (sel) => {
    const pc = document.querySelector(sel).pc;
    const stats = await pc.getStats();
    let pair, frames = 0;
    stats.forEach((s) => {
      const id = s.type === "transport" && s.selectedCandidatePairId;
      if (id) pair = stats.get(id);
      if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded;
    });
    const local = pair && stats.get(pair.localCandidateId);
    return { type: local?.candidateType, relayProtocol: local?.relayProtocol, frames };
}"""


def demo_camera(camera_id: str = "cam-a") -> dict:
    return camera_entry(camera_id, "demo:testsrc", demo_size="320x240", demo_fps=15)


async def relay_only_viewer(
    browser, gateway, camera_id: str = "cam-a", script: str = RELAY_ONLY
) -> Page:
    """The viewer page, on a network where only TURN gets through, with a tile open."""
    context = await browser.new_context()
    await context.add_init_script(script)
    viewer = Page(await context.new_page(), jwt(gateway))
    await viewer.page.goto(f"{gateway.url}/#token={viewer.token}")
    await viewer.page.wait_for_selector("#cameras button")
    await viewer.page.click(f"#cameras button[data-camera='{camera_id}']")
    return viewer


@pytest.mark.parametrize(("transport", "forced_by"), [("udp", "network"), ("tcp", "attribute")])
async def test_chromium_forced_to_relay_plays_through_turn(
    start_gateway, browser, transport, forced_by
):
    needs_coturn()
    with Coturn(TURN_SECRET) as turn:
        settings = settings_for([demo_camera()], tables=turn_table(turn.urls[transport]))
        gateway = await start_gateway(settings)
        script = RELAY_ONLY if forced_by == "network" else RELAY_ATTRIBUTE
        viewer = await relay_only_viewer(browser, gateway, script=script)
        await assert_plays(viewer, "cam-a")
        path = await viewer.page.evaluate(SELECTED_PAIR, player("cam-a"))
        assert path["type"] == "relay" and path["relayProtocol"] == transport, path
        assert turn.allocations >= 1
        # The relay candidate was trickled to the session (WHEP PATCH).
        (session,) = gateway.app[SESSIONS]
        ice = await gateway.audit(event="session_ice")
        assert any(row["detail"]["candidates_added"] >= 1 for row in ice), ice
        assert session.turn is not None
        await viewer.check_token_stays_out_of_urls()
        html = await viewer.page.content()
        assert TURN_SECRET not in html


async def test_a_relayed_tile_renews_its_turn_credential_before_it_expires(start_gateway, browser):
    """coturn refuses to refresh an allocation once its credential has expired, so a
    relayed tile moves to a new session with fresh credentials a little before that,
    the picture never going black."""
    needs_coturn()
    with Coturn(TURN_SECRET) as turn:
        settings = settings_for([demo_camera()], tables=turn_table(turn.urls["udp"]))
        gateway = await start_gateway(settings)
        turn_servers = gateway.app[SESSIONS].options.turn
        # Credentials that expire 20 s after they are made (the ttl is an hour).
        turn_servers._clock = lambda: time.time() - turn_servers.ttl_seconds + 20
        viewer = await relay_only_viewer(browser, gateway)
        await assert_plays(viewer, "cam-a")
        (first,) = gateway.app[SESSIONS]
        await viewer.page.evaluate(WATCH_PICTURE, player("cam-a"))
        await wait_until(lambda: first.id not in {s.id for s in gateway.app[SESSIONS]}, 25)
        (second,) = gateway.app[SESSIONS]
        assert second.rendition is None and second.turn.username != first.turn.username
        assert await viewer.page.evaluate("darkest") > 0.2, "the tile went black"
        path = await viewer.page.evaluate(SELECTED_PAIR, player("cam-a"))
        assert path["type"] == "relay", path
        assert await tile(viewer, "cam-a", "p.state") == "live"
        assert turn.allocations >= 2
        (end,) = await gateway.audit(event="session_end")
        assert end["session_id"] == first.id and end["detail"]["code"] == "viewer_left"


@pytest.mark.parametrize("fault", ["expired", "wrong_secret"])
async def test_a_refused_turn_credential_is_a_clear_error_and_allocates_nothing(
    start_gateway, browser, fault
):
    needs_coturn()
    with Coturn(TURN_SECRET) as turn:
        secret = TURN_SECRET if fault == "expired" else "not-the-servers-secret-0123"
        settings = settings_for([demo_camera()], tables=turn_table(turn.urls["udp"], secret=secret))
        gateway = await start_gateway(settings)
        if fault == "expired":
            # The gateway's clock is two hours slow: its credentials (an hour's ttl)
            # expired an hour ago.
            gateway.app[SESSIONS].options.turn._clock = lambda: time.time() - 7200
        viewer = await relay_only_viewer(browser, gateway)
        await wait_state(viewer, "cam-a", "error", timeout=15)
        message = viewer.page.locator(f"{player('cam-a')} .message")
        text = await message.inner_text()
        assert "無法播放" in text and "中繼伺服器 (TURN) 拒絕了連線憑證" in text, text
        await wait_until(lambda: turn.refused >= 1, 3)
        assert turn.allocations == 0
        # The session the offer made is ended (WHEP DELETE), not left to time out.
        await asyncio.sleep(0.5)
        assert not gateway.app[SESSIONS]
        (end,) = await gateway.audit(event="session_end")
        assert end["detail"]["code"] == "viewer_left"


# --- the data saver and automatic switching -----------------------------------------

# Watches the tile's picture every 50 ms while a switch happens: the share of lit
# pixels of whatever video the tile shows (0 when black or empty), and its size.
WATCH_PICTURE = """(sel) => {
    const canvas = document.createElement("canvas");
    canvas.width = 64;
    canvas.height = 36;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    window.darkest = 1;
    window.sizes = new Set();
    window.watching = setInterval(() => {
      const video = document.querySelector(sel).video;
      let lit = 0;
      if (video.videoWidth) {
        g.drawImage(video, 0, 0, 64, 36);
        const d = g.getImageData(0, 0, 64, 36).data;
        for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) lit++;
        sizes.add(`${video.videoWidth}x${video.videoHeight}`);
      }
      darkest = Math.min(darkest, lit / (64 * 36));
    }, 50);
}"""


async def tile(page: Page, camera_id: str, expression: str):
    return await page.page.evaluate(
        f"(sel) => {{ const p = document.querySelector(sel); return {expression}; }}",
        player(camera_id),
    )


async def wait_rendition(
    page: Page, camera_id: str, rendition: str | None, timeout: float
) -> float:
    started = time.monotonic()
    await page.page.wait_for_function(
        """([sel, want]) => { const p = document.querySelector(sel);
            return p.rendition === want && p.state === "live"; }""",
        arg=[player(camera_id), rendition],
        timeout=timeout * 1000,
    )
    return time.monotonic() - started


async def test_the_data_saver_switches_without_a_black_tile(start_gateway, browser):
    cameras = [demo_camera()]
    settings = settings_for(cameras, renditions=[{"name": "low", "size": "160x120", "fps": 10}])
    gateway = await start_gateway(settings)
    viewer = await open_viewer(browser, gateway)
    await viewer.page.click("#cameras button[data-camera='cam-a']")
    await assert_plays(viewer, "cam-a")
    (original,) = gateway.app[SESSIONS]
    assert original.rendition is None
    saver = viewer.page.locator(f"{player('cam-a')} .saver")
    await expect(saver).to_have_text("省流量")
    await expect(saver).to_have_attribute("aria-pressed", "false")
    badge = viewer.page.locator(f"{player('cam-a')} .lite")
    await expect(badge).to_be_hidden()

    await viewer.page.evaluate(WATCH_PICTURE, player("cam-a"))
    await saver.click()
    await expect(saver).to_have_attribute("aria-pressed", "true")
    took = await wait_rendition(viewer, "cam-a", "low", timeout=10)
    print(f"data saver on: the lighter picture shows {took:.2f} s after the click")
    await expect(badge).to_have_text("省流量")
    assert await viewer.page.evaluate("darkest") > 0.2, "the tile went black"
    (lighter,) = gateway.app[SESSIONS]  # the old session has ended
    assert lighter.rendition == "low" and lighter.id != original.id
    assert await tile(viewer, "cam-a", "[p.video.videoWidth, p.video.videoHeight]") == [160, 120]
    # Both sessions audited; the new one started before the old one ended.
    starts = await gateway.audit(event="session_start")
    ends = await gateway.audit(event="session_end")
    (new_start,) = [r for r in starts if r["session_id"] == lighter.id]
    (old_end,) = [r for r in ends if r["session_id"] == original.id]
    assert new_start["detail"]["rendition"] == "low"
    assert new_start["seq"] < old_end["seq"] and old_end["detail"]["code"] == "viewer_left"

    await saver.click()  # off again: the camera's own picture
    await wait_rendition(viewer, "cam-a", None, timeout=10)
    await expect(badge).to_be_hidden()
    assert await viewer.page.evaluate("darkest") > 0.2, "the tile went black"
    assert await tile(viewer, "cam-a", "[p.video.videoWidth, p.video.videoHeight]") == [320, 240]
    assert len(gateway.app[SESSIONS]) == 1
    await viewer.check_token_stays_out_of_urls()


# What the tile does, second by second: its state, picture and switches (printed).
TIMELINE = """(sel) => {
    const p = document.querySelector(sel);
    const t0 = performance.now();
    window.changes = [];
    window.timeline = [];
    p.addEventListener("renditionchange", (e) => changes.push([e.detail.rendition, e.detail.why]));
    let last = "";
    setInterval(() => {
      const now = JSON.stringify([p.state, p.rendition, p.switching, p.stats.link]);
      if (now !== last) timeline.push(`${((performance.now() - t0) / 1000).toFixed(1)} s ${now}`);
      last = now;
    }, 200);
}"""


async def test_without_a_lighter_rendition_the_data_saver_says_so_and_keeps_playing(
    start_gateway, browser
):
    gateway = await start_gateway(settings_for([demo_camera()], renditions=[]))
    viewer = await open_viewer(browser, gateway)
    await viewer.page.click("#cameras button[data-camera='cam-a']")
    await assert_plays(viewer, "cam-a")
    (session,) = gateway.app[SESSIONS]
    saver = viewer.page.locator(f"{player('cam-a')} .saver")
    await saver.click()
    await expect(saver).to_be_disabled()
    await expect(saver).to_have_attribute("title", "此閘道器未提供省流量畫面")
    assert await tile(viewer, "cam-a", "[p.rendition, p.state]") == [None, "live"]
    assert [s.id for s in gateway.app[SESSIONS]] == [session.id]
    (refused,) = await gateway.audit(event="access_denied")
    assert refused["detail"]["code"] == "unknown_rendition"


WEAK_LINK_BYTES_PER_SECOND = 75_000  # coturn's --max-bps: about 600 kbit/s per session


@pytest.mark.slow
async def test_a_weak_link_switches_to_the_lighter_picture_and_back(
    make_rtsp_camera, start_gateway, browser
):
    """A 2 Mbit/s 720p camera through a TURN relay that carries 600 kbit/s: the tile
    takes the lighter picture by itself, plays it steadily, and goes back to the
    camera's own once the relay is fast again."""
    needs_coturn()
    camera = make_rtsp_camera(
        width=1280, height=720, bitrate_kbps=2000, pattern="bars", filler=True
    )
    with (
        Coturn(TURN_SECRET, max_bps=WEAK_LINK_BYTES_PER_SECOND) as weak,
        Coturn(TURN_SECRET) as fast,
    ):
        settings = settings_for(
            [camera_entry("cam", camera.url)], tables=turn_table(weak.urls["udp"])
        )
        gateway = await start_gateway(settings)
        hub = gateway.app[HUBS].get("cam")
        viewer = await relay_only_viewer(browser, gateway, "cam")
        try:
            await weak_link_plays(gateway, hub, viewer, fast)
        finally:
            print("timeline:", *await viewer.page.evaluate("window.timeline || []"), sep="\n  ")


async def weak_link_plays(gateway, hub, viewer: Page, fast: Coturn) -> None:
    clicked = time.monotonic()
    # Try the camera's own picture again after 8 s of good link (30 s by default).
    await viewer.page.wait_for_function(
        "(sel) => document.querySelector(sel)", arg=player("cam"), timeout=5000
    )
    await tile(viewer, "cam", "(p.adaptation.upAfterMs = 8000)")
    await viewer.page.evaluate(TIMELINE, player("cam"))
    await wait_rendition(viewer, "cam", "low", timeout=25)
    switched = time.monotonic() - clicked
    print(f"weak link: the lighter picture shows {switched:.1f} s after the tile opened")
    assert switched < 15
    assert await viewer.page.evaluate("changes") == [["low", "weak_link"]]
    badge = viewer.page.locator(f"{player('cam')} .lite")
    await expect(badge).to_have_text("連線不佳・省流量")
    (session,) = gateway.app[SESSIONS]
    assert session.rendition == "low"
    assert "low" in hub.renditions and hub.info.mode == "passthrough"

    # A steady picture of at least 12 fps, at the lighter size.
    before = await viewer.page.evaluate(SELECTED_PAIR, player("cam"))
    assert before["type"] == "relay"
    await asyncio.sleep(5)
    after = await viewer.page.evaluate(SELECTED_PAIR, player("cam"))
    fps = (after["frames"] - before["frames"]) / 5
    print(f"weak link, lighter picture: {fps:.1f} fps")
    assert fps >= 12
    size = await tile(viewer, "cam", "[p.video.videoWidth, p.video.videoHeight]")
    assert size == [640, 360]
    freezes = await tile(viewer, "cam", "p.state")
    assert freezes == "live"

    # After 8 s of good link the tile tries the camera's own picture again; through
    # the slow relay that fails, and it stays on (or comes back to) the lighter one.
    await viewer.page.wait_for_function(
        "(sel) => document.querySelector(sel).switching?.rendition === null",
        arg=player("cam"),
        timeout=20_000,
    )
    await viewer.page.wait_for_function(
        """(sel) => { const p = document.querySelector(sel);
            return !p.switching && p.rendition === "low" && p.state === "live"; }""",
        arg=player("cam"),
        timeout=30_000,
    )
    back = time.monotonic()
    assert await tile(viewer, "cam", "p.adaptation.upAfterMs") == 8000

    # The link is fast again (new relays go through a TURN server without a limit).
    # The next try waits twice as long (hysteresis), then keeps the camera's own.
    gateway.app[SESSIONS].options.turn.urls = (fast.urls["udp"],)
    await viewer.page.wait_for_function(
        "(sel) => document.querySelector(sel).switching?.rendition === null",
        arg=player("cam"),
        timeout=30_000,
    )
    waited = time.monotonic() - back
    print(f"the next try came {waited:.1f} s after the failed one (twice 8 s of good link)")
    assert waited >= 15
    await wait_rendition(viewer, "cam", None, timeout=15)
    print(f"limit lifted: the camera's own picture {time.monotonic() - back:.1f} s later")
    await expect(badge).to_be_hidden()
    await asyncio.sleep(4)
    assert await tile(viewer, "cam", "p.rendition") is None, "it fell back down"
    size = await tile(viewer, "cam", "[p.video.videoWidth, p.video.videoHeight]")
    assert size == [1280, 720]
    assert fast.allocations >= 1
    assert not hub.renditions, "the lighter encode stopped with its last viewer"
    starts = await gateway.audit(event="session_start")
    # Every session audited, in order: the camera's own, the lighter one, the try on
    # the slow relay (which showed no picture in time, or one that did not last, and
    # then the lighter one again), and the one that stayed.
    starts.sort(key=lambda row: row["seq"])
    renditions = [row["detail"].get("rendition") for row in starts]
    assert renditions in ([None, "low", None, None], [None, "low", None, "low", None]), renditions


@pytest.mark.slow
async def test_a_busy_machine_on_a_lan_keeps_the_cameras_own_picture(
    make_rtsp_camera, start_gateway, browser
):
    """Issue 26: a busy machine is no weak link. On loopback (no loss), with the
    browser held to a share of one core while it decodes four 720p tiles, it decodes
    late, freezes and drops frames, and its bandwidth estimate dips; yet no tile
    leaves the camera's own picture: a switch would end and start a session (two
    audit rows) for nothing, and again each time the load came back."""
    camera = make_rtsp_camera(
        width=1280, height=720, bitrate_kbps=2000, pattern="bars", filler=True
    )
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    viewers = [await open_viewer(browser, gateway) for _ in range(TILES)]
    for viewer in viewers:
        await viewer.page.click("#cameras button[data-camera='cam']")
        await wait_state(viewer, "cam", "live", timeout=15)
        await viewer.page.evaluate(TIMELINE, player("cam"))
        await viewer.page.evaluate(COUNT_DECODE_STALLS, player("cam"))
    # A CPU quota, not busy loops at a higher priority: how much a niced loop takes
    # from the browser depends on the kernel's autogroups (CI's browser got 3 of 25
    # seconds and went silent past the gateway's ICE consent, which is a vanished
    # viewer, not a busy one; this machine's got nearly all of them).
    with cpu_quota(BROWSER_CORES) as group:
        assert join(group, chromium_processes()) > 0
        try:
            await asyncio.sleep(LOAD_SECONDS)
        finally:
            for viewer in viewers:
                print("timeline:", *await viewer.page.evaluate("window.timeline"), sep="\n  ")
    stalls = [await viewer.page.evaluate("window.decodeStalls") for viewer in viewers]
    print(f"{BROWSER_CORES} of a core for {LOAD_SECONDS} s:", *stalls, sep="\n  ")
    # The load was real: frames froze or dropped.
    assert sum(s["frozen"] + s["dropped"] for s in stalls) > 0, stalls
    for viewer in viewers:
        assert await viewer.page.evaluate("changes") == [], "a tile switched on a busy LAN"
        assert await tile(viewer, "cam", "[p.rendition, p.switching]") == [None, None]
    starts = await gateway.audit(event="session_start")
    ends = await gateway.audit(event="session_end")
    assert len(starts) == TILES, [row["detail"] for row in ends]


TILES = 4
LOAD_SECONDS = 25  # the issue saw a switch within 10 s
BROWSER_CORES = 0.3
# Seconds in which the browser decoded nothing new, decoded nothing new while packets
# still came in, or dropped frames: what CPU load looks like, and no reason to switch.
COUNT_DECODE_STALLS = """(sel) => {
    const p = document.querySelector(sel);
    window.decodeStalls = {seconds: 0, frozen: 0, stalled: 0, dropped: 0};
    let last = null;
    setInterval(async () => {
      let inbound;
      (await p.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
      });
      if (!inbound) return;
      if (last) {
        decodeStalls.seconds += 1;
        const got = inbound.packetsReceived - last.packetsReceived;
        if (inbound.framesDecoded === last.framesDecoded) decodeStalls.frozen += 1;
        if (got > 0 && inbound.framesDecoded === last.framesDecoded) decodeStalls.stalled += 1;
        if ((inbound.framesDropped ?? 0) > (last.framesDropped ?? 0)) decodeStalls.dropped += 1;
      }
      last = inbound;
    }, 1000);
}"""


async def test_the_gateway_behind_nat_relays_through_the_same_turn_server(start_gateway):
    """`[turn] gateway = true`: the gateway's own peer connection gathers a relay
    candidate too, with a credential it makes for itself, and a viewer plays."""
    needs_coturn()
    with Coturn(TURN_SECRET) as turn:
        cameras = [camera_entry("demo", "demo:testsrc", demo_size="320x240")]
        tables = turn_table(turn.urls["udp"], gateway=True)
        gateway = await start_gateway(settings_for(cameras, tables=tables))
        viewer = gateway.viewer("demo")
        response = await viewer.connect(gateway.http)
        assert response.status == 201
        relays = [line for line in viewer.answer.splitlines() if "typ relay" in line]
        assert relays, viewer.answer
        await wait_until(lambda: turn.allocations == 1, 3)  # the gateway's own
        assert await viewer.wait_frames(5)
        await viewer.close(gateway.http)
