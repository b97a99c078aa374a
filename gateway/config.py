"""Settings: TOML to frozen, typed, validated dataclasses.

This is the only module that reads TOML or environment variables. Each settings class
declares its keys with `_key(default, rule, secret=...)`; one generic reader checks
unknown keys, types and rules, so a new section is a dataclass plus a `Settings` field.

Every error names the key, e.g. ``cameras[1] (id 'taipei-101').lat``, and never
contains a secret: camera sources and credentials may hold passwords.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import socket
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import NoneType, UnionType
from typing import Any, TypeVar
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A settings mistake. The message names the key and never holds a secret value."""


# A rule gets an already type-checked value and returns None, or what is wrong with it.
Rule = Callable[[Any], str | None]


def _key(
    default: Any = dataclasses.MISSING, rule: Rule | None = None, *, secret: bool = False
) -> Any:
    """A settings field. Secrets may be `{ env = "NAME" }`, and are kept out of repr."""
    return field(default=default, repr=not secret, metadata={"rule": rule, "secret": secret})


def _between(lo: float, hi: float) -> Rule:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}, got {v!r}"


def _at_least(lo: float) -> Rule:
    return lambda v: None if v >= lo else f"must be >= {lo}, got {v!r}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, got {v!r}"


def _one_of(*choices: str) -> Rule:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}, got {v!r}"


