"""The WHEP contract: status codes and clear errors for every bad request."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time

import pytest
from support.camera import free_port
from support.events import EventReader
from support.gateway import VIEWER, bearer, camera_entry, settings_for
from support.sdp import keep_codecs, without_candidates
from support.viewer import offer_sdp
from support.waiting import event

from gateway.app import HUBS, SESSIONS
from gateway.signaling import session as session_module
from gateway.signaling.offer import BadOffer, answer_profile, parse_offer

TRICKLE = "application/trickle-ice-sdpfrag"
pytestmark = pytest.mark.usefixtures("sender_mode")

SDP = {"Content-Type": "application/sdp", **bearer()}


async def demo_gateway(start_gateway, **relay):
    cameras = [
        camera_entry("demo", "demo:testsrc", demo_size="320x240"),
        camera_entry("dead", f"rtsp://127.0.0.1:{free_port()}/nothing", open_timeout_seconds=2.0),
    ]
    return await start_gateway(settings_for(cameras, **relay))


async def code_of(response) -> str:
    """The stable code of a JSON error, checking its shape: {"error": words, "code": code}."""
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error", "code"} and body["error"], body
    return body["code"]


async def test_bad_requests_get_their_status_and_code(start_gateway):
    gateway = await demo_gateway(start_gateway)
    http, url = gateway.http, gateway.url
    offer = await offer_sdp()
    no_video = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    trickle = {"Content-Type": "application/trickle-ice-sdpfrag", **bearer()}
    cases = [  # request, status, code, words the error holds
        (http.post(f"{url}/whep/demo", data=offer, headers={"Content-Type": "text/plain"}),
         415, "unsupported_media_type", "application/sdp"),
        (http.post(f"{url}/whep/demo", data="hello", headers=SDP), 400, "bad_offer", "SDP"),
        (http.post(f"{url}/whep/demo", data=no_video, headers=SDP), 400, "bad_offer", "no video"),
        (http.post(f"{url}/whep/demo", data=b"v=0" + b"x" * 70_000, headers=SDP),
         413, "too_large", "65536"),
        (http.post(f"{url}/whep/nope", data=offer, headers=SDP), 404, "unknown_camera", "nope"),
        (http.patch(f"{url}/whep/sessions/abc", data="a=candidate:1", headers=trickle),
         404, "unknown_session", "session"),
        (http.delete(f"{url}/whep/sessions/unknown", headers=bearer()),
         404, "unknown_session", "session"),
        (http.post(f"{url}/whep/demo", data=offer, headers={"Content-Type": "application/sdp"}),
         401, "invalid_token", "token"),
        (http.get(f"{url}/api/me", headers={"Authorization": "Bearer forged"}),
         401, "invalid_token", "token"),
    ]  # fmt: skip
    for request, status, code, words in cases:
        response = await request
        assert (response.status, await code_of(response)) == (status, code), response.url
        assert words in (await response.json())["error"]
        if status == 401:  # every 401 names the scheme
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    response = await http.options(f"{url}/whep/demo")
    assert response.status == 204
    assert response.headers["Accept-Post"] == "application/sdp"


async def test_unreachable_camera_is_503_with_retry_after(start_gateway):
    gateway = await demo_gateway(start_gateway)
    response = await gateway.http.post(
        f"{gateway.url}/whep/dead", data=await offer_sdp(), headers=SDP
    )
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    body = await response.json()
    assert "unavailable" in body["error"]
    assert "127.0.0.1" not in body["error"]  # never where the camera is


async def test_session_lifecycle_and_delete(start_gateway):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    response = await viewer.connect(gateway.http)
    assert response.status == 201
    assert response.content_type == "application/sdp"
    assert response.headers["Location"].startswith("/whep/sessions/")
    assert await viewer.wait_frames(5)
    assert viewer.frames[-1][1:] == (320, 240)
    response = await gateway.http.delete(viewer.session_url, headers=bearer())
    assert response.status == 200
    await event(viewer.closed, 5, "the gateway to close the peer connection")
    assert len(gateway.app[HUBS].get("demo").viewers) == 0
    # Ended ids are remembered a while: a repeated DELETE is still a success.
    response = await gateway.http.delete(viewer.session_url, headers=bearer())
    assert response.status == 200
    await viewer.close()


async def test_wrong_rtsp_password_leaks_nowhere(make_rtsp_camera, start_gateway, caplog):
    caplog.set_level(logging.DEBUG)
    camera = make_rtsp_camera(user="admin", password="right-pass", width=320, height=240)
    secret = "Wr0ngS3cret"
    source = camera.url.replace("right-pass", secret)
    assert secret in source
    gateway = await start_gateway(settings_for([camera_entry("cam", source)]))
    response = await gateway.http.post(
        f"{gateway.url}/whep/cam", data=await offer_sdp(), headers=SDP
    )
    assert response.status == 503
    text = await response.text()
    assert "credentials" in text
    listing = await (await gateway.http.get(f"{gateway.url}/api/cameras", headers=bearer())).text()
    for place in (text, listing, caplog.text):
        assert secret not in place
        assert "admin" not in place
        assert "rtsp://" not in place


async def test_cameras_api_is_geojson_without_sources(start_gateway):
    gateway = await demo_gateway(start_gateway)
    response = await gateway.http.get(f"{gateway.url}/api/cameras", headers=bearer())
    assert response.status == 200
    body = await response.json()
    assert body["type"] == "FeatureCollection"
    feature = body["features"][0]
    assert feature["geometry"] == {"type": "Point", "coordinates": [121.56, 25.04]}
    assert feature["properties"]["name"] == "測試 demo"
    assert "source" not in str(body) and "rtsp" not in str(body)
    assert (await gateway.http.get(f"{gateway.url}/healthz")).status == 200


async def test_viewer_that_goes_silent_is_ended_by_ice_consent(start_gateway):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    (session,) = list(gateway.app[SESSIONS])
    # A tablet out of coverage: its sockets go quiet, with no DTLS close or DELETE.
    viewer.go_silent()
    started = time.monotonic()
    await event(session.ended, 15, "the session to end")
    noticed = time.monotonic() - started
    assert session.end_reason == "connection lost"
    # README: ICE consent is checked every second, so within about 5 s: 4 failed checks,
    # each with its own retries. Measured 5.5-5.8 s, quiet or with both cores busy;
    # 7 s leaves room for a loaded machine and stays far below aioice's own 30 s.
    assert noticed <= 7.0, f"a silent viewer was noticed only after {noticed:.2f} s"
    assert len(gateway.app[HUBS].get("demo").viewers) == 0
    await viewer.close()


async def test_a_viewer_gone_silent_as_its_rtcp_report_falls_due_still_closes(start_gateway):
    """The test viewer's own silence (support/viewer.py `go_silent`): an RTCP report
    sent in the turn of the loop that silenced it must not end aiortc's RTCP task, or
    close() waits for that task for ever (how the soak test hung once in make test)."""
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    time.sleep(1.6)  # A loaded machine: the loop is held past the RTCP timer (0.5-1.5 s),
    await asyncio.sleep(0)  # which falls due in the very turn the viewer goes silent.
    viewer.go_silent()
    await asyncio.sleep(2)  # the report is sent; consent has not yet lapsed
    await viewer.close()  # an AssertionError after viewer.CLOSE_TIMEOUT if it never ends


# --- the answers the WHEP table promises, each where it happens -------------------


async def test_delete_of_another_accounts_session_is_refused_and_an_administrators_allowed(
    start_gateway,
):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    response = await gateway.http.delete(viewer.session_url, headers=bearer("other-1"))
    assert response.status == 403
    assert (await response.json())["code"] == "not_owner"
    assert len(gateway.app[SESSIONS]) == 1 and await viewer.wait_frames(3)  # still watching
    admin = bearer("admin-1", admin=True)
    response = await gateway.http.delete(viewer.session_url, headers=admin)
    assert response.status == 200
    await event(viewer.closed, 5, "the gateway to close the peer connection")
    assert len(gateway.app[SESSIONS]) == 0
    (revoked,) = await gateway.audit(event="session_revoked")
    assert revoked["account"] == VIEWER and revoked["detail"]["by"] == "admin-1"
    await viewer.close()


def silent_listener() -> tuple[socket.socket, int]:
    """A host that accepts connections and never answers: a camera that sends nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, listener.getsockname()[1]


