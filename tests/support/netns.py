"""A second host for tests: a network namespace joined to this one by a veth pair.

A process run in it (`runs_in`) reaches this host only at `host_address`, and is
reached only at `address`. `cut_tcp` cuts every TCP connection across the pair in
both directions, as a failed switch port between that host and the rest would,
while UDP (the viewers' media) still passes, so a viewer can see what the cut-off
host does. This kernel has no netem and no gact `drop` action, so the cut is an
HTB class that lets 8 bits a second into a queue that holds nothing, chosen by a
u32 filter on the IP protocol.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess

# TCP (IP protocol 6) to a class that passes 8 bits a second into a queue of none.
_CUT_TCP = (
    "qdisc add dev {device} root handle 1: htb default 10",
    "class add dev {device} parent 1: classid 1:10 htb rate 10gbit",
    "class add dev {device} parent 1: classid 1:20 htb rate 8bit ceil 8bit",
    "qdisc add dev {device} parent 1:20 pfifo limit 0",
    "filter add dev {device} parent 1: protocol ip prio 1 u32 match ip protocol 6 0xff flowid 1:20",
)


def _run(*command: str, namespace: str | None = None) -> None:
    where = () if namespace is None else ("ip", "netns", "exec", namespace)
    subprocess.run([*where, *command], check=True, capture_output=True, timeout=10)


def _ip(*args: str, namespace: str | None = None) -> None:
    _run("ip", *args, namespace=namespace)


def _tc(*args: str, namespace: str | None = None) -> None:
    _run("tc", *args, namespace=namespace)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.213.0.0/16 that no interface here uses (several test runs at once)."""
    used = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    subnets = list(ipaddress.ip_network("10.213.0.0/16").subnets(new_prefix=30))
    start = os.getpid() % len(subnets)
    for subnet in subnets[start:] + subnets[:start]:
        if f" {subnet[1]}/" not in used:
            return subnet
    raise RuntimeError("no free /30 in 10.213.0.0/16")


class Namespace:
    """`ip netns` NAME, with veth `outside` (here) and `inside` (there)."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.name = f"cctv-test-{tag}"
        self.outside, self.inside = f"cto{tag}", f"cti{tag}"
        subnet = _free_subnet()
        self.host_address, self.address = str(subnet[1]), str(subnet[2])
        self.runs_in = ("ip", "netns", "exec", self.name)
        self._made = False

    def create(self) -> None:
        _ip("netns", "add", self.name)
        self._made = True
        _ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        _ip("link", "set", self.inside, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.outside)
        _ip("link", "set", self.outside, "up")
        _ip("addr", "add", f"{self.address}/30", "dev", self.inside, namespace=self.name)
        _ip("link", "set", self.inside, "up", namespace=self.name)
        _ip("link", "set", "lo", "up", namespace=self.name)

    def cut_tcp(self) -> None:
        """Every TCP segment across the pair is lost from now on, both ways."""
        for device, namespace in ((self.outside, None), (self.inside, self.name)):
            for line in _CUT_TCP:
                _tc(*line.format(device=device).split(), namespace=namespace)

    def heal(self) -> None:
        for device, namespace in ((self.outside, None), (self.inside, self.name)):
            _tc("qdisc", "del", "dev", device, "root", namespace=namespace)

    def run(
        self, *command: str, stdin: str = "", timeout: float = 20
    ) -> subprocess.CompletedProcess[str]:
        """`command` run there."""
        return subprocess.run(
            [*self.runs_in, *command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def destroy(self) -> None:
        if self._made:
            subprocess.run(["ip", "link", "del", self.outside], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
            self._made = False
