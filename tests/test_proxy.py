"""Behind a reverse proxy (issue 10, item 11): whose address the audit log, the
failed-token throttle and sessions see.

X-Forwarded-For is believed only when the connection comes from a network in
`[server] trusted_proxies`, and then the client is the rightmost address in it
that is not a trusted proxy. The aiohttp test client connects from 127.0.0.1, so
the same requests run with and without 127.0.0.0/8 trusted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from support.gateway import REFERENCE, VIEWER, camera_entry, settings_for

from gateway.app import SESSIONS
from gateway.config import ServerSettings
from gateway.http.errors import client_address

PROXIES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "2001:db8::/32"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # A peer that is no trusted proxy is the client, whatever it claims.
        ("198.51.100.1", ["203.0.113.7"], "198.51.100.1"),
        ("198.51.100.1", [], "198.51.100.1"),
        # A trusted proxy vouches for the hop to its left ...
        ("10.0.0.2", ["203.0.113.7"], "203.0.113.7"),
        # ... through a chain of trusted proxies, stopping at the first untrusted hop:
        # what lies further left the client wrote itself.
        ("10.0.0.2", ["6.6.6.6, 203.0.113.7, 10.1.1.1"], "203.0.113.7"),
        ("10.0.0.2", ["6.6.6.6", "203.0.113.7, 10.1.1.1"], "203.0.113.7"),  # two headers
        # Every hop trusted: the leftmost.
        ("10.0.0.2", ["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
        # A trusted proxy that sends none: itself.
        ("10.0.0.2", [], "10.0.0.2"),
        # Garbage ends the walk at the last address a trusted proxy reported.
        ("10.0.0.2", ["203.0.113.7, not-an-ip"], "10.0.0.2"),
        ("10.0.0.2", ["not-an-ip, 10.1.1.1"], "10.1.1.1"),
        # IPv6, and IPv4 seen through an IPv6 socket.
        ("2001:db8::1", ["2001:db8:0:0:0:0:0:9, 2a00::5"], "2a00::5"),
        ("::ffff:10.0.0.2", ["203.0.113.7"], "203.0.113.7"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_hop(peer, forwarded, client):
    assert client_address(peer, forwarded, PROXIES) == client


def test_nothing_is_trusted_by_default():
    assert client_address("10.0.0.2", ["203.0.113.7"], ()) == "10.0.0.2"


def grant_fields() -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "project": "2027 跨年 信義區",
        "purpose": "人流管制",
        "authorization_ref": REFERENCE,
        "members": ["viewer-2"],
        "cameras": ["cam-a"],
        "starts_at": (now + timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
    }


@pytest.mark.parametrize(
    ("trusted", "client"), [((), "127.0.0.1"), (("127.0.0.0/8",), "203.0.113.7")]
)
async def test_forwarded_for_reaches_the_audit_log_only_from_a_trusted_proxy(
    start_gateway, trusted, client
):
    settings = settings_for([camera_entry("cam-a", "demo:testsrc", demo_size="320x240")])
    settings = dataclasses.replace(settings, server=ServerSettings(trusted_proxies=trusted))
    gateway = await start_gateway(settings)
    forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    admin = gateway.bearer("admin-1", admin=True)
    http, url = gateway.http, gateway.url

    # A grant created through the proxy, and a bad token seen through it.
    created = await http.post(
        url + "/api/grants", json=grant_fields(), headers={**admin, **forwarded}
    )
    assert created.status == 201
    rejected = await http.get(
        url + "/api/me", headers={"Authorization": "Bearer nonsense", **forwarded}
    )
    assert rejected.status == 401
    # A viewer's session, from its offer to its audit row.
    viewer = gateway.viewer("cam-a")
    viewer.headers.update(forwarded)
    try:
        assert (await viewer.connect(http)).status == 201
        (session,) = gateway.app[SESSIONS]
        assert session.remote == client
        listed = await (await http.get(url + "/api/sessions", headers=admin)).json()
        assert [s["remote"] for s in listed["sessions"]] == [client]
    finally:
        await viewer.close(http)

    rows = (await (await http.get(url + "/api/audit", headers=admin)).json())["rows"]
    remote_of: dict[str, str] = {}
    for row in rows:  # newest first: the newest row of each event
        remote_of.setdefault(row["event"], row["remote"])
    assert remote_of["grant_created"] == client
    assert remote_of["token_rejected"] == client
    assert remote_of["session_start"] == client
    assert [r["account"] for r in rows if r["event"] == "session_start"] == [VIEWER]