async def test_a_camera_that_sends_no_video_within_start_timeout_is_503(start_gateway):
    listener, port = silent_listener()
    start_timeout = 1.0
    # The open itself would give up only after 3 s; the viewer is answered before that.
    entry = camera_entry(
        "mute", f"rtsp://127.0.0.1:{port}/cam", open_timeout_seconds=3.0, stall_timeout_seconds=3.0
    )
    gateway = await start_gateway(settings_for([entry], start_timeout_seconds=start_timeout))
    try:
        started = time.monotonic()
        response = await gateway.http.post(
            f"{gateway.url}/whep/mute", data=await offer_sdp(), headers=SDP
        )
        waited = time.monotonic() - started
    finally:
        listener.close()
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    body = await response.json()
    assert body["code"] == "camera_unavailable" and "no video within 1 s" in body["error"]
    # start_timeout_seconds, plus the offer's own handling; 1 s of it for a loaded machine.
    assert start_timeout - 0.05 <= waited < start_timeout + 1.0, waited
    assert len(gateway.app[HUBS].get("mute").viewers) == 0


def baseline_only(codec: str, fmtp: str) -> bool:
    return codec == "H264" and "profile-level-id=42" in fmtp


async def test_an_offer_that_cannot_play_the_camera_is_400(make_rtsp_camera, start_gateway):
    camera = make_rtsp_camera(profile="high", width=320, height=240)
    cameras = [camera_entry("high", camera.url), camera_entry("demo", "demo:testsrc")]
    # Strict profiles: a Baseline-only viewer is never told High is Baseline.
    gateway = await start_gateway(settings_for(cameras, webrtc={"strict_h264_profile": True}))
    offer = await offer_sdp()
    cases = {
        # Neither H.264 nor VP8 (a player that offers only VP9).
        "demo": keep_codecs(offer, lambda codec, fmtp: codec == "VP8").replace("VP8/", "VP9/"),
        # H.264, but Baseline only, and no VP8: it cannot decode the camera's High profile.
        "high": keep_codecs(offer, baseline_only),
    }
    for camera_id, sdp in cases.items():
        assert "m=video" in sdp and "a=fingerprint" in sdp
        response = await gateway.http.post(f"{gateway.url}/whep/{camera_id}", data=sdp, headers=SDP)
        assert response.status == 400, (camera_id, await response.text())
        assert (await response.json())["code"] == "bad_offer"
        assert not gateway.app[HUBS].get(camera_id).viewers  # its place is free again
    assert "High" in (await response.json())["error"]