def _not_blank(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _unless_none(rule: Rule) -> Rule:
    """For an optional key: its default None passes, a value given must pass `rule`."""
    return lambda v: None if v is None else rule(v)


# Camera ids appear in URLs (/whep/{id}), so they are restricted to URL-safe characters.
_CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _camera_id(v: str) -> str | None:
    if _CAMERA_ID.fullmatch(v):
        return None
    # An inventory whose columns are mapped wrongly may put a source here: not echoed.
    got = f", got {v!r}" if len(v) <= 64 and ":" not in v else " (value hidden)"
    return f"must be 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit{got}"


# The pattern is pasted into a lavfi filter string, so only these known sources are allowed.
DEMO_PATTERNS = ("testsrc", "testsrc2", "smptebars", "smptehdbars", "rgbtestsrc", "mandelbrot")


API_PREFIX = "api:"
API_REF_MAX = 200


def _camera_source(v: str) -> str | None:
    # Never echo the value: an RTSP URL usually carries the camera's password.
    if v.startswith("demo:"):
        if v.removeprefix("demo:") in DEMO_PATTERNS:
            return None
        return f"demo pattern must be one of {', '.join(DEMO_PATTERNS)} (value hidden)"
    if v.startswith(API_PREFIX):
        ref = v.removeprefix(API_PREFIX)
        if 0 < len(ref) <= API_REF_MAX and ref.isprintable() and not any(c.isspace() for c in ref):
            return None
        return f"api: needs a reference of 1-{API_REF_MAX} printable characters without spaces"
    if not v.startswith(("rtsp://", "rtsps://")):
        return "must start with rtsp://, rtsps://, api: or demo: (value hidden)"
    try:
        host = urlsplit(v).hostname
    except ValueError:
        host = None
    return None if host else "has no host (value hidden)"


def _frame_size(v: tuple[int, int]) -> str | None:
    if all(16 <= n <= 3840 and n % 2 == 0 for n in v):
        return None
    return f"width and height must be even and between 16 and 3840, got {v[0]}x{v[1]}"


_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def _ice_urls(urls: tuple[str, ...]) -> str | None:
    if not urls:
        return "must list at least one URL"
    for i, url in enumerate(urls):
        if not url.startswith(_ICE_SCHEMES):  # not echoed: a TURN URL may embed a user
            return f"entry {i} must start with stun:, stuns:, turn: or turns:"
    return None


# RFC 7065: turn:host[:port][?transport=udp|tcp]; turns: is TURN over TLS. Each one
# goes into a Link header of the WHEP answer as it is written.
_TURN_URL = re.compile(
    r"turns?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(:\d{1,5})?"
    r"(\?transport=(udp|tcp))?"
)


def _turn_urls(urls: tuple[str, ...]) -> str | None:
    for i, url in enumerate(urls):
        if not url.startswith(("turn:", "turns:")):  # not echoed: it may embed a user
            return f"entry {i} must start with turn: or turns:"
        if not _TURN_URL.fullmatch(url):
            return (
                f"entry {i} must be turn:HOST[:PORT][?transport=udp|tcp] "
                "(or turns:), without a user (value hidden)"
            )
    return None


# A rendition's name is what a player puts in ?rendition=; "vp8" is taken by the
# VP8 rendition for browsers without H.264.
RENDITION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def _rendition_name(v: str) -> str | None:
    if not RENDITION_NAME.fullmatch(v):
        return f"must be 1-32 of a-z 0-9 _ -, starting with a letter or digit, got {v!r}"
    if v in ("vp8", "original"):
        return f"{v!r} is reserved"
    return None


def _renditions(renditions: tuple[RenditionSettings, ...]) -> str | None:
    seen: set[str] = set()
    for i, rendition in enumerate(renditions):
        if rendition.name in seen:
            return f"entry {i} has the same name {rendition.name!r} as an earlier one"
        seen.add(rendition.name)
    return None


# Privacy masks (issue 23). A polygon's points are fractions of the picture's width
# and height (0..1), so a mask stays on the same place when the resolution changes.
MASK_FILLS = ("solid", "pixelate")
MASK_POINTS_MAX = 64  # a window or an entrance needs a handful; each point costs per frame
MASK_LABEL_MAX = 100


def _mask_label(v: str) -> str | None:
    if not v.strip():
        return "must not be empty (say what the mask hides, e.g. 住宅窗戶)"
    if len(v) > MASK_LABEL_MAX or not v.isprintable():
        return f"must be at most {MASK_LABEL_MAX} printable characters"
    return None


Point = tuple[float, float]


def _polygon(points: tuple[Point, ...]) -> str | None:
    if not 3 <= len(points) <= MASK_POINTS_MAX:
        return f"must have 3 to {MASK_POINTS_MAX} points [x, y], got {len(points)}"
    for i, (x, y) in enumerate(points):
        if not (0 <= x <= 1 and 0 <= y <= 1):
            return (
                f"point {i} [{x:g}, {y:g}] is outside 0..1 (x and y are fractions of the "
                "picture's width and height)"
            )
    first: dict[Point, int] = {}
    for i, point in enumerate(points):
        if (j := first.setdefault(point, i)) != i:
            return f"point {i} repeats point {j}"
    if all(_turn(points[0], points[1], p) == 0 for p in points[2:]):
        return "encloses no area (its points lie on one line)"
    if (crossing := _crossing_edges(points)) is not None:
        i, j = crossing
        return (
            f"edges {i} and {j} cross (the polygon is self-intersecting); list the points "
            "in order around the outline"
        )
    return None


def _turn(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _within(a: Point, b: Point, p: Point) -> bool:
    """p, collinear with a-b, lies on the segment a-b."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _crossing_edges(points: tuple[Point, ...]) -> tuple[int, int] | None:
    """Two edges that touch other than at their shared corner; edge i runs from
    point i to point i+1 (the last back to point 0)."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        a, b = edges[i]
        for j in range(i + 1, n):
            c, d = edges[j]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbours share a corner; they cross only by folding back on each other.
                shared, p, q = (b, a, d) if j == i + 1 else (a, b, c)
                folds = _turn(shared, p, q) == 0 and (
                    (p[0] - shared[0]) * (q[0] - shared[0])
                    + (p[1] - shared[1]) * (q[1] - shared[1])
                    > 0
                )
                if folds:
                    return i, j
                continue
            t1, t2, t3, t4 = _turn(a, b, c), _turn(a, b, d), _turn(c, d, a), _turn(c, d, b)
            if (t1 > 0) != (t2 > 0) and (t3 > 0) != (t4 > 0) and 0 not in (t1, t2, t3, t4):
                return i, j
            touching = (
                (t1 == 0 and _within(a, b, c))
                or (t2 == 0 and _within(a, b, d))
                or (t3 == 0 and _within(c, d, a))
                or (t4 == 0 and _within(c, d, b))
            )
            if touching:
                return i, j
    return None


@dataclass(frozen=True)
class MaskSettings:
    """A privacy mask: an area of the picture no viewer sees, filled before encoding."""

    label: str = _key(rule=_mask_label)  # what it hides, e.g. 住宅窗戶 or 醫院入口
    polygon: tuple[Point, ...] = _key(rule=_polygon)  # [[x, y], ...], each in 0..1
    # "solid": one flat colour; "pixelate": blocks of about 1/32 of the picture's width,
    # each one colour. Never a blur: a blur can be undone.
    fill: str = _key("solid", _one_of(*MASK_FILLS))


def mask_count_problem(masks: tuple[MaskSettings, ...], max_masks: int) -> str | None:
    """What is wrong with a camera's number of masks, if anything ([relay] max_masks)."""
    if len(masks) > max_masks:
        return f"has {len(masks)} masks, more than [relay] max_masks ({max_masks})"
    return None


class MaskError(ConfigError):
    """A bad mask, from the admin API: `field` names it, e.g. "masks[1].polygon"."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def parse_masks(value: Any, max_masks: int, where: str = "masks") -> tuple[MaskSettings, ...]:
    """A camera's masks as the admin API receives them (JSON: a list of objects with
    label, polygon and fill), by the same rules as a [[cameras]] table's `masks`.
    Raises MaskError naming the field, for a 422."""
    try:
        masks = _convert(value, tuple[MaskSettings, ...], where, {})
    except ConfigError as exc:
        message = str(exc)
        raise MaskError(message, message.split(": ", 1)[0]) from None
    if problem := mask_count_problem(masks, max_masks):
        raise MaskError(f"{where}: {problem}", where)
    return masks


def _cameras(cameras: tuple[CameraSettings, ...]) -> str | None:
    first: dict[str, int] = {}
    for i, camera in enumerate(cameras):
        if (j := first.setdefault(camera.id, i)) != i:
            return f"cameras[{j}] and cameras[{i}] have the same id {camera.id!r}"
    return None


def _networks(networks: tuple[str, ...]) -> str | None:
    for i, network in enumerate(networks):
        try:
            ipaddress.ip_network(network)
        except ValueError as exc:
            return (
                f"entry {i} {network!r} is not a network like 10.0.0.0/8 or 2001:db8::/32 ({exc})"
            )
    return None


def _addresses(addresses: tuple[str, ...]) -> str | None:
    for i, address in enumerate(addresses):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return f"entry {i} {address!r} is not an IP address like 192.0.2.10"
    return None


@dataclass(frozen=True)
class ServerSettings:
    host: str = _key("127.0.0.1", _not_blank)
    port: int = _key(8080, _between(1, 65535))
    max_body_bytes: int = _key(65536, _between(1024, 1 << 20))  # WHEP offer limit
    log_format: str = _key("json", _one_of("json", "text"))
    # Reverse proxies whose X-Forwarded-For is believed (CIDRs; a bare address is a /32).
    trusted_proxies: tuple[str, ...] = _key((), _networks)
    # A request's headers, and then its body, must arrive within this; an idle
    # connection closes after it too (dripped headers held a connection 75 s).
    request_timeout_seconds: float = _key(5.0, _between(1, 60))
    # Connections one client address may hold open at once; the trusted proxies, which
    # carry many clients' connections, are not counted.
    max_connections_per_address: int = _key(64, _between(1, 100_000))

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n) for n in self.trusted_proxies)


@dataclass(frozen=True)
class RenditionSettings:
    """A lighter picture of every camera, for weak links: H.264 Constrained Baseline,
    encoded once per camera while someone watches it (POST /whep/{camera}?rendition=)."""

    name: str = _key(rule=_rendition_name)
    # The largest picture: the camera's is scaled down to fit, keeping its shape
    # (1280x720 -> 640x360, 704x576 -> 440x360), never up.
    size: tuple[int, int] = _key((640, 360), _frame_size)
    fps: float = _key(15.0, _between(1, 60))  # at most; a slower camera keeps its rate
    bitrate_kbps: int = _key(400, _between(50, 50000))


@dataclass(frozen=True)
class RelaySettings:
    linger_seconds: float = _key(5.0, _at_least(0))
    start_timeout_seconds: float = _key(8.0, _positive)
    viewer_queue_frames: int = _key(50, _at_least(2))  # bound of each viewer's queue
    reconnect_initial_seconds: float = _key(0.5, _positive)
    reconnect_max_seconds: float = _key(10.0, _positive)
    max_viewers: int = _key(200, _at_least(1))  # all cameras together; then 503
    max_viewers_per_camera: int = _key(100, _at_least(1))
    transcode_bitrate_kbps: int = _key(2000, _between(100, 50000))
    transcode_preset: str = _key(
        "veryfast", _one_of("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
    )
    # The VP8 rendition for browsers that offer no H.264 (Firefox without OpenH264):
    # encoded once per camera while such a viewer watches.
    vp8_bitrate_kbps: int = _key(1500, _between(100, 50000))
    # Lighter pictures a player may ask for (issue 15): by default one, "low". An empty
    # list offers none.
    renditions: tuple[RenditionSettings, ...] = _key((RenditionSettings(name="low"),), _renditions)
    # Privacy masks a camera may have at most: each is painted on every frame.
    max_masks: int = _key(16, _between(1, 256))

    def rendition(self, name: str) -> RenditionSettings | None:
        return next((r for r in self.renditions if r.name == name), None)

    def __post_init__(self) -> None:
        # Cross-field checks raise ValueError("key: problem"); the reader adds the table name.
        if self.reconnect_max_seconds < self.reconnect_initial_seconds:
            raise ValueError(
                "reconnect_max_seconds: must be >= reconnect_initial_seconds "
                f"({self.reconnect_initial_seconds!r}), got {self.reconnect_max_seconds!r}"
            )


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...] = _key(rule=_ice_urls)
    username: str | None = None
    credential: str | None = _key(None, secret=True)

    def __post_init__(self) -> None:
        turn = any(url.startswith(("turn:", "turns:")) for url in self.urls)
        if turn and not (self.username and self.credential):
            raise ValueError("credential: a turn:/turns: server needs username and credential")


@dataclass(frozen=True)
class TurnSettings:
    """TURN for viewers (coturn's REST API scheme: `use-auth-secret`): each WHEP
    session is handed its own username and credential, made from `secret`, in the
    answer's Link headers. Without `urls`, no TURN is offered."""

    urls: tuple[str, ...] = _key((), _turn_urls)  # turn: (UDP/TCP) and turns: (TLS)
    secret: str | None = _key(None, secret=True)  # coturn's static-auth-secret
    # How long a credential lasts at most; never past the end of the session's grant.
    ttl_seconds: float = _key(3600.0, _between(60, 7 * 24 * 3600))
    # The gateway's own peer connections gather relay candidates from the same
    # servers too (a gateway behind NAT), with credentials it makes for itself.
    gateway: bool = False

    def __post_init__(self) -> None:
        if self.urls and not self.secret:
            raise ValueError("secret: [turn] urls need the TURN server's static auth secret")
        if self.secret is not None and len(self.secret.encode()) < 16:
            raise ValueError("secret: must be at least 16 bytes (value hidden)")
        if self.secret is not None and not self.urls:
            raise ValueError("urls: a [turn] secret needs at least one turn: or turns: URL")
        if self.gateway and not self.urls:
            raise ValueError("gateway: needs [turn] urls")

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


@dataclass(frozen=True)
class WebRtcSettings:
    ice_servers: tuple[IceServer, ...] = ()
    # False: an offer whose H.264 is Constrained Baseline only (Firefox with OpenH264,
    # stock aiortc, hardware players) still gets a Main/High camera passed through,
    # labelled as the profile it offered, as MediaMTX and go2rtc do. True: such an
    # offer is refused (400) unless it names a profile whose decoders must play the stream.
    strict_h264_profile: bool = False
    # How relayed media leaves: "fast" (the gateway's own RTP/SRTP/GSO path) or
    # "aiortc" (aiortc's sender; slower per viewer, no private send-path internals).
    sender: str = _key("fast", _one_of("fast", "aiortc"))
    # Networks the gateway never sends ICE checks to, whatever a viewer's candidates say
    # (e.g. the police camera network's leg); the cameras' own hosts, link-local and
    # unspecified addresses are never contacted anyway.
    deny_networks: tuple[str, ...] = _key((), _networks)
    # Private and loopback networks a viewer (or its TURN server) may be on; the gateway
    # checks a viewer's candidates there, and at public addresses, nowhere else.
    viewer_networks: tuple[str, ...] = _key(("127.0.0.0/8", "::1/128"), _networks)
    # The gateway's own addresses that answers may announce (its viewer-facing ones);
    # empty: every address of the host. A leg in the police network must not appear.
    announce_addresses: tuple[str, ...] = _key((), _addresses)

    @property
    def denied_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n) for n in self.deny_networks)

    @property
    def viewer_private_networks(
        self,
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n) for n in self.viewer_networks)


