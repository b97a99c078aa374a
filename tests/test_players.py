"""Players nobody on this team wrote, against the High-profile test camera (issue 11).

- Debian's Firefox ESR without OpenH264 (VP8, VP9, AV1 only), driven headless by
  puppeteer-core over WebDriver BiDi, plays through the gateway's VP8 rendition.
- In Chromium, Medooze's `whip-whep`, Eyevinn's `@eyevinn/webrtc-player` and
  MediaMTX's reader (`simple-webrtc-element-whep`) each play from a dashboard's
  origin, and stopping each ends its session on the gateway. Medooze's also plays
  when its offer has a second video section, or offers to send video of its own.

The npm packages are in tests/players/ (installed by `make test` with `npm ci`);
the two players ship CommonJS or bare ES modules, so esbuild bundles them into a
temp folder, served from a loopback origin of its own (a dashboard, for CORS).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support.chromium import wait_until
from support.gateway import camera_entry, settings_for

from gateway.app import HUBS, SESSIONS

PLAYERS = Path(__file__).parent / "players"
NODE_MODULES = PLAYERS / "node_modules"
SMALL = {"width": 320, "height": 240}

pytestmark = pytest.mark.browser

ENTRIES = {
    "medooze.js": 'export { WHEPClient } from "whip-whep/whep.js";\n',
    "eyevinn.js": 'export { WebRTCPlayer } from "@eyevinn/webrtc-player";\n',
    "mediamtx.js": 'export { MediaMTXWebRTCReader } from "simple-webrtc-element-whep";\n',
}
PAGE = "<!doctype html><meta charset=utf-8><title>dashboard</title><video muted autoplay></video>"


def needs(path: Path, what: str) -> None:
    if not path.exists():
        pytest.skip(f"{what} is not installed (make test installs it)")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two players bundled as browser ES modules, with a page that loads neither."""
    needs(NODE_MODULES / ".bin" / "esbuild", "tests/players (npm ci)")
    out = tmp_path_factory.mktemp("players")
    for name, source in ENTRIES.items():
        entry = PLAYERS / f".entry-{name}"
        entry.write_text(source)
        try:
            subprocess.run(
                [
                    str(NODE_MODULES / ".bin" / "esbuild"),
                    str(entry),
                    "--bundle",
                    "--format=esm",
                    "--platform=browser",
                    "--log-level=warning",
                    f"--outfile={out / name}",
                ],
                check=True,
                timeout=60,
            )
        finally:
            entry.unlink()
    (out / "index.html").write_text(PAGE)
    return out


async def dashboard(bundles: Path) -> TestServer:
    app = web.Application()
    app.router.add_static("/", bundles)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def gateway_for_players(start_gateway, make_rtsp_camera, origin: str):
    camera = make_rtsp_camera(profile="high", **SMALL)
    settings = settings_for([camera_entry("cam", camera.url)], cors={"origins": [origin]})
    return await start_gateway(settings)


def token(gateway) -> str:
    return gateway.bearer()["Authorization"].removeprefix("Bearer ")


FRAMES_DECODED = """async () => {
    let frames = 0;
    for (const pc of window.pcs) {
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
      });
    }
    return frames;
}"""
# Every RTCPeerConnection the page makes, whoever makes it.
TRACK_PCS = """() => {
    window.pcs = [];
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(config) {
        super({ ...config, iceServers: [] }); // no STUN: nothing but loopback here
        window.pcs.push(this);
      }
    };
}"""


async def play_in_chromium(browser, page_url: str, start: str, stop: str, gateway):
    """Start a player on the page, stop it once it decoded 20 frames; the session."""
    context = await browser.new_context()
    page = await context.new_page()
    page.on("pageerror", lambda e: print("page error:", e))
    await page.goto(page_url)
    await page.evaluate(TRACK_PCS)
    args = {"url": f"{gateway.url}/whep/cam", "token": token(gateway)}
    await page.evaluate(start, args)
    async with asyncio.timeout(20):
        while await page.evaluate(FRAMES_DECODED) <= 20:
            await asyncio.sleep(0.1)
    (session,) = list(gateway.app[SESSIONS])
    assert session.codec == "H264"
    await page.evaluate(stop)
    await asyncio.wait_for(session.ended.wait(), 10)
    await context.close()
    return session