async def test_a_session_that_never_connects_ends_after_the_connect_timeout(
    start_gateway, monkeypatch
):
    assert session_module.CONNECT_TIMEOUT_SECONDS == 15.0  # the README's figure
    timeout = 2.0  # the same timer, shortened for the test
    monkeypatch.setattr(session_module, "CONNECT_TIMEOUT_SECONDS", timeout)
    gateway = await demo_gateway(start_gateway)
    hub = gateway.app[HUBS].get("demo")
    async with EventReader(gateway) as events:
        # Its ICE checks never arrive: no candidate to check (blocked UDP, closed tab).
        offer = without_candidates(await offer_sdp())
        started = time.monotonic()
        response = await gateway.http.post(f"{gateway.url}/whep/demo", data=offer, headers=SDP)
        assert response.status == 201, await response.text()
        (session,) = list(gateway.app[SESSIONS])
        await event(session.ended, timeout + 5, "the session to end")
        lasted = time.monotonic() - started
        ended = await events.wait_for("session_ended")
    assert session.ending.code == ended["code"] == "never_connected"
    # The timer, plus a sweep of the event loop; 1 s of headroom for a loaded machine.
    assert timeout - 0.05 <= lasted < timeout + 1.0, lasted
    assert not hub.viewers and hub.capacity.used == 0  # its place is free again
    (end,) = await gateway.audit(event="session_end")
    assert end["detail"]["reason"] == "viewer never connected"