@dataclass(frozen=True)
class CameraSettings:
    id: str = _key(rule=_camera_id)
    name: str = _key(rule=_not_blank)  # any Unicode, e.g. 臺北車站
    lat: float = _key(rule=_between(-90, 90))
    lon: float = _key(rule=_between(-180, 180))
    # rtsp(s)://..., api:<reference> (asked of [police_api] at each pull) or demo:<pattern>
    source: str = _key(rule=_camera_source, secret=True)
    rtsp_transport: str = _key("tcp", _one_of("tcp", "udp"))
    open_timeout_seconds: float = _key(5.0, _positive)
    stall_timeout_seconds: float = _key(5.0, _positive)
    demo_size: tuple[int, int] = _key((1280, 720), _frame_size)  # TOML: "1280x720"
    demo_fps: int = _key(25, _between(1, 60))
    district: str = ""  # shown and searched on the map, e.g. 信義區
    road: str = ""  # e.g. 松仁路/松高路口
    # Areas no viewer may see (homes' windows, a hospital's entrance): every picture
    # that leaves the gateway is masked (relay/pictures.py).
    masks: tuple[MaskSettings, ...] = ()

    @property
    def is_demo(self) -> bool:
        return self.source.startswith("demo:")

    @property
    def api_reference(self) -> str | None:
        """The police API's reference for an `api:` source, else None."""
        return self.source.removeprefix(API_PREFIX) if self.source.startswith(API_PREFIX) else None

    @property
    def host(self) -> str | None:
        """The camera's host as written in its source (None for a demo or api: camera): a
        viewer's ICE candidate naming it is never contacted. Never logged or shown."""
        if self.is_demo or self.api_reference is not None:
            return None
        try:
            return urlsplit(self.source).hostname
        except ValueError:
            return None


