"""A stock aiortc WHEP viewer, run in its own process by the tests.

It imports nothing from `gateway` (nor from tests/support), so it runs with
aiortc exactly as installed: it offers Constrained Baseline H.264 only, as stock
aiortc, Firefox with OpenH264 and many hardware players do.

    python stock_viewer.py URL TOKEN FRAMES TIMEOUT

prints one JSON line: status, frames decoded, their size, the answered profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription


async def main(url: str, token: str, want: int, timeout: float) -> dict[str, object]:
    assert not any(name.startswith("gateway") for name in sys.modules)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    sizes: list[tuple[int, int]] = []
    done = asyncio.Event()
    readers: list[asyncio.Future[None]] = []

    @pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        async def read() -> None:
            while len(sizes) < want:
                frame = await track.recv()
                sizes.append((frame.width, frame.height))
            done.set()

        readers.append(asyncio.ensure_future(read()))

    await pc.setLocalDescription(await pc.createOffer())
    offered = sorted(set(re.findall(r"profile-level-id=([0-9a-fA-F]{6})", pc.localDescription.sdp)))
    result: dict[str, object] = {"offered": offered}
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        response = await http.post(url, data=pc.localDescription.sdp, headers=headers)
        result["status"] = response.status
        body = await response.text()
        if response.status != 201:
            result["error"] = body
            await pc.close()
            return result
        profile = re.search(r"profile-level-id=([0-9a-fA-F]{6})", body)
        result["answered"] = profile.group(1).lower() if profile else None
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
        result["seconds"] = round(time.monotonic() - started, 2)
        result["frames"] = len(sizes)
        result["sizes"] = sorted(set(sizes))
        session = response.headers["Location"]
        await http.delete(str(response.url.join(aiohttp.client.URL(session))), headers=headers)
    await pc.close()
    return result


if __name__ == "__main__":
    url, token, frames, timeout = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(url, token, int(frames), float(timeout)))), flush=True)
