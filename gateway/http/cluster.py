"""The endpoint where the other nodes of a cluster send revocations straight here
(control/cluster/peers.py). It takes only messages signed with the cluster's key;
deploy/haproxy.cfg keeps it from the outside all the same."""

from __future__ import annotations

from aiohttp import web

from gateway.control.cluster import PATH, SIGNATURE_HEADER, ClusterMessages


class ClusterEndpoint:
    def __init__(self, messages: ClusterMessages) -> None:
        self.messages = messages

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.message)

    async def message(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.messages.from_peer(body, request.headers.get(SIGNATURE_HEADER, ""))
        return web.Response(status=204)
