"""ViewerSession: one viewer's peer connection to one camera, from offer to end."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, OperationError
from aiortc.sdp import SessionDescription

from gateway.access.policy import Viewer
from gateway.relay import CameraHub, ViewerTrack

from .offer import BadOffer, answer_profile, register_h264_profile
from .sender import RelaySender

RTX = RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)

log = logging.getLogger(__name__)

# A viewer whose ICE checks never arrive (blocked UDP, closed tab) frees its slot.
CONNECT_TIMEOUT_SECONDS = 15.0


def check_consent_often() -> None:
    """Notice a vanished viewer within about 5 s instead of 30 s.

    RFC 7675 lets consent lapse after 30 s of silence (aioice: 6 checks, 5 s apart),
    and a vanished tablet would hold a camera pull that long. Check every second and
    give up after 4 misses. aioice reads module globals, so this applies to every
    peer connection in the process: the gateway sets it when it starts, not on
    import (bench viewers import this package and must keep aioice's defaults).
    """
    aioice.ice.CONSENT_INTERVAL = 1
    aioice.ice.CONSENT_FAILURES = 4


class ViewerSession:
    """The unit that is listed, revoked and audited: one viewer, one camera, one grant."""

    def __init__(
        self,
        hub: CameraHub,
        track: ViewerTrack,
        pc: RTCPeerConnection,
        remote: str,
        viewer: Viewer,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.viewer = viewer
        self.hub = hub
        self.track = track
        self.pc = pc
        self.remote = remote
        self.started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self.end_reason: str | None = None
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
        return self.track.bytes_sent

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
        on_lost: Callable[[ViewerSession, str], None],
    ) -> tuple[ViewerSession, str]:
        """Join the hub and answer the offer; returns the session and the answer SDP."""
        requested = time.monotonic()
        track = await hub.join()
        pc = RTCPeerConnection(configuration)
        session = cls(hub, track, pc, remote, viewer)
        session._started = requested  # its clock starts with the offer
        try:
            assert hub.info is not None
            profile_level_id = answer_profile(hub.info.profile_level_id, offer)
            transceiver = pc.addTransceiver(track, direction="sendonly")
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
            for codec in transceiver._codecs:
                if codec.mimeType == "video/H264":
                    codec.parameters["profile-level-id"] = profile_level_id
            try:
                await pc.setLocalDescription(await pc.createAnswer())
            except (ValueError, LookupError, OperationError, InvalidAccessError) as exc:
                raise BadOffer(f"offer cannot be answered: {str(exc)[:200]}") from None
        except BaseException:
            await session.close("negotiation failed")
            raise

        @pc.on("connectionstatechange")
        def _state_changed() -> None:
            if pc.connectionState in ("failed", "closed") and session.end_reason is None:
                on_lost(session, "connection lost")

        def _connect_deadline() -> None:
            if pc.connectionState != "connected" and session.end_reason is None:
                on_lost(session, "viewer never connected")

        session._deadline = asyncio.get_running_loop().call_later(
            CONNECT_TIMEOUT_SECONDS, _connect_deadline
        )
        return session, pc.localDescription.sdp

    async def close(self, reason: str) -> bool:
        """End the session once; returns False if it had already ended."""
        if self.end_reason is not None:
            return False
        self.end_reason = reason
        if self._deadline is not None:
            self._deadline.cancel()
        self.hub.leave(self.track)
        await self.pc.close()
        self.ended.set()
        log.info(
            "session %s ended: camera %s, %.1f s, %d bytes, %s",
            self.id,
            self.camera_id,
            self.duration_seconds,
            self.bytes_sent,
            reason,
            extra={"session_id": self.id, "camera_id": self.camera_id},
        )
        return True