_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512")


def _algorithms(algorithms: tuple[str, ...]) -> str | None:
    if not algorithms:
        return "must list at least one algorithm"
    for name in algorithms:
        if name not in _HMAC_ALGORITHMS + _KEY_ALGORITHMS:  # "none" included
            known = ", ".join(_HMAC_ALGORITHMS + _KEY_ALGORITHMS)
            return f"{name!r} is not accepted (one of {known})"
    return None


@dataclass(frozen=True)
class AuthSettings:
    """How bearer tokens (JWTs) are verified. The defaults match the city dashboard."""

    algorithms: tuple[str, ...] = _key(("HS256",), _algorithms)
    secret: str | None = _key(None, secret=True)  # shared secret for HS*
    public_key_file: str | None = None  # PEM public key for RS*/PS*/ES*
    jwks_url: str | None = None  # or a JWKS endpoint for RS*/PS*/ES*
    jwks_cache_seconds: float = _key(300.0, _positive)
    issuer: str = "Taipei citydashboard"  # "" skips the check
    audience: str = ""  # "" skips the check
    leeway_seconds: float = _key(30.0, _between(0, 300))
    account_claim: str = _key("account_id", _not_blank)
    fallback_account_claim: str = "sub"  # used when account_claim is absent
    admin_claim: str = _key("is_admin", _not_blank)
    # A token whose exp is further off than this is refused: a leaked long-lived
    # token must not open sessions for days.
    max_token_lifetime_seconds: float = _key(12 * 3600.0, _between(60, 30 * 24 * 3600))

    def __post_init__(self) -> None:
        hmac = any(a in _HMAC_ALGORITHMS for a in self.algorithms)
        keyed = any(a in _KEY_ALGORITHMS for a in self.algorithms)
        if hmac and keyed:
            # A public key accepted as an HMAC secret would let anyone sign tokens.
            raise ValueError("algorithms: do not mix HS* with RS*/PS*/ES* (algorithm confusion)")
        if hmac and (not self.secret or len(self.secret.encode()) < 32):
            raise ValueError("secret: HS* needs a secret of at least 32 bytes")
        if keyed and not (self.public_key_file or self.jwks_url):
            raise ValueError("public_key_file: RS*/PS*/ES* need public_key_file or jwks_url")


