"""The endpoints where the other nodes of a cluster reach this one: revocations sent
straight here (control/cluster/peers.py), and a camera's frames for a node that
relays it (control/cluster/origin.py). Each takes only requests signed with the
cluster's key; deploy/haproxy.cfg keeps /cluster/ from the outside all the same."""

from __future__ import annotations

import contextlib

from aiohttp import hdrs, web

from gateway.control.cluster import (
    CONTENT_TYPE,
    PATH,
    SENT_AT_HEADER,
    SIGNATURE_HEADER,
    STREAM_PATH,
    ClusterMessages,
    OriginStreams,
)


class ClusterEndpoint:
    def __init__(self, messages: ClusterMessages, origin: OriginStreams) -> None:
        self.messages = messages
        self.origin = origin

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.message)
        router.add_get(STREAM_PATH + "{camera_id}", self.camera_stream)

    async def message(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.messages.from_peer(body, request.headers.get(SIGNATURE_HEADER, ""))
        return web.Response(status=204)

    async def camera_stream(self, request: web.Request) -> web.StreamResponse:
        records = await self.origin.open(
            request.match_info["camera_id"],
            request.raw_path.partition("?")[0],
            request.headers.get(SENT_AT_HEADER, ""),
            request.headers.get(SIGNATURE_HEADER, ""),
        )
        response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})
        async with contextlib.aclosing(records):  # type: ignore[type-var]
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):  # the other node went away
                async for record in records:
                    await response.write(record)
        return response
