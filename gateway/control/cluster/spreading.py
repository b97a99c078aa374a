"""Spreading: a hot camera's viewers over several nodes, the camera still pulled once.

The balancer sends every new viewer of a camera to one node, its owner (a hash of
the camera's URL), so that the camera is pulled once; but then one camera's viewers
can use no more than that node's core. An owner that holds a viewer of a camera and
is full answers a further offer with a 307 to `/whep/nodes/<node>/<camera>`, which
the balancer sends to that node: the live one that said (peer_heartbeat) it is not
behind, not busy if any is not, and holds the fewest sessions. WHEP clients follow
the 307 with the same offer and token. Full is any of: `[cluster] spread_viewers`
viewers of the camera, counting the offers being admitted; `[cluster]
spread_cpu_percent` of the CPU the node may use, over the last 2 s (busy; its
CpuGauge); its event loop behind (with either set).

That node, the edge, admits the viewer as any node does (grants, limits, audit,
revocation are the same everywhere), but takes the camera's frames from the owner,
the origin (`GET /cluster/cameras/<camera>`, signed; relay/node_stream.py), never
from the police network: one RTSP connection still. When the origin is lost, the
edge pulls the camera itself (CameraHub), the one pull again.

The redirect carries a ticket signed with the cluster's key (camera, edge, origin,
until): only an owner sends viewers to another node, and no viewer can make a node
take a camera from a node of its choosing. A masked camera is never spread: its
unmasked picture would have to cross between nodes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from gateway.relay import CameraHub
from gateway.relay.node_stream import NodeSource
from gateway.relay.overload import CpuGauge, LoopWatch
from gateway.signaling import SessionRegistry

from ..refusals import Denied
from .peers import SIGNATURE_HEADER, PeerLink

TICKET_SECONDS = 30.0  # a 307 is followed at once; a stale link is refused
FRESH_SECONDS = 3.0  # a node not heard from directly this long is sent no viewers
STREAM_PATH = "/cluster/cameras/"
SENT_AT_HEADER = "X-Cluster-Sent-At"
MAX_AGE_SECONDS = 30.0


@dataclass(frozen=True)
class Spread:
    """Where an offer goes instead: the 307's Location."""

    location: str


@dataclass(frozen=True)
class Via:
    """An offer sent to this node by a camera's owner: the node it names and the
    ticket (origin, until, signature) from the URL."""

    node: str
    origin: str
    until: str
    signature: str


class Spreading:
    def __init__(
        self,
        threshold: int,
        busy_percent: float,
        node_id: str,
        peers: PeerLink,
        sessions: SessionRegistry,
        watch: LoopWatch,
    ) -> None:
        self.threshold = threshold  # viewers of a camera; 0: not counted
        self.busy_share = busy_percent / 100  # 0: the CPU not weighed
        self.node_id = node_id
        self.peers = peers
        self.sessions = sessions
        self.watch = watch
        self.cpu = CpuGauge()
        # Told of each offer sent on: (camera, why: "viewers", "cpu" or "behind").
        self.on_spread: Callable[[str, str], None] = lambda camera_id, why: None
        self._admitting: Counter[str] = Counter()  # offers being admitted here, by camera

    def load(self) -> dict[str, object]:
        """What this node says of itself in each peer_heartbeat."""
        return {"sessions": len(self.sessions), "behind": self.watch.behind, "busy": self.busy}

    @property
    def busy(self) -> bool:
        return bool(self.busy_share) and self.cpu.share() >= self.busy_share

    # --- on the owner -------------------------------------------------------------

    def elsewhere(self, hub: CameraHub, rendition: str | None) -> Spread | None:
        """Where a new viewer of `hub`'s camera goes instead of this node, if anywhere."""
        if not (self.threshold or self.busy_share) or hub.masks or hub.from_node is not None:
            return None
        here = self._admitting[hub.id]
        here += sum(1 for session in self.sessions if session.camera_id == hub.id)
        if self.threshold and here >= self.threshold:
            why = "viewers"
        elif here and self.watch.behind:
            why = "behind"
        elif here and self.busy:
            why = "cpu"
        else:
            return None
        node = self._least_loaded()
        if node is None:
            return None
        self.on_spread(hub.id, why)
        until = str(int(time.time() + TICKET_SECONDS))
        query = {"origin": self.node_id, "until": until}
        query["sig"] = self.peers.sign(_ticket(hub.id, node, self.node_id, until))
        if rendition is not None:
            query["rendition"] = rendition
        return Spread(f"/whep/nodes/{node}/{quote(hub.id, safe='')}?{urlencode(query)}")

    @contextmanager
    def admitting(self, camera_id: str) -> Iterator[None]:
        """While an offer for `camera_id` is admitted here (counted with its sessions:
        offers that come at once are not all admitted before any is a session)."""
        self._admitting[camera_id] += 1
        try:
            yield
        finally:
            self._admitting[camera_id] -= 1
            if not self._admitting[camera_id]:
                del self._admitting[camera_id]

    def _least_loaded(self) -> str | None:
        now, live = time.monotonic(), self.peers.targets()
        ready = [
            (bool(load.get("busy")), int(load.get("sessions", 0)), node)
            for node, (load, heard) in self.peers.loads.items()
            if node in live and now - heard < FRESH_SECONDS and not load.get("behind")
        ]
        return min(ready)[2] if ready else None

    def check_stream_request(self, path: str, sent_at: str, signature: str) -> None:
        """A request for a camera's frames is another node's; else Denied."""
        try:
            age = abs(time.time() - float(sent_at))
        except ValueError:
            age = float("inf")
        if age > MAX_AGE_SECONDS or not self.peers.verify(f"GET {path} {sent_at}", signature):
            raise Denied("not_a_cluster_message", "not signed with the cluster's key, or stale")

    # --- on the edge --------------------------------------------------------------

    def check(self, camera_id: str, via: Via) -> None:
        """The ticket is an owner's, for this node, and fresh; else Denied."""
        if via.node != self.node_id:
            # The balancer sent it elsewhere: that node is down. Its owner picks again.
            raise Denied(
                "node_unavailable",
                f"gateway node {via.node!r} cannot take viewers now; offer to the camera again",
                retry_after=1,
            )
        ticket = _ticket(camera_id, via.node, via.origin, via.until)
        try:
            fresh = float(via.until) >= time.time()
        except ValueError:
            fresh = False
        if not fresh or not self.peers.verify(ticket, via.signature):
            raise Denied(
                "bad_spread",
                "this link to a gateway node is not valid or has expired;"
                " offer to /whep/<camera> again",
            )

    def take_from_origin(self, hub: CameraHub, via: Via) -> None:
        """The camera's next pull here takes its frames from the origin node. Already
        pulled here (from wherever), the viewer simply joins."""
        if via.origin == self.node_id or hub.pulling:
            return
        address = self.peers.targets().get(via.origin)
        if address is None:
            raise Denied(
                "node_unavailable",
                f"gateway node {via.origin!r} is not reachable from here; offer again",
                retry_after=1,
            )
        url = f"{address}{STREAM_PATH}{quote(hub.id, safe='')}"
        hub.take_from(NodeSource(via.origin, url, self._signed))

    def _signed(self, path: str) -> dict[str, str]:
        """A stream request's headers (made in the hub's pull thread)."""
        sent_at = repr(time.time())
        return {
            SIGNATURE_HEADER: self.peers.sign(f"GET {path} {sent_at}"),
            SENT_AT_HEADER: sent_at,
        }


def _ticket(camera_id: str, node: str, origin: str, until: str) -> str:
    return "\n".join(("spread", camera_id, node, origin, until))
