"""A gateway cluster on this host, from Debian's parts: PostgreSQL in a temporary
folder, HAProxy with deploy/haproxy.cfg, and gateway nodes as processes.

`make cluster-demo` runs `main()`: two nodes on the demo cameras behind HAProxy,
then prints the links. The cluster tests and the benchmark use the same classes.

PostgreSQL is Debian's (`initdb`, `pg_ctl`), run as the `postgres` user, trusting
connections from 127.0.0.1 only, in a folder removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the tests and the demo run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _wait(ready: Any, what: str, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {seconds:g} s")


class Postgres:
    """A throw-away PostgreSQL 15 server on 127.0.0.1:`port`, and on `also` (more
    addresses of this host), trusting connections from 127.0.0.1 and from `clients`
    (addresses: a test's network namespace, another host to it)."""

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        also: tuple[str, ...] = (),
        clients: tuple[str, ...] = (),
    ) -> None:
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = port or free_port()
        self.log = folder / "postgres.log"
        self.also, self.clients = also, clients

    def url(
        self, database: str = "postgres", password: str | None = None, host: str = "127.0.0.1"
    ) -> str:
        who = "postgres" + (f":{password}" if password else "")
        return f"postgresql://{who}@{host}:{self.port}/{database}"

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        if not self.data.exists():
            made = subprocess.run(
                _as_postgres(
                    [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if made.returncode != 0:
                raise RuntimeError(f"initdb failed in {self.folder}:\n{made.stderr}")
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.writelines(f"host all all {address}/32 trust\n" for address in self.clients)
        # A temporary server: durability is not the point, speed is.
        listen = ",".join(("127.0.0.1", *self.also))
        options = (
            f"-p {self.port} -c listen_addresses={listen} -k {self.folder}"
            " -c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.log),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """A fast shutdown: connections are cut, as when the server goes away."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def answers(self) -> bool:
        return _listening(self.port)

    def kill(self) -> None:
        """SIGKILL to the server and every process of it, as a crash or the OOM killer
        would; the next start recovers from its write-ahead log."""
        pid_file = self.data / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        children = [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent_of(stat) == postmaster
        ]
        for pid in (postmaster, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in (postmaster, *children)):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL's processes outlived SIGKILL")
            time.sleep(0.02)

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}"')
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class Balancer:
    """HAProxy with deploy/haproxy.cfg, in the foreground, its addresses from the
    environment (the config's CCTV_* variables). `nodes`: each node's port on
    127.0.0.1, or its "host:port"."""

    def __init__(
        self, folder: Path, nodes: Mapping[str, int | str], port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CCTV_LISTEN": f"127.0.0.1:{self.port}"}
        for name, node in nodes.items():
            where = f"127.0.0.1:{node}" if isinstance(node, int) else node
            self.env[f"CCTV_{name.upper()}"] = where
        self.log = folder / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["haproxy", "-db", "-f", str(HAPROXY_CONFIG)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait(lambda: _listening(self.port), "haproxy")

    def stop(self) -> None:
        _stop(self.proc)


class Node:
    """One gateway process (`python -m gateway --config …`, from the repository root).
    `runs_in`: a command it runs under (a test's `ip netns exec NAME`)."""

    def __init__(
        self, folder: Path, node_id: str, settings: dict[str, Any], runs_in: tuple[str, ...] = ()
    ) -> None:
        self.node_id = node_id
        self.port = int(settings["server"]["port"])
        self.host = str(settings["server"].get("host", "127.0.0.1"))
        self.url = f"http://{self.host}:{self.port}"
        self.config = folder / f"{node_id}.toml"
        self.config.write_text(to_toml(settings))
        self.log = folder / f"{node_id}.log"
        self.runs_in = runs_in
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, wait: bool = True) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.runs_in,
                    sys.executable,
                    "-m",
                    "gateway",
                    "--config",
                    str(self.config),
                    *args,
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            _wait(self.answers, f"gateway node {self.node_id}")

    def answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"gateway node {self.node_id} exited with {self.proc.returncode}:\n"
                + self.log.read_text(errors="replace")[-3000:]
            )
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the node dies at once, leaving its sessions open."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        _stop(self.proc)


def node_settings(
    base: dict[str, Any], node_id: str, port: int, database: str, **tables: dict[str, Any]
) -> dict[str, Any]:
    """`base` settings for one node: its id, port and the shared database; HAProxy on
    this host is a trusted proxy. `tables` are merged over the result."""
    settings = json.loads(json.dumps(base))  # a deep copy of plain data
    settings.setdefault("server", {}).update(
        {"host": "127.0.0.1", "port": port, "trusted_proxies": ["127.0.0.1/32"]}
    )
    settings["storage"] = {"database": database}
    settings["cluster"] = {"node_id": node_id}
    for name, values in tables.items():
        settings.setdefault(name, {}).update(values)
    return settings


def to_toml(data: Mapping[str, Any]) -> str:
    """Settings as TOML: tables of plain values, and arrays of tables."""
    lines: list[str] = []
    for name, value in data.items():
        if isinstance(value, Mapping):
            lines += [f"[{name}]", *_values(value), ""]
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            for item in value:
                lines += [f"[[{name}]]", *_values(item), ""]
    return "\n".join(lines)


def _values(table: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in table.items():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            continue  # arrays of tables under a table: not needed here
        lines.append(f"{key} = {_toml_value(value)}")
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _parent_of(stat: Path) -> int | None:
    try:
        # "pid (name) state ppid ...": the name may hold spaces, not ")".
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(8)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    """`make cluster-demo`: PostgreSQL, two nodes on the demo cameras, HAProxy; links."""
    from gateway.access.tokens import mint
    from gateway.config import load_settings
    from gateway.demo import DEMO_ADMIN, DEMO_HOURS, DEMO_VIEWER

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # `kill` cleans up as Ctrl-C does
    example = ROOT / "config.example.toml"
    base = tomllib.loads(example.read_text())
    folder = Path(tempfile.mkdtemp(prefix="cctv-cluster-"))
    postgres = Postgres(folder)
    nodes: list[Node] = []
    balancer: Balancer | None = None
    try:
        print(f"PostgreSQL 15 in {folder} on 127.0.0.1:{postgres.port}", flush=True)
        postgres.start()
        database = postgres.create_database("cctv")
        for number, port in ((1, 8081), (2, 8082)):
            node = Node(folder, f"gw{number}", node_settings(base, f"gw{number}", port, database))
            # The first node makes the demo grant; the second finds it in the database.
            node.start(*(["--demo"] if number == 1 else []))
            nodes.append(node)
            print(f"node {node.node_id} on {node.url} (log: {node.log})", flush=True)
        balancer = Balancer(folder, {n.node_id: n.port for n in nodes}, port=8000)
        balancer.start()
        auth = load_settings(nodes[0].config).auth
        ttl = DEMO_HOURS * 3600
        viewer = mint(auth, DEMO_VIEWER, ttl_seconds=ttl)
        admin = mint(auth, DEMO_ADMIN, is_admin=True, ttl_seconds=ttl)
        print(f"HAProxy on {balancer.url} (deploy/haproxy.cfg)", flush=True)
        print(f"Demo viewer ({DEMO_VIEWER}): {balancer.url}/#token={viewer}", flush=True)
        print(f"Demo admin  ({DEMO_ADMIN}):  {balancer.url}/admin#token={admin}", flush=True)
        print("Ctrl-C stops the cluster and removes its folder.", flush=True)
        while all(n.proc is not None and n.proc.poll() is None for n in nodes):
            time.sleep(0.5)
        print("a node stopped; see its log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if balancer is not None:
            balancer.stop()
        for node in nodes:
            node.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
