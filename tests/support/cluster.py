"""A real cluster for tests: PostgreSQL, HAProxy and gateway processes, built by
deploy/local_cluster.py (the module `make cluster-demo` runs)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from .camera import RtspCamera
from .gateway import AUTH, LIAISON, REFERENCE, VIEWER, bearer, camera_entry
from .viewer import Viewer

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "local_cluster", ROOT / "deploy" / "local_cluster.py"
)
assert _spec is not None and _spec.loader is not None
local_cluster = importlib.util.module_from_spec(_spec)
sys.modules["local_cluster"] = local_cluster
_spec.loader.exec_module(local_cluster)

Postgres = local_cluster.Postgres


@contextlib.contextmanager
def running_postgres(**options: Any) -> Iterator[Postgres]:
    """A throw-away PostgreSQL (`options` go to Postgres), removed afterwards. Not under
    pytest's own (root-only) folder: the postgres user works in it."""
    folder = Path(tempfile.mkdtemp(prefix="cctv-test-pg-"))
    server = Postgres(folder, **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


Balancer = local_cluster.Balancer
Node = local_cluster.Node
ADMIN = "admin-1"
SECOND = "admin-2"  # approves what ADMIN asks for ([governance] approval = "second_admin")
NODE_TIMEOUT_SECONDS = 3.0


def cluster_settings(cameras: dict[str, RtspCamera], **tables: dict[str, Any]) -> dict[str, Any]:
    """What every node of a test cluster shares (cameras small, linger short)."""
    return {
        "auth": dict(AUTH),
        "server": {"log_format": "text"},
        "relay": {
            "linger_seconds": 1.0,
            "start_timeout_seconds": 10.0,
            "reconnect_initial_seconds": 0.2,
            "reconnect_max_seconds": 1.0,
        },
        "cluster": {"node_timeout_seconds": NODE_TIMEOUT_SECONDS},
        "governance": {"police_liaisons": [LIAISON]},
        "cameras": [camera_entry(camera_id, cam.url) for camera_id, cam in cameras.items()],
        **tables,
    }


class Cluster:
    """Two (or more) nodes on one database behind HAProxy. `hosts`: a node's address
    other than 127.0.0.1, and `runs_in`: a command it runs under (a node in a network
    namespace of its own, tests/support/netns.py)."""

    def __init__(
        self,
        folder: Path,
        database: str,
        base: dict[str, Any],
        node_ids: tuple[str, ...],
        hosts: dict[str, str] | None = None,
        runs_in: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.cameras = [camera["id"] for camera in base["cameras"]]
        self.folder = folder
        self.database = database
        self.nodes: dict[str, Any] = {}
        hosts, runs_in = hosts or {}, runs_in or {}
        for node_id in node_ids:
            port = local_cluster.free_port()
            settings = local_cluster.node_settings(base, node_id, port, database)
            settings["cluster"] = {**base.get("cluster", {}), "node_id": node_id}
            if node_id in hosts:
                settings["server"]["host"] = hosts[node_id]
                # HAProxy reaches it from this host's end of the namespace's link.
                settings["server"]["trusted_proxies"] = ["127.0.0.1/32", *hosts.values()]
            self.nodes[node_id] = Node(folder, node_id, settings, runs_in.get(node_id, ()))
        self.balancer = Balancer(
            folder, {n: f"{node.host}:{node.port}" for n, node in self.nodes.items()}
        )

    def start(self) -> None:
        """Every node, then HAProxy; if one does not start, none is left running."""
        for node in self.nodes.values():
            node.start(wait=False)
        deadline = time.monotonic() + 40
        try:
            for node in self.nodes.values():
                while not node.answers():
                    assert time.monotonic() < deadline, f"node {node.node_id} did not start"
                    time.sleep(0.05)
            self.balancer.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.balancer.stop()
        for node in self.nodes.values():
            node.stop()

    def url(self, node: str | None = None) -> str:
        """A node's own address, or the balancer's."""
        return self.balancer.url if node is None else self.nodes[node].url

    async def wait_balanced(self, http: aiohttp.ClientSession, timeout: float = 15) -> None:
        """Until HAProxy sends new viewers to every node (its health checks passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = set()
            for _ in range(8):
                async with http.get(f"{self.balancer.url}/readyz") as reply:
                    if reply.status == 200:
                        seen.add(reply.status)
            if seen == {200}:
                return
            await asyncio.sleep(0.2)
        raise AssertionError("HAProxy never found the nodes ready")

    async def consent(
        self,
        http: aiohttp.ClientSession,
        cameras: list[str],
        reference: str = REFERENCE,
        node: str | None = None,
    ) -> dict[str, Any]:
        """A police authorization of `cameras`, recorded by the liaison (or the one
        already recorded with this reference)."""
        async with http.get(
            f"{self.url(node)}/api/authorizations", headers=bearer(LIAISON)
        ) as reply:
            for found in (await reply.json())["authorizations"]:
                if found["reference"] == reference and found["status"] == "confirmed":
                    return dict(found)
        now = datetime.now(UTC)
        body = {
            "reference": reference,
            "cameras": cameras,
            "purpose_class": "legal_duty",
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(),
        }
        async with http.post(
            f"{self.url(node)}/api/authorizations", json=body, headers=bearer(LIAISON)
        ) as reply:
            assert reply.status == 201, await reply.text()
            return dict(await reply.json())

    async def grant(
        self,
        http: aiohttp.ClientSession,
        cameras: list[str],
        members: list[str] | None = None,
        *,
        lasts: float = 3600,
        node: str | None = None,
        authorization: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A grant asked for by ADMIN and approved by SECOND, under `authorization`
        (default: the standing one, of every camera)."""
        if authorization is None:
            authorization = await self.consent(http, sorted(self.cameras), node=node)
        now = datetime.now(UTC)
        body = {
            "project": "2027 跨年 信義區",
            "purpose": "cluster test",
            "authorization_id": authorization["id"],
            "members": members or [VIEWER],
            "cameras": cameras,
            "starts_at": (now - timedelta(seconds=60)).isoformat(),
            "ends_at": (now + timedelta(seconds=lasts)).isoformat(),
        }
        async with http.post(
            f"{self.url(node)}/api/grants", json=body, headers=bearer(ADMIN, admin=True)
        ) as reply:
            assert reply.status == 201, await reply.text()
            asked = dict(await reply.json())
        async with http.post(
            f"{self.url(node)}/api/grants/{asked['id']}/approve",
            headers=bearer(SECOND, admin=True),
        ) as reply:
            assert reply.status == 200, await reply.text()
            return dict(await reply.json())

    async def admin(
        self,
        http: aiohttp.ClientSession,
        method: str,
        path: str,
        node: str | None = None,
        **kw: Any,
    ) -> tuple[int, Any]:
        async with http.request(
            method, f"{self.url(node)}{path}", headers=bearer(ADMIN, admin=True), **kw
        ) as reply:
            body = await reply.json() if reply.content_type == "application/json" else None
            return reply.status, body

    def viewer(self, camera_id: str, node: str | None = None, account: str = VIEWER) -> Viewer:
        return Viewer(self.url(node), camera_id, headers=bearer(account))


def node_of(viewer: Viewer) -> str:
    """The node holding a viewer's session, from its session URL."""
    assert viewer.session_url is not None
    return viewer.session_url.rsplit("/", 1)[1].split(".", 1)[0]


def session_id_of(viewer: Viewer) -> str:
    assert viewer.session_url is not None
    return viewer.session_url.rsplit("/", 1)[1]


async def watching(viewer: Viewer, http: aiohttp.ClientSession, frames: int = 3) -> Viewer:
    response = await viewer.connect(http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(frames, timeout=20), "no picture"
    return viewer


async def closed_within(viewer: Viewer, seconds: float) -> float:
    started = time.monotonic()
    await asyncio.wait_for(viewer.closed.wait(), seconds)
    return time.monotonic() - started


def run_gateway(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def audit_rows(
    cluster: Cluster, http: aiohttp.ClientSession, **query: str
) -> list[dict[str, Any]]:
    status, body = await cluster.admin(http, "GET", "/api/audit", params={"limit": "1000", **query})
    assert status == 200, body
    return list(body["rows"])


async def sessions_of(cluster: Cluster, http: aiohttp.ClientSession, account: str) -> list[dict]:
    status, body = await cluster.admin(http, "GET", "/api/sessions")
    assert status == 200, body
    return [s for s in body["sessions"] if s["account"] == account]


async def wait_for_audit(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    node: str,
    session_id: str,
    event: str,
    timeout: float = NODE_TIMEOUT_SECONDS * 4 + 5,
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await cluster.admin(
            http, "GET", "/api/audit", node=node, params={"event": event, "limit": "1000"}
        )
        if status == 200:
            for row in body["rows"]:
                if row["session_id"] == session_id:
                    return dict(row)
        await asyncio.sleep(0.3)
    raise AssertionError(f"no {event} for {session_id} in the audit log")