@dataclass(frozen=True)
class LimitSettings:
    """Per account, so one account cannot take every place (429 past these)."""

    # A 3x3 grid of tiles, plus spares for tiles that are reconnecting.
    max_sessions_per_account: int = _key(12, _between(1, 10_000))
    max_event_streams_per_account: int = _key(8, _between(1, 1000))
    max_tickets_per_account: int = _key(16, _between(1, 1000))


@dataclass(frozen=True)
class StorageSettings:
    # Grants and the audit log: a SQLite file (WAL), or a postgresql:// URL shared by
    # several nodes. Never video: nothing else is written. Secret: a URL may hold a
    # password (or give it as { env = "NAME" }).
    database: str = _key("data/gateway.sqlite3", _not_blank, secret=True)

    @property
    def shared(self) -> bool:
        """Several gateway nodes may use this database (PostgreSQL)."""
        return self.database.startswith(("postgresql://", "postgres://"))


# A node id starts every session id it hands out ("<node>.<token>"), which the
# balancer reads to route a session's PATCH and DELETE to its node.
_NODE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def _node_id(v: str) -> str | None:
    if v == "" or _NODE_ID.fullmatch(v):
        return None
    return f"must be 1-32 of a-z 0-9 -, starting with a letter or digit, got {v!r}"


def _node_address(v: str) -> str | None:
    if v == "" or re.fullmatch(r"https?://[^/\s?#]+", v):
        return None
    return f"must be a scheme, host and port, like http://10.0.0.11:8080, got {v!r}"


@dataclass(frozen=True)
class ClusterSettings:
    """One node of several behind a balancer, sharing a PostgreSQL database."""

    node_id: str = _key("", _node_id)  # required with a postgresql:// database
    # A node whose heartbeat is older than this is taken for dead: a surviving node
    # closes out its sessions in the audit log.
    node_timeout_seconds: float = _key(5.0, _between(2, 300))
    # A node that has heard neither PostgreSQL nor any other node for this long is
    # cut off: revocations made elsewhere cannot reach it, so it ends its sessions
    # (node_isolated) and admits nobody until it hears the cluster again.
    isolation_grace_seconds: float = _key(10.0, _between(2, 300))
    # Where the other nodes reach this one (revocations go straight there, so they
    # work while PostgreSQL is away). Default: http://<[server] host>:<[server] port>,
    # with this machine's name for a wildcard host.
    address: str = _key("", _node_address)
    # A camera's viewers this node holds before it sends further viewers of that
    # camera to another node (307 to /whep/nodes/<node>/<camera>), which takes the
    # camera's frames from this one rather than from the police: one RTSP pull still.
    # Also while this node is overloaded (its event loop behind). 0: off. What fits
    # depends on the node's CPU and the camera's bitrate (docs/performance.md).
    spread_viewers: int = _key(0, _between(0, 100_000))
    # Also once this node, holding a viewer of the camera, has used this share of the
    # CPU it may use over the last 2 s: its cgroup's quota (else its cores), or one core
    # for its event loop, which sends to every viewer (relay/overload.py CpuGauge).
    # It follows what the machine can do today, where a count is one measured earlier.
    # 0: off. Spreading is on when either is set.
    spread_cpu_percent: float = _key(0.0, _between(0, 100))


