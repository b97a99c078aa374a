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