@pytest.mark.slow  # 5 s of waiting is the point
async def test_an_offer_body_that_takes_over_the_request_timeout_gets_408(start_gateway):
    gateway = await demo_gateway(start_gateway)
    offer = (await offer_sdp()).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(
        b"POST /whep/demo HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/sdp\r\n"
        b"Authorization: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (bearer()["Authorization"].encode(), len(offer), offer[:200])
    )  # the rest of the body never comes
    await writer.drain()
    started = time.monotonic()
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        except TimeoutError:
            raise AssertionError("no answer within 20 s to a body that never came") from None
        waited = time.monotonic() - started
        length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert body["code"] == "body_timeout"
    # `[server] request_timeout_seconds` (5 s), then the answer; 1.5 s of headroom.
    assert 5 - 0.1 <= waited < 5 + 1.5, waited
    assert len(gateway.app[SESSIONS]) == 0


async def test_the_answer_does_not_wait_on_mdns_host_candidates(start_gateway):
    """Chromium hides its host candidates behind `.local` names by default. Its own
    checks reach the gateway anyway; resolving the names would cost about a second."""
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    hidden = "".join(
        f"a=candidate:{i} 1 udp 2122260223 {name}.local 5{i}000 typ host\r\n"
        for i, name in enumerate(["3f1c0a4e-6a36-4f0c-9d4b-0c7a1f1e2a11", "9b7e0c55-1d2e"])
    )
    offer = viewer.pc.localDescription.sdp.replace(
        "a=end-of-candidates", hidden + "a=end-of-candidates"
    )
    started = time.monotonic()
    response = await gateway.http.post(f"{gateway.url}/whep/demo", data=offer, headers=SDP)
    answered = time.monotonic() - started
    assert response.status == 201, await response.text()
    # Measured: ~20 ms. Waiting on the names takes ~1 s; 0.5 s is room for a loaded machine.
    assert answered < 0.5, f"the answer took {answered:.2f} s"
    await gateway.http.delete(gateway.url + response.headers["Location"], headers=bearer())
    await viewer.close()


def offering(sdp: str, *profiles: str) -> str:
    """The offer with H.264 in exactly these profile-level-ids (and no other codec)."""
    sdp = sdp.replace("profile-level-id=64001f", f"profile-level-id={profiles[-1]}")
    return keep_codecs(sdp, lambda codec, fmtp: codec == "H264" and fmtp[-6:] in profiles)


@pytest.mark.parametrize(
    ("camera", "offered", "answered"),
    [
        ("640014", ("42e01f", "4d001f", "64001f"), "640014"),  # its own profile, offered
        # Debian's Chromium 156 offers Main and High 4:4:4 but not High: a High 4:4:4
        # decoder decodes High (ISO/IEC 14496-10), so that is what is announced.
        ("640014", ("42e01f", "4d001f", "f4001f"), "f40014"),
        ("4d001f", ("42e01f", "f4001f"), "f4001f"),
        ("42e01f", ("42001f", "4d001f"), "42001f"),  # the narrowest that plays it
        ("640014", ("42001f", "42e01f", "4d001f"), None),  # none decodes High: 400
    ],
)
async def test_the_answer_names_the_narrowest_offered_profile_that_plays_the_camera(
    camera, offered, answered
):
    _, offer = parse_offer(offering(await offer_sdp(), *offered).encode())
    if answered is None:  # strict: a Baseline-only viewer is never told High is Baseline
        with pytest.raises(BadOffer, match="High"):
            answer_profile(camera, offer, strict=True)
    else:
        assert answer_profile(camera, offer, strict=True).profile_level_id == answered


