"""ViewerSession: one viewer's peer connection to one camera, from offer to end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
from gateway.egress import send_feed
from gateway.egress.compat import ice_still_connected, register_h264_profile, transceiver_codecs
from gateway.relay import CameraHub, RenditionSpec, ViewerFeed

from .candidates import CandidatePolicy
from .offer import (
    END_OF_CANDIDATES,
    BadOffer,
    answer_profile,
    offered_video,
    offers_h264,
    offers_vp8,
    with_rtcp_mux_only,
)
from .turn import TurnCredential, TurnServers

RTX = RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)
VP8 = RTCRtpCodecCapability(mimeType="video/VP8", clockRate=90000)
# Media stopped while the session lived (a send-path failure): ending it lets the
# player reconnect rather than show a frozen picture on a live connection.
MEDIA_STOP_GRACE_SECONDS = 1.0

log = logging.getLogger(__name__)

# A viewer whose ICE checks never arrive (blocked UDP, closed tab) frees its slot.
CONNECT_TIMEOUT_SECONDS = 15.0
PC_CLOSE_SECONDS = 5.0  # see close()


class Ending(NamedTuple):
    """Why a session ended: a stable code (events, the player) and words for people."""

    code: str
    reason: str


CONNECTION_LOST = Ending("connection_lost", "connection lost")
VIEWER_CLOSED = Ending("viewer_closed", "viewer closed")  # its DTLS close came first
NEVER_CONNECTED = Ending("never_connected", "viewer never connected")
NEGOTIATION_FAILED = Ending("negotiation_failed", "negotiation failed")
MEDIA_FAILED = Ending("media_failed", "sending media failed")


class IceRestartUnsupported(Exception):
    """A trickle PATCH with new ICE credentials: the gateway does not restart ICE."""


@dataclass(frozen=True)
class SessionOptions:
    """How sessions are set up, from the settings (the composition root builds it)."""

    configuration: RTCConfiguration
    candidates: CandidatePolicy
    vp8: RenditionSpec  # for viewers that offer no H.264
    strict_h264_profile: bool = False
    fast_sender: bool = True
    # Lighter pictures a viewer may ask for (`?rendition=`), by name.
    renditions: Mapping[str, RenditionSpec] = field(default_factory=dict)
    turn: TurnServers | None = None  # each session's TURN credential, if configured

    def configuration_with(self, turn: TurnCredential | None) -> RTCConfiguration:
        """The gateway's own ICE servers, plus the session's TURN server when the
        gateway relays through it too (`[turn] gateway`)."""
        if turn is None or self.turn is None or not self.turn.for_gateway:
            return self.configuration
        return RTCConfiguration(
            iceServers=[*(self.configuration.iceServers or []), turn.ice_server()]
        )


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
        self.ended_by: str | None = None  # who ended it (through WHEP, or an administrator)
        self.codec = "H264"  # or "VP8" (a rendition of the camera)
        self.rendition: str | None = None  # a lighter picture asked for, e.g. "low"
        self.turn: TurnCredential | None = None  # handed to the viewer in the answer
        self.remote_ufrag = ""  # the viewer's ICE username fragment, for trickle PATCHes
        # WHEP's entity-tag of the ICE session; it never changes, as ICE never restarts.
        self.etag = f'"{secrets.token_urlsafe(9)}"'
        self._ice = None  # the RTCIceTransport remote candidates are added to
        self._candidates = CandidatePolicy()
        self._left_out = False  # one of the viewer's candidates was not used

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
            "emergency_id": self.viewer.emergency_id,
            "started_at": self.started_at.isoformat(),
            "remote": self.remote,
            "bytes_sent": self.bytes_sent,
            "state": self.pc.connectionState,
            "rendition": self.rendition,
        }

    @classmethod
    async def negotiate(
        cls,
        hub: CameraHub,
        offer_sdp: str,
        offer: SessionDescription,
        remote: str,
        viewer: Viewer,
        options: SessionOptions,
        on_lost: Callable[[ViewerSession, Ending], None],
        session_id: str | None = None,
        rendition: RenditionSpec | None = None,
    ) -> tuple[ViewerSession, str]:
        """Join the hub and answer the offer; returns the session and the answer SDP.

        H.264 offers get the camera's own stream; offers without H.264 but with VP8
        get the camera's shared VP8 rendition. With `rendition` (a lighter picture),
        the camera's shared encode of it, in VP8 for a viewer without H.264.
        """
        requested = time.monotonic()
        audience = viewer.grant_id  # whose masks CameraHub.lift_masks may lift
        h264_offered, vp8_offered = offers_h264(offer), offers_vp8(offer)
        if not (h264_offered or vp8_offered):
            raise BadOffer(
                "offer accepts neither H.264 (packetization-mode=1) nor VP8; "
                "offer one of them for video"
            )
        profile_level_id = None
        if rendition is not None:
            if h264_offered:
                try:
                    profile_level_id = answer_profile(
                        rendition.profile_level_id, offer, strict=True
                    ).profile_level_id
                except BadOffer:
                    if not vp8_offered:
                        raise
            feed = await hub.join(
                rendition if profile_level_id is not None else rendition.with_codec("vp8"),
                audience,
            )
        else:
            feed = await hub.join(None if h264_offered else options.vp8, audience)
        if h264_offered and rendition is None:
            assert hub.info is not None
            try:
                profile_level_id = answer_profile(
                    hub.info.profile_level_id, offer, options.strict_h264_profile
                ).profile_level_id
            except BadOffer:
                hub.leave(feed)
                if not vp8_offered:
                    raise
                feed = await hub.join(options.vp8, audience)  # the camera is live: quick
        turn = options.turn.issue(viewer.ends_at) if options.turn is not None else None
        pc = RTCPeerConnection(options.configuration_with(turn))
        session = cls(hub, feed, pc, remote, viewer, session_id)
        session._started = requested  # its clock starts with the offer
        session.turn = turn
        session.rendition = rendition.name if rendition is not None else None
        session._candidates = options.candidates
        # An offer whose end of candidates was taken out (offer.py) left some out.
        session._left_out = END_OF_CANDIDATES not in offer_sdp.splitlines()
        session.remote_ufrag = offered_video(offer).ice.usernameFragment or ""
        try:
            # aiortc builds the sender; only its send loop is ours (egress/sender.py).
            transceiver = send_feed(
                pc, feed, fast=options.fast_sender, on_stopped=session._media_stopped
            )
            # Before setRemoteDescription, or aiortc silently negotiates VP8.
            if profile_level_id is not None:
                preferred = register_h264_profile(profile_level_id)
            else:
                preferred, session.codec = VP8, "VP8"
            transceiver.setCodecPreferences([preferred, RTX])
            try:
                await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            except (ValueError, LookupError, OperationError, InvalidAccessError) as exc:
                # What aiortc refuses is a fault of the offer; its words are about SDP.
                raise BadOffer(f"offer cannot be answered: {str(exc)[:200]}") from None
            # WHEP: everything but the camera's video is answered inactive, so nothing
            # a viewer sends (audio, a second video) is received, decoded or kept.
            for other in pc.getTransceivers():
                if other is not transceiver:
                    other.direction = "inactive"
            if profile_level_id is not None:
                # aiortc answers with its codec entry for this profile; state the
                # camera's exact level too (the transceiver holds its own copies).
                for codec in transceiver_codecs(transceiver):
                    if codec.mimeType == "video/H264":
                        codec.parameters["profile-level-id"] = profile_level_id
            try:
                await pc.setLocalDescription(await pc.createAnswer())
            except (ValueError, LookupError, OperationError, InvalidAccessError) as exc:
                raise BadOffer(f"offer cannot be answered: {str(exc)[:200]}") from None
            session._ice = transceiver.receiver.transport.transport  # bundled: the one
        except BaseException:
            await session.close(NEGOTIATION_FAILED)
            raise

        session._on_lost = on_lost
        dtls = transceiver.receiver.transport
        closed_by_viewer = False

        @dtls.on("statechange")
        def _dtls_changed() -> None:
            nonlocal closed_by_viewer
            # The viewer's DTLS close_notify arrives while ICE still works; an ICE
            # consent expiry takes ICE down first.
            if dtls.state == "closed" and session._ice is not None:
                closed_by_viewer = ice_still_connected(session._ice)

        @pc.on("connectionstatechange")
        def _state_changed() -> None:
            if session.ending is not None or pc.connectionState not in ("closed", "failed"):
                return
            closed = pc.connectionState == "closed" and closed_by_viewer
            on_lost(session, VIEWER_CLOSED if closed else CONNECTION_LOST)

        def _connect_deadline() -> None:
            if pc.connectionState != "connected" and session.ending is None:
                on_lost(session, NEVER_CONNECTED)

        session._deadline = asyncio.get_running_loop().call_later(
            CONNECT_TIMEOUT_SECONDS, _connect_deadline
        )
        return session, with_rtcp_mux_only(pc.localDescription.sdp)

    _on_lost: Callable[[ViewerSession, Ending], None] | None = None

    def _media_stopped(self) -> None:
        """The sender stopped sending. Closing sessions stop it themselves, and a
        connection going away is noticed by its state; anything else left a live
        connection without a picture, which is ended so the player reconnects."""

        def check() -> None:
            if self.ending is None and self._on_lost is not None:
                log.warning(
                    "session %s: media stopped on a live connection; ending it",
                    self.id,
                    extra={"session_id": self.id, "camera_id": self.camera_id},
                )
                self._on_lost(self, MEDIA_FAILED)

        if self.ending is None:
            asyncio.get_running_loop().call_later(MEDIA_STOP_GRACE_SECONDS, check)

    async def add_candidates(self, fragment: str) -> int:
        """Trickle ICE (RFC 8840 sdpfrag): add the viewer's candidates that the
        CandidatePolicy allows; returns how many were added.

        ValueError for a malformed fragment; IceRestartUnsupported for new ICE
        credentials (the ICE session goes on as it was).
        """
        lines = [line.strip() for line in fragment.splitlines() if line.strip()]
        ufrags = {line.split(":", 1)[1] for line in lines if line.startswith("a=ice-ufrag:")}
        if ufrags and ufrags != {self.remote_ufrag}:
            raise IceRestartUnsupported
        candidates = []
        for line in lines:
            if line.startswith("a=candidate:"):
                candidate = self._candidates.candidate(line)  # ValueError if malformed
                if candidate is not None:
                    candidates.append(candidate)
                else:
                    self._left_out = True
        # Once a candidate was left out, the viewer's own checks may be the way in:
        # "end of candidates" would make aioice give up when none is left (offer.py).
        end = END_OF_CANDIDATES in lines and not self._left_out
        if self._ice is None or self.ending is not None:
            return 0
        for candidate in candidates:
            await self._ice.addRemoteCandidate(candidate)
        if end:
            await self._ice.addRemoteCandidate(None)
        return len(candidates)

    async def close(self, ending: Ending) -> bool:
        """End the session once; returns False if it had already ended."""
        if self.ending is not None:
            return False
        self.ending = ending
        if self._deadline is not None:
            self._deadline.cancel()
        self.hub.leave(self.feed)
        # The viewer has its DTLS close early in pc.close(). What follows can take a
        # minute: relayed through TURN (`[turn] gateway`), aioice deletes the
        # allocation with STUN retries (7 sends, 63.5 s) before it lets go of the
        # socket when the TURN server is gone. The end (its audit row, a revocation's
        # answer, shutdown) does not wait that long; aioice closes the relay's socket
        # when cancelled too.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PC_CLOSE_SECONDS):
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
