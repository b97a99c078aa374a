"""ViewerSession: one viewer's peer connection to one camera, from offer to end."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, OperationError
from aiortc.sdp import SessionDescription

from gateway.access.decision import Viewer
from gateway.config import WebRtcSettings
from gateway.relay import CameraHub, ViewerFeed

from .compat import register_h264_profile, transceiver_codecs
from .offer import BadOffer, answer_profile
from .sender import RelaySender
from .track import ViewerTrack

RTX = RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)

log = logging.getLogger(__name__)

# A viewer whose ICE checks never arrive (blocked UDP, closed tab) frees its slot.
CONNECT_TIMEOUT_SECONDS = 15.0


class Ending(NamedTuple):
    """Why a session ended: a stable code (events, the player) and words for people."""

    code: str
    reason: str


CONNECTION_LOST = Ending("connection_lost", "connection lost")
NEVER_CONNECTED = Ending("never_connected", "viewer never connected")
NEGOTIATION_FAILED = Ending("negotiation_failed", "negotiation failed")


def rtc_configuration(webrtc: WebRtcSettings) -> RTCConfiguration:
    # An empty list keeps aiortc from trying a public STUN server on its own.
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in webrtc.ice_servers
        ]
    )


class ViewerSession:
    """The unit that is listed, revoked and audited: one viewer, one camera, one grant."""

    def __init__(
        self,
        hub: CameraHub,
        feed: ViewerFeed,
        pc: RTCPeerConnection,
        remote: str,
        viewer: Viewer,
        session_id: str | None = None,
    ) -> None:
        self.id = session_id or secrets.token_urlsafe(16)
        self.viewer = viewer
        self.hub = hub
        self.feed = feed
        self.pc = pc
        self.remote = remote
        self.started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self.ending: Ending | None = None
        # Until when it may last, kept in memory by the session registry: the end of
        # the grant window it was admitted under, and of the sign-in that opened it.
        self.window_ends_at: datetime | None = viewer.ends_at
        self.signed_in_until: datetime | None = None
        self.started_recorded = False  # its start row is queued for the audit log
        self.ended = asyncio.Event()
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def camera_id(self) -> str:
        return self.hub.id

    @property
    def account(self) -> str:
        return self.viewer.account

    @property
    def bytes_sent(self) -> int:
        return self.feed.bytes_sent

    @property
    def end_reason(self) -> str | None:
        return self.ending.reason if self.ending else None

    @property
    def duration_seconds(self) -> float:
        return time.monotonic() - self._started

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "account": self.account,
            "camera_id": self.camera_id,
            "project": self.viewer.project,
            "grant_id": self.viewer.grant_id,
            "started_at": self.started_at.isoformat(),
            "remote": self.remote,
            "bytes_sent": self.bytes_sent,
            "state": self.pc.connectionState,
        }

    @classmethod
    async def negotiate(
        cls,
        hub: CameraHub,
        offer_sdp: str,
        offer: SessionDescription,
        remote: str,
        viewer: Viewer,
        configuration: RTCConfiguration,
        on_lost: Callable[[ViewerSession, Ending], None],
        session_id: str | None = None,
    ) -> tuple[ViewerSession, str]:
        """Join the hub and answer the offer; returns the session and the answer SDP."""
        requested = time.monotonic()
        feed = await hub.join()
        pc = RTCPeerConnection(configuration)
        session = cls(hub, feed, pc, remote, viewer, session_id)
        session._started = requested  # its clock starts with the offer
        try:
            assert hub.info is not None
            profile_level_id = answer_profile(hub.info.profile_level_id, offer)
            transceiver = pc.addTransceiver(ViewerTrack(feed), direction="sendonly")
            # aiortc builds the sender; only its send loop is ours (sender.py).
            transceiver.sender.__class__ = RelaySender
            # Before setRemoteDescription, or aiortc silently negotiates VP8.
            transceiver.setCodecPreferences([register_h264_profile(profile_level_id), RTX])
            try:
                await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            except (ValueError, LookupError, OperationError, InvalidAccessError) as exc:
                # What aiortc refuses is a fault of the offer; its words are about SDP.
                raise BadOffer(f"offer cannot be answered: {str(exc)[:200]}") from None
            # aiortc answers with its codec entry for this profile; state the
            # camera's exact level too (the transceiver holds its own copies).
            for codec in transceiver_codecs(transceiver):
                if codec.mimeType == "video/H264":
                    codec.parameters["profile-level-id"] = profile_level_id
            try:
                await pc.setLocalDescription(await pc.createAnswer())
            except (ValueError, LookupError, OperationError, InvalidAccessError) as exc:
                raise BadOffer(f"offer cannot be answered: {str(exc)[:200]}") from None
        except BaseException:
            await session.close(NEGOTIATION_FAILED)
            raise

        @pc.on("connectionstatechange")
        def _state_changed() -> None:
            if pc.connectionState in ("failed", "closed") and session.ending is None:
                on_lost(session, CONNECTION_LOST)

        def _connect_deadline() -> None:
            if pc.connectionState != "connected" and session.ending is None:
                on_lost(session, NEVER_CONNECTED)

        session._deadline = asyncio.get_running_loop().call_later(
            CONNECT_TIMEOUT_SECONDS, _connect_deadline
        )
        return session, pc.localDescription.sdp

    async def close(self, ending: Ending) -> bool:
        """End the session once; returns False if it had already ended."""
        if self.ending is not None:
            return False
        self.ending = ending
        if self._deadline is not None:
            self._deadline.cancel()
        self.hub.leave(self.feed)
        await self.pc.close()
        self.ended.set()
        log.info(
            "session %s ended: camera %s, %.1f s, %d bytes, %s",
            self.id,
            self.camera_id,
            self.duration_seconds,
            self.bytes_sent,
            ending.reason,
            extra={"session_id": self.id, "camera_id": self.camera_id},
        )
        return True