# --- WHEP's MUSTs and trickle ICE (issue 11) ---


async def audit_rows(gateway, **filters) -> list[dict]:
    return await gateway.audit(**filters)


def media_sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        if sections:
            sections[-1].append(line)
    return sections


async def test_answer_is_what_whep_requires(start_gateway):
    """Only the camera's video is answered (sendonly); a viewer's sendrecv audio is
    inactive and nothing it sends is received; every section is rtcp-mux-only."""
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo", audio=True)
    response = await viewer.connect(gateway.http)
    assert response.status == 201
    assert response.headers["Content-Type"] == "application/sdp"  # exactly, no charset
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Accept-Patch"] == TRICKLE
    audio, video = media_sections(viewer.answer)
    assert audio[0].startswith("m=audio") and "a=inactive" in audio
    assert video[0].startswith("m=video") and "a=sendonly" in video
    for section in (audio, video):
        assert "a=rtcp-mux-only" in section
        assert "a=recvonly" not in section
    assert await viewer.wait_frames(5)
    (session,) = list(gateway.app[SESSIONS])
    await asyncio.sleep(1.5)  # the viewer sends audio all along
    stats = await session.pc.getStats()
    assert not [s for s in stats.values() if s.type == "inbound-rtp"], "viewer media received"
    await viewer.close(gateway.http)


async def test_a_second_video_section_is_answered_inactive(start_gateway):
    """WHEP: a section the endpoint does not use is answered as not used."""
    gateway = await demo_gateway(start_gateway)
    offer = await offer_sdp()
    head, video = offer.split("m=video", 1)
    two_videos = head + "m=video" + video + "m=video" + video.replace("a=mid:0", "a=mid:1")
    two_videos = two_videos.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
    response = await gateway.http.post(f"{gateway.url}/whep/demo", data=two_videos, headers=SDP)
    assert response.status == 201, await response.text()
    first, second = media_sections(await response.text())
    assert "a=sendonly" in first
    assert "a=inactive" in second or second[0].startswith("m=video 0 ")
    (session,) = list(gateway.app[SESSIONS])
    await gateway.http.delete(f"{gateway.url}/whep/sessions/{session.id}")


async def test_offers_whep_does_not_allow_are_refused(start_gateway):
    gateway = await demo_gateway(start_gateway)
    offer = await offer_sdp()
    for body, words in (
        (offer.replace("a=recvonly", "a=sendonly"), "sendonly"),
        (offer.replace("a=recvonly", "a=inactive"), "inactive"),
    ):
        response = await gateway.http.post(f"{gateway.url}/whep/demo", data=body, headers=SDP)
        assert response.status == 400, words
        error = await response.json()
        assert error["code"] == "bad_offer" and words in error["error"]
    assert len(gateway.app[SESSIONS]) == 0
    assert not gateway.app[HUBS].get("demo").pulling  # refused before the camera is pulled


