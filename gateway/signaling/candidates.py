"""Which of a viewer's ICE candidates the gateway may send connectivity checks to."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiortc import RTCIceCandidate, sdp

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# A camera's network, learnt from its host in the inventory: the police network
# hands out addresses per site, and other devices there (recorders, the camera's own
# web page) must not get a viewer's checks either.
CAMERA_PREFIX = {4: 24, 6: 64}


class CandidatePolicy:
    """Which of a viewer's ICE candidates the gateway may send connectivity checks to.

    A viewer's candidates are text it chooses, and each check carries its ICE
    username: left open, a viewer could make the gateway send packets of its
    choosing into any network the gateway reaches. So only addresses a viewer
    could plausibly be on are checked:
    - public (globally routable, unicast) addresses;
    - the private and loopback networks the operator lists (`[webrtc]
      viewer_networks`, loopback by default);
    - never the cameras' networks (each camera host's /24 or /64, exactly the host
      for a camera on loopback), nor `[webrtc] deny_networks`, even if listed above;
    - names are never resolved: mDNS `.local` names (Chromium hides its host
      candidates behind them; its own checks reach the gateway anyway and become
      peer-reflexive candidates) and any other name, which could lead anywhere.
    """

    def __init__(
        self,
        camera_hosts: Iterable[str] = (),
        denied_networks: Iterable[Network] = (),
        viewer_networks: Iterable[Network] = LOOPBACK,
    ) -> None:
        cameras = [network for host in camera_hosts if (network := _camera_network(host))]
        self._never = (*cameras, *denied_networks)
        self._viewers = tuple(viewer_networks)

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False  # a name: not resolved
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self._never):
            return False
        if ip.is_global and not ip.is_multicast:
            return True
        return any(ip in network for network in self._viewers)

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


def _camera_network(host: str) -> Network | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None  # a name: its candidates are refused as names anyway
    prefix = ip.max_prefixlen if ip.is_loopback else CAMERA_PREFIX[ip.version]
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