@dataclass(frozen=True)
class GrantSettings:
    max_days: float = _key(14.0, _between(0.01, 366))  # longest window a grant may have


def _accounts(accounts: tuple[str, ...]) -> str | None:
    for i, account in enumerate(accounts):
        if not account.strip() or not account.isprintable():
            return f"entry {i} must be an account name on one line"
    return None


def _groups(groups: tuple[str, ...]) -> str | None:
    for i, group in enumerate(groups):
        if not re.fullmatch(r"[^:\s]+(:[^:\s]+)?", group):
            return f'entry {i} must be a group id, or "GROUP:ROLE", got {group!r}'
    return None


@dataclass(frozen=True)
class GovernanceSettings:
    """The chain of consent (docs/governance.md): who gives and withdraws the police's
    consent, who reads the report, who approves a grant, and emergency access."""

    # Who approves a new grant or one that widens: "second_admin" (another
    # administrator), "police_liaison", or "none" (one person alone; the report says so).
    approval: str = _key("second_admin", _one_of("second_admin", "police_liaison", "none"))
    # Roles by account name ...
    police_liaisons: tuple[str, ...] = _key((), _accounts)
    auditors: tuple[str, ...] = _key((), _accounts)
    emergency_accounts: tuple[str, ...] = _key((), _accounts)
    # ... or by the token's groups: `roles_claim` holds a list, of the dashboard's
    # {group_id, role_id} objects or of plain names; an entry "G" matches group G,
    # "G:R" role R in group G.
    roles_claim: str = _key("permissions", _not_blank)
    police_liaison_groups: tuple[str, ...] = _key((), _groups)
    auditor_groups: tuple[str, ...] = _key((), _groups)
    emergency_groups: tuple[str, ...] = _key((), _groups)
    # Emergency access (要點第五條, imminent danger): how long one lasts at most, and
    # how many cameras one account may hold open that way at once.
    emergency_minutes: int = _key(30, _between(1, 240))
    emergency_cameras: int = _key(4, _between(1, 100))
    # How long a privacy mask is lifted for one grant once a second person approves
    # (docs/masks.md); a fraction of a minute is allowed (tests use seconds).
    mask_lift_minutes: float = _key(15.0, _between(0.05, 1440))


@dataclass(frozen=True)
class AuditSettings:
    retention_days: float = _key(400.0, _at_least(0))  # 0 keeps every row


def _origins(origins: tuple[str, ...]) -> str | None:
    for origin in origins:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            return f"{origin!r} must be a scheme and host, like https://dashboard.example.org"
    return None


@dataclass(frozen=True)
class CorsSettings:
    origins: tuple[str, ...] = _key((), _origins)  # dashboards that may embed the player


def _tile_url(url: str) -> str | None:
    # The pages' Content-Security-Policy allows images from this URL's origin only.
    if url.startswith("/") and not url.startswith("//"):
        return None  # served by the gateway's own origin
    if re.fullmatch(r"https?://[^/\s?#]+/\S*", url):
        return None
    return f"must be an http(s) URL or a path starting with /, got {url!r}"


@dataclass(frozen=True)
class MapSettings:
    # Base map tiles for the viewer; without a reachable tile server the camera
    # points still show on a plain background.
    tile_url: str = _key("https://tile.openstreetmap.org/{z}/{x}/{y}.png", _tile_url)
    attribution: str = "&copy; OpenStreetMap contributors"


def _column(v: str) -> str | None:
    return None if v == v.strip() and "\n" not in v else "must be a column name on one line"


@dataclass(frozen=True)
class InventoryColumns:
    """Which column (CSV) or property (GeoJSON) holds each field.

    "" means the file has no such column: no district or road, and for `source`,
    each camera's source is `source_prefix` followed by its id.
    """

    id: str = _key("id", _not_blank)
    name: str = _key("name", _not_blank)
    lat: str = _key("lat", _not_blank)  # CSV only: GeoJSON points carry their coordinates
    lon: str = _key("lon", _not_blank)
    district: str = _key("", _column)
    road: str = _key("", _column)
    source: str = _key("source", _column)
    # A camera's privacy masks, as JSON (CSV) or a list (GeoJSON), in the shape of a
    # [[cameras]] table's `masks`. Read whenever the file has this column.
    masks: str = _key("masks", _column)


def _delimiter(v: str) -> str | None:
    return None if len(v) == 1 and v not in '\r\n"' else 'must be one character, e.g. ","'