async def test_trickled_candidates_connect_the_viewer(start_gateway):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo", trickle=True)
    assert (await viewer.connect(gateway.http)).status == 201
    assert viewer.candidates and "a=candidate" not in viewer.offer
    (session,) = list(gateway.app[SESSIONS])
    # Addresses the gateway never contacts are dropped; the rest are added.
    ignored = [
        "a=candidate:9 1 udp 2122260223 abcd-1234.local 50000 typ host",
        "a=candidate:8 1 udp 2122260223 169.254.10.20 50000 typ host",
        "a=candidate:7 1 udp 2122260223 fe80::1 50000 typ host",
        "a=candidate:6 1 udp 2122260223 0.0.0.0 50000 typ host",
    ]
    # `If-Match: *` with the session's own ufrag is plain trickle.
    response = await viewer.patch(
        gateway.http, ignored + viewer.candidates, headers={"If-Match": "*", **viewer.headers}
    )
    assert response.status == 204, await response.text()
    assert "ETag" not in response.headers
    assert await viewer.wait_frames(5)
    remote = {c.ip for c in session._ice.getRemoteCandidates()}
    assert not remote & {"abcd-1234.local", "169.254.10.20", "fe80::1", "0.0.0.0"}
    (row,) = await audit_rows(gateway, event="session_ice")
    assert row["session_id"] == session.id and row["account"] == "viewer-1"
    assert row["detail"]["by"] == "viewer-1" and row["detail"]["candidates_added"] >= 1
    await viewer.close(gateway.http)


async def test_a_viewer_reachable_only_through_a_trickled_candidate_connects(start_gateway):
    """A tablet behind TURN: its only address arrives by trickle, so the gateway must
    check it. This viewer applies the answer without the gateway's candidates and so
    never checks first: only the gateway's checks to what it trickled can connect it."""
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo", trickle=True, answer_candidates=False)
    assert (await viewer.connect(gateway.http)).status == 201
    assert viewer.candidates and "a=candidate" not in viewer.offer
    assert (await viewer.patch(gateway.http, viewer.candidates)).status == 204
    assert await viewer.wait_frames(5)
    await viewer.close(gateway.http)


async def test_candidates_at_a_camera_host_are_never_contacted(start_gateway):
    cameras = [
        camera_entry("demo", "demo:testsrc", demo_size="320x240"),
        camera_entry("cam", "rtsp://user:pw@10.20.30.40:554/stream"),
    ]
    gateway = await start_gateway(settings_for(cameras))
    viewer = gateway.viewer("demo", trickle=True)
    assert (await viewer.connect(gateway.http)).status == 201
    (session,) = list(gateway.app[SESSIONS])
    camera = "a=candidate:5 1 udp 2122260223 10.20.30.40 554 typ host"
    response = await viewer.patch(gateway.http, [camera])
    assert response.status == 204
    assert "10.20.30.40" not in {c.ip for c in session._ice.getRemoteCandidates()}
    # ... nor when they come in the offer itself.
    offer = await offer_sdp()
    offer = offer.replace("a=end-of-candidates", camera + "\r\na=end-of-candidates")
    response = await gateway.http.post(f"{gateway.url}/whep/demo", data=offer, headers=SDP)
    assert response.status == 201
    other = gateway.app[SESSIONS].get(response.headers["Location"].rsplit("/", 1)[1])
    assert "10.20.30.40" not in {c.ip for c in other._ice.getRemoteCandidates()}
    await viewer.close(gateway.http)
    await gateway.http.delete(gateway.url + response.headers["Location"], headers=bearer())