# Each player as a dashboard would use it: how it starts (given the WHEP URL and a
# token), how it stops, and how its session ends on the gateway.
THIRD_PARTY = {
    "Medooze whip-whep": (
        """async ({ url, token }) => {
        const { WHEPClient } = await import("/medooze.js");
        const pc = new RTCPeerConnection();
        pc.addTransceiver("video", { direction: "recvonly" }); // as Medooze's demo does
        pc.addTransceiver("audio", { direction: "recvonly" });
        pc.ontrack = (event) => {
          document.querySelector("video").srcObject = event.streams[0];
        };
        window.client = new WHEPClient();
        await window.client.view(pc, url, token); // trickles its candidates with PATCH
        }""",
        "() => window.client.stop()",
        # stop() closes the peer connection before its DELETE: both are a clean end.
        {"viewer_closed", "viewer_left"},
    ),
    "Eyevinn webrtc-player": (
        """async ({ url, token }) => {
        const { WebRTCPlayer } = await import("/eyevinn.js");
        window.player = new WebRTCPlayer({
          video: document.querySelector("video"), type: "whep", iceServers: [],
        });
        await window.player.load(new URL(url), "Bearer " + token); // video and audio
        }""",
        "() => window.player.unload()",
        {"viewer_left"},  # its DELETE comes first
    ),
    # MediaMTX's reader first sends an OPTIONS of its own, with the token, to learn the
    # ICE servers: from a dashboard's origin that needs a preflight for OPTIONS, which
    # must be answered as POST's is (it retried every 2 s for ever on a 403).
    "MediaMTX reader": (
        """async ({ url, token }) => {
        const { MediaMTXWebRTCReader } = await import("/mediamtx.js");
        window.reader = new MediaMTXWebRTCReader({
          url, token,
          onTrack: (event) => { document.querySelector("video").srcObject = event.streams[0]; },
        });
        }""",
        "() => window.reader.close()",
        {"viewer_closed", "connection_lost"},  # it sends no DELETE
    ),
}


@pytest.mark.parametrize("player", list(THIRD_PARTY))
async def test_a_third_party_player_plays_from_a_dashboards_origin_and_its_stop_ends_it(
    browser, bundles, start_gateway, make_rtsp_camera, player
):
    start, stop, endings = THIRD_PARTY[player]
    page_server = await dashboard(bundles)
    origin = str(page_server.make_url("")).rstrip("/")
    gateway = await gateway_for_players(start_gateway, make_rtsp_camera, origin)
    session = await play_in_chromium(browser, f"{origin}/index.html", start, stop, gateway)
    assert session.ending.code in endings
    await wait_until(lambda: not gateway.app[HUBS].get("cam").viewers, 5)
    if player == "Medooze whip-whep":
        assert await gateway.audit(event="session_ice"), "Medooze trickles its candidates"
    await page_server.close()


# Medooze's client sends the offer of the peer connection it is given.
MORE_THAN_ONE_VIDEO = {
    "a second video section": """
        pc.addTransceiver("video", { direction: "recvonly" });
        pc.addTransceiver("video", { direction: "recvonly" });""",
    "video of its own to send": """
        const canvas = document.createElement("canvas");
        canvas.getContext("2d").fillRect(0, 0, 10, 10);
        const own = canvas.captureStream(5).getVideoTracks()[0];
        pc.addTransceiver(own, { direction: "sendrecv" });""",
}


@pytest.mark.parametrize("offer", list(MORE_THAN_ONE_VIDEO))
async def test_a_player_offering_more_video_than_it_plays_gets_the_camera_in_the_first(
    browser, bundles, start_gateway, make_rtsp_camera, offer
):
    """WHEP: sections the endpoint does not use are answered as not used; the camera
    plays in the first video section, and nothing the player sends is received."""
    page_server = await dashboard(bundles)
    origin = str(page_server.make_url("")).rstrip("/")
    gateway = await gateway_for_players(start_gateway, make_rtsp_camera, origin)
    start = (
        """async ({ url, token }) => {
        const { WHEPClient } = await import("/medooze.js");
        const pc = new RTCPeerConnection();"""
        + MORE_THAN_ONE_VIDEO[offer]
        + """
        pc.ontrack = (event) => {
          if (event.transceiver === pc.getTransceivers()[0]) {
            document.querySelector("video").srcObject = new MediaStream([event.track]);
          }
        };
        window.client = new WHEPClient();
        await window.client.view(pc, url, token);
    }"""
    )
    session = await play_in_chromium(
        browser, f"{origin}/index.html", start, "() => window.client.stop()", gateway
    )
    # The camera goes out in the first; the rest, and anything sent, are not used.
    answer_videos = [
        section
        for section in session.pc.localDescription.sdp.split("m=")[1:]
        if section.startswith("video")
    ]
    assert "a=sendonly" in answer_videos[0]
    assert all("a=inactive" in v or v.startswith("video 0 ") for v in answer_videos[1:])
    await page_server.close()


@pytest.mark.skipif(not shutil.which("firefox-esr"), reason="firefox-esr is not installed")
async def test_firefox_without_openh264_plays_a_high_camera_in_vp8(start_gateway, make_rtsp_camera):
    needs(NODE_MODULES / "puppeteer-core", "tests/players (npm ci)")
    camera = make_rtsp_camera(profile="high", **SMALL)
    # A long linger: the pull (and what it knows of the camera) outlives the player.
    settings = settings_for([camera_entry("cam", camera.url)], linger_seconds=60)
    gateway = await start_gateway(settings)
    hub = gateway.app[HUBS].get("cam")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(PLAYERS / "firefox_watch.mjs"),
        gateway.url,
        "cam",
        token(gateway),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result.get("state") == "live", result
    assert result["codec"] == "video/VP8" and result["framesDecoded"] >= 20, result
    assert (result["width"], result["height"]) == (320, 240), result
    assert hub.info.mode == "passthrough" and hub.info.profile_level_id.startswith("64")
    # Taking the player off the page ended its session, and with it the VP8 encode.
    await wait_until(lambda: len(gateway.app[SESSIONS]) == 0, 5)
    assert not hub.renditions
    (row,) = await gateway.audit(event="session_end")
    assert row["detail"]["code"] == "viewer_left"
