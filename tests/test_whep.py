"""The WHEP contract: status codes and clear errors for every bad request."""

from __future__ import annotations

import asyncio
import logging

import pytest
from support.camera import free_port
from support.gateway import bearer, camera_entry, settings_for
from support.viewer import offer_sdp

from gateway.app import HUBS, SESSIONS

SDP = {"Content-Type": "application/sdp", **bearer()}
TRICKLE = "application/trickle-ice-sdpfrag"
# Every test here runs with the fast sender and with aiortc's own.
pytestmark = pytest.mark.usefixtures("sender_mode")


async def demo_gateway(start_gateway, **relay):
    cameras = [
        camera_entry("demo", "demo:testsrc", demo_size="320x240"),
        camera_entry("dead", f"rtsp://127.0.0.1:{free_port()}/nothing", open_timeout_seconds=2.0),
    ]
    return await start_gateway(settings_for(cameras, **relay))


async def test_bad_requests_get_their_status(start_gateway):
    gateway = await demo_gateway(start_gateway)
    http, url = gateway.http, gateway.url
    offer = await offer_sdp()

    response = await http.post(
        f"{url}/whep/demo", data=offer, headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert "application/sdp" in (await response.json())["error"]

    response = await http.post(f"{url}/whep/demo", data="hello", headers=SDP)
    assert response.status == 400
    assert "SDP" in (await response.json())["error"]

    no_video = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    response = await http.post(f"{url}/whep/demo", data=no_video, headers=SDP)
    assert response.status == 400
    assert "no video" in (await response.json())["error"]

    response = await http.post(f"{url}/whep/demo", data=b"v=0" + b"x" * 70_000, headers=SDP)
    assert response.status == 413

    response = await http.post(f"{url}/whep/nope", data=offer, headers=SDP)
    assert response.status == 404
    assert "nope" in (await response.json())["error"]

    response = await http.options(f"{url}/whep/demo")
    assert response.status == 204
    assert response.headers["Accept-Post"] == "application/sdp"

    response = await http.patch(
        f"{url}/whep/sessions/abc",
        data="a=candidate:1",
        headers={"Content-Type": "application/trickle-ice-sdpfrag"},
    )
    assert response.status == 404

    response = await http.delete(f"{url}/whep/sessions/unknown", headers=bearer())
    assert response.status == 404


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
    await viewer.closed.wait()  # the gateway closed the peer connection
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


async def test_viewer_that_vanishes_is_ended_within_seconds(start_gateway):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    (session,) = list(gateway.app[SESSIONS])
    # Gone without a DELETE: only the peer connection tells (its DTLS close).
    await viewer.pc.close()
    await asyncio.wait_for(session.ended.wait(), timeout=10)
    assert session.end_reason == "viewer closed"
    assert len(gateway.app[SESSIONS]) == 0
    assert len(gateway.app[HUBS].get("demo").viewers) == 0


@pytest.mark.slow
async def test_viewer_that_goes_silent_is_ended_by_ice_consent(start_gateway):
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    (session,) = list(gateway.app[SESSIONS])
    # A tablet out of coverage: its sockets go quiet, with no DTLS close or DELETE.
    ice = viewer.pc.getTransceivers()[0].receiver.transport.transport
    for protocol in ice._connection._protocols:
        protocol.transport.close()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(session.ended.wait(), timeout=15)
    assert session.end_reason == "connection lost"
    assert asyncio.get_running_loop().time() - started < 10
    assert len(gateway.app[HUBS].get("demo").viewers) == 0
    await viewer.close()


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


async def test_offers_whep_does_not_allow_are_refused(start_gateway):
    gateway = await demo_gateway(start_gateway)
    offer = await offer_sdp()
    head, video = offer.split("m=video", 1)
    two_videos = head + "m=video" + video + "m=video" + video.replace("a=mid:0", "a=mid:1")
    for body, words in (
        (two_videos, "2 video media sections"),
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


async def test_delete_after_the_viewer_closed_first(start_gateway):
    """Medooze's stop() closes the peer connection, then sends DELETE."""
    gateway = await demo_gateway(start_gateway)
    viewer = gateway.viewer("demo")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(3)
    (session,) = list(gateway.app[SESSIONS])
    await viewer.pc.close()
    await asyncio.wait_for(session.ended.wait(), timeout=10)
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
