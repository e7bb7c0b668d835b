"""A small network of network namespaces built by a test, so that it can cut one host off.

For the partition test of the RabbitMQ cluster (issue 17). The machine has no iptables and no
nft, but a root test may create network namespaces, veth pairs and a bridge: each RabbitMQ
node gets a namespace of its own, with its own loopback and its own ports, joined to the host
by a veth pair whose host end is a port of a bridge that the network creates in the host's
namespace. The bridge carries the traffic between the nodes (namespace to namespace, switched
at layer 2, so the host's ``ip_forward`` stays as it is) and between the host's processes and
the nodes (the host has the bridge's first address).

The addresses are a /28 chosen at random in 10.0.0.0/8 that no address or route of the host
overlaps: the host has ``.1``, the namespace of member ``i`` has ``.(i + 2)``. Every name
(bridge, namespaces, veths) starts with ``dfp`` and a random run id, so that two runs cannot
meet. ``cut(i)`` sets the host end of member ``i``'s veth down: its bridge port stops
forwarding, and nothing it sends or is sent arrives any more, in both directions, with no
reset of its connections (as a pulled cable, not a refused port). ``restore(i)`` sets it up
again. ``remove()`` deletes the namespaces (their veths go with them) and the bridge.

Each namespace needs an epmd of its own (Erlang's port mapper, port 4369 on every address of
the namespace): the network starts one in each, as a child of the test (``ip netns exec``
executes it in place, so the pid is epmd's), and stops it by that pid.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field

EPMD_PORT = 4369
PREFIX_LENGTH = 28  # 14 hosts: the host and up to 13 members


def ip(*arguments: str) -> str:
    """Run ``ip ...`` and return its output; a failure raises with ip's message."""
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(arguments)} failed: {done.stderr.strip()}")
    return done.stdout


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    used: list[ipaddress.IPv4Network] = []
    for link in json.loads(ip("-j", "-4", "addr", "show") or "[]"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        destination = route.get("dst", "")
        if destination and destination != "default":
            used.append(ipaddress.IPv4Network(destination, strict=False))
    return used


def unused_subnet() -> ipaddress.IPv4Network:
    """A random /28 in 10.0.0.0/8 that overlaps no address or route of the host."""
    used = _networks_in_use()
    for _ in range(100):
        candidate = ipaddress.IPv4Network(
            f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(16) * 16}"
            f"/{PREFIX_LENGTH}"
        )
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError("no unused /28 in 10.0.0.0/8")


@dataclass
class Member:
    """One namespace of the network: its name, address, veth ends and epmd."""

    index: int
    namespace: str
    host_veth: str
    address: str
    epmd: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def exec_prefix(self) -> list[str]:
        """The command prefix that runs a program inside this namespace."""
        return ["ip", "netns", "exec", self.namespace]


class NamespaceNetwork:
    """A bridge on the host and namespaces joined to it (see the module's docstring)."""

    def __init__(self) -> None:
        self.run = f"dfp{secrets.token_hex(3)}"
        self.subnet = unused_subnet()
        hosts = list(self.subnet.hosts())
        self.host_address = str(hosts[0])
        self._free_addresses = [str(address) for address in hosts[1:]]
        self.bridge = f"{self.run}br"
        self.members: list[Member] = []
        ip("link", "add", self.bridge, "type", "bridge")
        try:
            ip("addr", "add", f"{self.host_address}/{PREFIX_LENGTH}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except RuntimeError:
            self.remove()
            raise

    def add(self) -> Member:
        """A new namespace on the bridge, with its address and a running epmd."""
        index = len(self.members)
        member = Member(
            index=index,
            namespace=f"{self.run}n{index}",
            host_veth=f"{self.run}h{index}",
            address=self._free_addresses[index],
        )
        inner = f"{self.run}p{index}"
        self.members.append(member)
        ip("netns", "add", member.namespace)
        ip("link", "add", member.host_veth, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", member.namespace)
        ip("link", "set", member.host_veth, "master", self.bridge)
        ip("link", "set", member.host_veth, "up")
        inside = ("-n", member.namespace)
        ip(*inside, "addr", "add", f"{member.address}/{PREFIX_LENGTH}", "dev", inner)
        ip(*inside, "link", "set", inner, "up")
        ip(*inside, "link", "set", "lo", "up")
        member.epmd = subprocess.Popen(
            [*member.exec_prefix(), "epmd"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_listening(member.address, EPMD_PORT)
        return member

    def cut(self, index: int) -> None:
        """Cut member ``index`` off from the host and every other member."""
        ip("link", "set", self.members[index].host_veth, "down")

    def restore(self, index: int) -> None:
        """Join member ``index`` to the bridge again."""
        ip("link", "set", self.members[index].host_veth, "up")

    def remove(self) -> None:
        """Stop the epmds and delete the namespaces, their veths and the bridge."""
        for member in self.members:
            if member.epmd is not None and member.epmd.poll() is None:
                member.epmd.kill()
                member.epmd.wait()
            subprocess.run(
                ["ip", "netns", "delete", member.namespace], capture_output=True, check=False
            )
            subprocess.run(
                ["ip", "link", "delete", member.host_veth], capture_output=True, check=False
            )
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)

    @staticmethod
    def _wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((address, port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