async def test_ice_restart_is_refused_and_media_goes_on(start_gateway):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    restart = await viewer.patch(
        gateway.http,
        ["a=ice-pwd:abcdefghijklmnopqrstuvwx"],
        ufrag="newufrag",
        headers={"If-Match": "*", **viewer.headers},
    )
    assert restart.status == 422  # WHEP: trickle supported, ICE restart not
    assert (await restart.json())["code"] == "ice_restart_unsupported"
    assert await viewer.wait_frames(10), "media stopped after a refused ICE restart"
    stale = await viewer.patch(gateway.http, [], headers={"If-Match": '"other"', **viewer.headers})
    assert stale.status == 412
    wrong_type = await gateway.http.patch(
        viewer.session_url, data="a=end-of-candidates", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status == 415
    bad = await viewer.patch(gateway.http, ["a=candidate:garbage"])
    assert bad.status == 400 and (await bad.json())["code"] == "bad_sdpfrag"
    await viewer.close(gateway.http)


async def test_session_url_is_the_capability_and_a_sent_token_must_fit(start_gateway):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    (session,) = list(gateway.app[SESSIONS])
    end = "a=end-of-candidates"
    # No token: the unguessable URL is enough (Medooze and others send none).
    assert (await viewer.patch(gateway.http, [end], headers={})).status == 204
    # A token that is sent must be valid ...
    bad = await viewer.patch(gateway.http, [end], headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    assert bad.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    # ... and the owner's or an administrator's.
    other = gateway.bearer("someone-else")
    assert (await viewer.patch(gateway.http, [end], headers=other)).status == 403
    response = await gateway.http.delete(viewer.session_url, headers=other)
    assert response.status == 403 and (await response.json())["code"] == "not_owner"
    denied = await audit_rows(gateway, event="access_denied", account="someone-else")
    assert len(denied) == 2 and all(r["session_id"] == session.id for r in denied)
    assert (
        await viewer.patch(gateway.http, [end], headers=gateway.bearer("boss", admin=True))
    ).status == 204
    response = await gateway.http.delete(viewer.session_url)  # no token
    assert response.status == 200
    (row,) = await audit_rows(gateway, event="session_end")
    assert row["session_id"] == session.id and row["detail"]["ended_by"] == "session URL"
    assert len(await audit_rows(gateway, event="session_ice")) == 2
    await viewer.close()


async def test_viewer_that_closes_its_peer_connection_is_ended_at_once(start_gateway):
    """A closed tab: only the peer connection tells, with DTLS's close. Medooze's stop()
    does the same, then sends a DELETE, which still gets its 200."""
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    (session,) = list(gateway.app[SESSIONS])
    await viewer.pc.close()
    # Measured: milliseconds; 1 s is room for a loaded machine.
    took = await event(session.ended, 10, "the session to end")
    assert took <= 1.0, f"ended {took:.2f} s after the viewer closed its connection"
    assert session.end_reason == "viewer closed"
    assert len(gateway.app[SESSIONS]) == 0
    assert len(gateway.app[HUBS].get("demo").viewers) == 0
    response = await gateway.http.delete(viewer.session_url, headers=bearer())
    assert response.status == 200
    (row,) = await audit_rows(gateway, event="session_end")
    assert row["detail"]["reason"] == "viewer closed"
    unknown = await gateway.http.delete(f"{gateway.url}/whep/sessions/nothing", headers=bearer())
    assert unknown.status == 404


async def test_get_head_options_and_cors_as_whep_says(start_gateway):
    dashboard = "http://127.0.0.1:9"
    cameras = [camera_entry("demo", "demo:testsrc", demo_size="320x240")]
    gateway = await start_gateway(settings_for(cameras, cors={"origins": [dashboard]}))
    http, url = gateway.http, gateway.url
    for method in (http.get, http.head):
        response = await method(f"{url}/whep/demo")
        assert response.status == 204 and await response.read() == b""
    response = await http.options(f"{url}/whep/demo", headers={"Origin": dashboard})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == dashboard
    assert response.headers["Accept-Post"] == "application/sdp"
    response = await http.options(f"{url}/whep/demo", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await http.options(
        f"{url}/whep/sessions/abc",
        headers={
            "Origin": dashboard,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )
    assert preflight.status == 200
    assert "IF-MATCH" in preflight.headers["Access-Control-Allow-Headers"].upper()
    viewer = gateway.viewer("demo")
    viewer.headers["Origin"] = dashboard
    response = await viewer.connect(http)
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"location", "etag", "link", "accept-patch"} <= exposed
    for method in (http.get, http.head):
        response = await method(viewer.session_url)
        assert response.status == 204
    missing = await http.post(
        f"{url}/whep/demo", data=await offer_sdp(), headers={"Content-Type": "application/sdp"}
    )
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    await viewer.close(http)