@dataclass(frozen=True)
class InventorySettings:
    # The city's or the police's list of camera points; read at start and on every
    # reload (SIGHUP or POST /api/inventory/reload). [[cameras]] add to it or override it.
    file: str | None = _key(None, _unless_none(_not_blank))
    format: str = _key("auto", _one_of("auto", "csv", "geojson"))  # auto: by file extension
    delimiter: str = _key(",", _delimiter)  # CSV only
    # Put before each source cell, e.g. "api:" when the file lists the police's references.
    source_prefix: str = _key("", _one_of("", "api:"))
    columns: InventoryColumns = InventoryColumns()


def _api_url(v: str) -> str | None:
    # A secret (it may carry an API key), so never echoed.
    if not v.startswith(("https://", "http://")):
        return "must start with https:// or http:// (value hidden)"
    if "{ref}" not in v:
        return "must contain {ref}, where the camera's reference goes (value hidden)"
    return None


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_name(v: str) -> str | None:
    return None if _HEADER_NAME.fullmatch(v) else f"must be an HTTP header name, got {v!r}"


def _dotted_path(v: str) -> str | None:
    parts = v.split(".")
    if all(p and p == p.strip() for p in parts):
        return None
    return f"must be a dotted path like data.stream_url, got {v!r}"


@dataclass(frozen=True)
class PoliceApiSettings:
    """Where `api:` sources get their stream URL: asked at pull time, and only then."""

    url: str = _key(rule=_api_url, secret=True)  # {ref} is replaced by the URL-quoted reference
    # Sent as `token_header: token_prefix + token`; or HTTP Basic with username/password.
    token: str | None = _key(None, _unless_none(_not_blank), secret=True)
    token_header: str = _key("Authorization", _header_name)
    token_prefix: str = "Bearer "
    username: str | None = _key(None, _unless_none(_not_blank))
    password: str | None = _key(None, secret=True)
    answer: str = _key("json", _one_of("json", "redirect"))  # the URL in JSON, or a Location
    url_field: str = _key("url", _dotted_path)  # where the stream URL sits in the JSON answer
    timeout_seconds: float = _key(5.0, _between(0.1, 60))
    reuse_seconds: float = _key(60.0, _at_least(0))  # 0: ask at every (re)connect
    # PEM file of the police CA, when the API's certificate is not in the system's store.
    ca_file: str | None = _key(None, _unless_none(_not_blank))

    def __post_init__(self) -> None:
        if self.token is not None and self.username is not None:
            raise ValueError("token: give a token or username/password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("password: HTTP Basic needs both username and password")
        for name, value in (("token", self.token), ("password", self.password)):
            if value is not None and not value.isprintable():
                raise ValueError(f"{name}: must not contain control characters (value hidden)")
        if not self.token_prefix.isprintable():
            raise ValueError("token_prefix: must not contain control characters")


@dataclass(frozen=True)
class Settings:
    # A missing section means all its defaults; auth and some cameras are required.
    auth: AuthSettings
    cameras: tuple[CameraSettings, ...] = _key((), _cameras)
    inventory: InventorySettings = InventorySettings()
    police_api: PoliceApiSettings | None = None
    server: ServerSettings = ServerSettings()
    relay: RelaySettings = RelaySettings()
    webrtc: WebRtcSettings = WebRtcSettings()
    turn: TurnSettings = TurnSettings()
    storage: StorageSettings = StorageSettings()
    grants: GrantSettings = GrantSettings()
    governance: GovernanceSettings = GovernanceSettings()
    audit: AuditSettings = AuditSettings()
    cors: CorsSettings = CorsSettings()
    map: MapSettings = MapSettings()
    limits: LimitSettings = LimitSettings()
    cluster: ClusterSettings = ClusterSettings()

    def __post_init__(self) -> None:
        if self.storage.shared and not self.cluster.node_id:
            raise ValueError(
                "cluster.node_id: required when [storage] database is a postgresql:// URL"
                ' (each node of the cluster needs its own, e.g. "gw1")'
            )
        if not self.cameras and self.inventory.file is None:
            raise ValueError(
                "cameras: at least one camera is required "
                "(add a [[cameras]] table or an [inventory] file)"
            )
        for i, camera in enumerate(self.cameras):
            if problem := mask_count_problem(camera.masks, self.relay.max_masks):
                raise ValueError(f"{_named(f'cameras[{i}]', {'id': camera.id})}.masks: {problem}")
            if camera.api_reference is not None and self.police_api is None:
                raise ValueError(
                    f"cameras[{i}] (id {camera.id!r}).source: an api: source needs a "
                    "[police_api] table"
                )

    def camera(self, camera_id: str) -> CameraSettings | None:
        return next((c for c in self.cameras if c.id == camera_id), None)

    @property
    def node_address(self) -> str:
        """How the other nodes of a cluster reach this one ([cluster] address)."""
        if self.cluster.address:
            return self.cluster.address
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.getfqdn()
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.server.port}"


