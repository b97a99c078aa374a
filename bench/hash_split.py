"""How HAProxy's consistent hash (deploy/haproxy.cfg, `backend cameras`) splits camera
ids between two nodes, for several equal server weights.

`.venv/bin/python bench/hash_split.py [--weights 1,10,100,256] [--counts 20,40,1000]`

It runs Debian's haproxy on a copy of deploy/haproxy.cfg in which every `server` line
of `backend cameras` gets `weight W`, in front of two stand-in nodes (aiohttp on
loopback that answer the health checks and name themselves), POSTs /whep/many-NN for
the bench's camera ids (bench/stage.py's naming) and counts which node answered.
HAProxy puts weight x 16 points per server on its ring, so a larger equal weight
means more points, not a different share in expectation.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "haproxy.cfg"
NODES = ("gw1", "gw2")


def camera_ids(n: int) -> list[str]:
    """The bench's camera ids (stage.many_ids and its capacity ramp's)."""
    return [f"many-{i:02d}" for i in range(n)]


def weighted_config(text: str, weight: int | None) -> str:
    """deploy/haproxy.cfg with `weight W` on each `server` of `backend cameras`
    (any weight already there replaced); None leaves the file as it is."""
    if weight is None:
        return text
    head, _, rest = text.partition("\nbackend cameras")
    block, sep, tail = rest.partition("\nbackend ")

    def server(match: re.Match[str]) -> str:
        line = re.sub(r"\s+weight\s+\d+", "", match.group(0))
        return f"{line} weight {weight}"

    block = re.sub(r"^\s*server\s.*$", server, block, flags=re.M)
    return head + "\nbackend cameras" + block + sep + tail


async def _stand_in(name: str) -> tuple[web.AppRunner, int]:
    async def any_request(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"X-Node": name})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_request)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


async def owners(weight: int | None, ids: list[str]) -> dict[str, str]:
    """The node HAProxy sends each of `ids` to, with that weight."""
    runners, env = [], {}
    for name in NODES:
        runner, port = await _stand_in(name)
        runners.append(runner)
        env[f"CCTV_{name.upper()}"] = f"127.0.0.1:{port}"
    with socket_port() as listen:
        env["CCTV_LISTEN"] = f"127.0.0.1:{listen}"
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(weighted_config(CONFIG.read_text(), weight))
    proc = subprocess.Popen(
        ["haproxy", "-db", "-f", f.name],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    owner: dict[str, str] = {}
    try:
        url = f"http://127.0.0.1:{listen}"
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            # Both servers up: rise 2 at 1 s intervals. Until then one may be missing.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                seen = set()
                for cid in camera_ids(40):
                    try:
                        async with http.post(f"{url}/whep/{cid}") as reply:
                            seen.add(reply.headers.get("X-Node"))
                    except aiohttp.ClientError:
                        break
                if seen >= set(NODES):
                    break
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError("haproxy did not send to both nodes within 15 s")
            await asyncio.sleep(1.0)
            for cid in ids:
                async with http.post(f"{url}/whep/{cid}") as reply:
                    owner[cid] = reply.headers["X-Node"]
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        Path(f.name).unlink(missing_ok=True)
        for runner in runners:
            await runner.cleanup()
    return owner


def counts(owner: dict[str, str], ids: list[str]) -> dict[str, int]:
    """How many of `ids` each node owns."""
    got = dict.fromkeys(NODES, 0)
    for cid in ids:
        got[owner[cid]] += 1
    return got


class socket_port:
    """A free loopback port (closed again when the block ends)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


async def amain() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", default="shipped,1,10,50,100,256")
    parser.add_argument("--counts", default="10,20,30,40,100,1000")
    args = parser.parse_args()
    sizes = [int(c) for c in args.counts.split(",")]
    print("| weight | " + " | ".join(f"{c} ids: gw1 / gw2" for c in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for w in args.weights.split(","):
        weight = None if w == "shipped" else int(w)
        # The first n ids are the bench's n cameras: one pass counts every prefix.
        owner = await owners(weight, camera_ids(max(sizes)))
        cells = [counts(owner, camera_ids(c)) for c in sizes]
        print(f"| {w} | " + " | ".join(f"{c['gw1']} / {c['gw2']}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(amain()))
