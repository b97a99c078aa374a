"""CameraMoves: one pull per camera across the cluster, when a node comes back.

The balancer sends a camera's new viewers to one node (a hash of the camera's URL).
While that node was away, another came to hold the camera. When the first pulls
it again, it says so (`camera_pulled`), and the node that held it asks its viewers
of that camera to move: the player opens a session through the balancer and ends
the old one once the new one shows its picture, so the tile never goes black, and
the old pull ends with its last viewer. Nobody is cut off: a player that does not
move keeps its session, and the camera stays pulled where it is for it.
"""

from __future__ import annotations

import logging

from gateway.relay import CameraHub
from gateway.signaling import SessionRegistry

from ..events import EventBus
from .messages import ClusterMessages

log = logging.getLogger(__name__)


class CameraMoves:
    def __init__(self, messages: ClusterMessages, sessions: SessionRegistry, bus: EventBus) -> None:
        self.messages = messages
        self.sessions = sessions
        self.bus = bus
        self._pulling: set[str] = set()  # cameras this node pulls now
        messages.on("camera_pulled", self._pulled_elsewhere)

    def pull_changed(self, hub: CameraHub) -> None:
        """A camera's pull starting here (idle to anything else) is news to the others;
        a hub relaying another node's stream (spreading.py) does not pull the camera."""
        if hub.state == "idle" or hub.from_node is not None:
            self._pulling.discard(hub.id)
        elif hub.id not in self._pulling:
            self._pulling.add(hub.id)
            self.messages.send({"type": "camera_pulled", "camera_id": hub.id}, keep=False)

    def _pulled_elsewhere(self, message: dict[str, object]) -> None:
        camera_id, node = str(message.get("camera_id")), str(message.get("from"))
        # Viewers spread here from the camera's owner stay: they cost no pull.
        moving = [s for s in self.sessions if s.camera_id == camera_id and s.hub.from_node is None]
        if not moving:
            return
        log.info(
            "camera %s is now pulled by node %s; asking its %d viewers here to move",
            camera_id,
            node,
            len(moving),
            extra={"camera_id": camera_id},
        )
        for session in moving:
            self.bus.publish(
                "session_moving",
                {"session_id": session.id, "camera_id": camera_id, "node": node},
                accounts=[session.account],
            )