def load_settings(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Settings:
    """Read and validate a TOML settings file; environ defaults to os.environ."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:  # its message gives line and column, not values
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    return parse_settings(data, environ)


def parse_settings(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Validate already-parsed TOML data; environ defaults to os.environ."""
    return _read_table(Settings, data, "", os.environ if environ is None else environ)


def camera_settings(fields: Mapping[str, Any], row: str) -> CameraSettings:
    """One camera from an inventory row, by the same rules as a [[cameras]] table.

    `row` names the row in errors, which add its id and the field, e.g.
    "cameras.csv line 13 (id 'xinyi-01').lat: must be between -90 and 90, got 95.0".
    """
    return _read_table(CameraSettings, fields, _named(row, fields), {})


T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _read_table(cls: type[T], table: Any, where: str, environ: Mapping[str, str]) -> T:
    """Build dataclass `cls` from TOML table `table` found at key path `where`."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where or '(top level)'}: expected a table, got {_kind(table)}")
    prefix = f"{where}." if where else ""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in table:
        if name not in fields:
            raise ConfigError(f"{prefix}{name}: unknown key (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        key = prefix + name
        if name in table:
            raw = table[name]
            if f.metadata.get("secret"):
                raw = _resolve_secret(raw, key, environ)
            value = _convert(raw, _hints(cls)[name], key, environ)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif dataclasses.is_dataclass(_hints(cls)[name]):
            raise ConfigError(f"{key}: missing required table [{key}]")
        else:
            raise ConfigError(f"{key}: missing required key")
        if (rule := f.metadata.get("rule")) and (problem := rule(value)):
            raise ConfigError(f"{key}: {problem}")
        values[name] = value
    try:
        return cls(**values)
    except ValueError as exc:  # a cross-field check in __post_init__
        raise ConfigError(f"{prefix}{exc}") from None


_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
_EXPECTED = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _convert(value: Any, hint: Any, key: str, environ: Mapping[str, str]) -> Any:
    """Check `value` against the field's type hint; nested tables and arrays recurse."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is UnionType:  # `str | None`: TOML has no null, so the value is the other type
        (hint,) = (a for a in args if a is not NoneType)
        return _convert(value, hint, key, environ)
    if dataclasses.is_dataclass(hint):
        return _read_table(hint, value, key, environ)
    if origin is tuple and args[1:] == (Ellipsis,):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected an array, got {_kind(value)}")
        return tuple(
            _convert(item, args[0], _item_key(key, i, item), environ)
            for i, item in enumerate(value)
        )
    if hint == Point:  # a mask's corner, [x, y]
        if not (isinstance(value, list) and len(value) == 2):
            raise ConfigError(f"{key}: expected a point [x, y], got {_kind(value)}")
        return tuple(_convert(v, float, f"{key}[{i}]", environ) for i, v in enumerate(value))
    if hint == tuple[int, int]:  # a frame size, written "1280x720"
        match = _SIZE.fullmatch(value) if isinstance(value, str) else None
        if not match:
            got = repr(value) if isinstance(value, str) else _kind(value)
            raise ConfigError(f'{key}: expected a size like "1280x720", got {got}')
        return int(match[1]), int(match[2])
    if hint is float and type(value) is int:  # ints are fine for floats, bools are not
        value = float(value)
    if type(value) is not hint:  # exact type: a bool is not an int here
        raise ConfigError(f"{key}: expected {_EXPECTED[hint]}, got {_kind(value)}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    return value


def _item_key(key: str, index: int, item: Any) -> str:
    """`cameras[1] (id 'taipei-101')`: an entry named by its id, when it has a valid one."""
    return _named(f"{key}[{index}]", item)


def _named(where: str, item: Any) -> str:
    ident = item.get("id") if isinstance(item, Mapping) else None
    if isinstance(ident, str) and _CAMERA_ID.fullmatch(ident):
        return f"{where} (id {ident!r})"
    return where


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _resolve_secret(value: Any, key: str, environ: Mapping[str, str]) -> Any:
    """A secret is written inline or as `{ env = "NAME" }`, read from the environment."""
    if not isinstance(value, Mapping):
        if isinstance(value, str):
            return value
        raise ConfigError(f'{key}: expected a string or {{ env = "NAME" }}, got {_kind(value)}')
    name = value.get("env")
    if set(value) != {"env"} or not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        # Not echoed: a misplaced secret could be in there.
        raise ConfigError(f'{key}: must be a string or {{ env = "NAME" }} with a variable name')
    secret = environ.get(name)
    if not secret:
        raise ConfigError(f"{key}: environment variable {name} is not set or is empty")
    return secret


def _kind(value: Any) -> str:
    """The TOML name of a value's type, for error messages."""
    if isinstance(value, bool):
        return "boolean"
    kinds = (
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (list, "array"),
        (Mapping, "table"),
    )
    return next((name for t, name in kinds if isinstance(value, t)), type(value).__name__)
