"""Which of a viewer's ICE candidates the gateway may send connectivity checks to."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiortc import RTCIceCandidate, sdp


class CandidatePolicy:
    """Which of a viewer's ICE candidates the gateway may contact.

    - mDNS `.local` names: Chromium hides its host candidates behind them by
      default. aioice would try to resolve each for up to 1 s before answering;
      the browser's connectivity checks reach us anyway and become peer-reflexive
      candidates.
    - Link-local and unspecified addresses lead nowhere a viewer is.
    - The cameras' own hosts, and `[webrtc] deny_networks`: a viewer must not make
      the gateway send connectivity checks into the police camera network.
    """

    def __init__(
        self,
        forbidden_hosts: Iterable[str] = (),
        denied_networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ) -> None:
        self._forbidden = {h.lower().strip("[]") for h in forbidden_hosts if h}
        self._denied = tuple(denied_networks)

    def allows(self, address: str) -> bool:
        host = address.lower().strip("[]")
        if host.endswith(".local") or host in self._forbidden:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return True  # a name: aioice resolves it (or drops it)
        if any(ip in network for network in self._denied):
            return False
        return not (ip.is_link_local or ip.is_unspecified)

    def allows_line(self, line: str) -> bool:
        """An `a=candidate:` line (or any other SDP line, which is kept)."""
        if not line.startswith("a=candidate:"):
            return True
        bits = line.split()
        return len(bits) >= 8 and self.allows(bits[4])

    def candidate(self, line: str) -> RTCIceCandidate | None:
        """An `a=candidate:` line as aiortc's candidate; None if it is not to be
        used; ValueError if it is malformed."""
        try:
            candidate = sdp.candidate_from_sdp(line.removeprefix("a=").removeprefix("candidate:"))
        except (AssertionError, ValueError, IndexError):
            raise ValueError(f"malformed candidate line {line[:80]!r}") from None
        return candidate if self.allows(candidate.ip) else None
