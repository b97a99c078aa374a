"""The endpoint where the other nodes of a cluster send revocations straight here
(control/peers.py). It takes only messages signed with the cluster's key;
deploy/haproxy.cfg keeps it from the outside all the same."""

from __future__ import annotations

from aiohttp import web

from gateway.control.cluster import ClusterNode
from gateway.control.peers import PATH, SIGNATURE_HEADER, BadPeerMessage

from .errors import HttpError


class ClusterEndpoint:
    def __init__(self, cluster: ClusterNode) -> None:
        self.cluster = cluster

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.message)

    async def message(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            message = self.cluster.peers.open(body, request.headers.get(SIGNATURE_HEADER, ""))
        except BadPeerMessage as exc:
            raise HttpError(403, "not_a_cluster_message", str(exc)) from None
        self.cluster.from_peer(message)
        return web.Response(status=204)
