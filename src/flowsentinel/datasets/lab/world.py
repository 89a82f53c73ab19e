"""The lab's network: servers next to the capture point, LAN clients (some dual-stack),
remote clients on drawn paths, and clients behind NAT sharing one public address."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowsentinel.datasets.lab.base import Endpoint, Lab
from flowsentinel.datasets.lab.stacks import STACKS, draw_path, draw_stack

WEB = "192.168.10.50"
WEB6 = "fd00:10::50"
DNS = "192.168.10.3"
ATTACKER = "172.16.0.1"

_SERVERS = {  # name: (address, stack)
    "web": (WEB, "linux"),
    "web6": (WEB6, "linux"),
    "dns": (DNS, "linux"),
    "ntp": ("192.168.10.4", "linux"),
    "gw": ("192.168.10.1", "netdev"),
    "mail": ("192.168.10.25", "linux"),
    "db": ("192.168.10.60", "linux"),
    "smb": ("192.168.10.40", "windows"),
    "rdp": ("192.168.10.41", "windows"),
    "mqtt": ("192.168.10.70", "linux"),
    "coap": ("192.168.10.71", "iot"),
    "app": ("192.168.10.55", "linux"),
}


@dataclass
class World:
    """Who talks: servers by name, LAN clients, IPv6 LAN clients, NAT gateways."""

    lab: Lab
    servers: dict[str, Endpoint] = field(default_factory=dict)
    lan: list[Endpoint] = field(default_factory=list)
    lan6: list[Endpoint] = field(default_factory=list)
    nat: list[list[Endpoint]] = field(default_factory=list)

    @classmethod
    def make(cls, lab: Lab, n_lan: int = 48, n_nat: int = 10) -> World:
        """Servers, ``n_lan`` LAN clients (a quarter dual-stack) and ``n_nat`` NAT gateways."""
        w = cls(lab)
        for name, (ip, stack) in _SERVERS.items():
            w.servers[name] = lab.endpoint(ip, stack, draw_path(lab.rng, local=True))
        for k in range(n_lan):
            c = lab.client(f"192.168.10.{100 + k}", local=True)
            w.lan.append(c)
            if k % 4 == 0:
                w.lan6.append(lab.endpoint(f"fd00:10::{100 + k:x}", c.stack, c.path))
        for _ in range(n_nat):
            ip = lab.public_ip()
            path = draw_path(lab.rng)
            inner = int(lab.rng.integers(2, 7))
            w.nat.append([lab.endpoint(ip, draw_stack(lab.rng), path) for _ in range(inner)])
        return w

    def lan_client(self, v6_share: float = 0.0) -> Endpoint:
        """A LAN client; with ``v6_share`` an IPv6 address of a dual-stack one."""
        rng = self.lab.rng
        pool = self.lan6 if rng.random() < v6_share else self.lan
        return pool[int(rng.integers(len(pool)))]

    def remote_client(self, v6_share: float = 0.1, nat_share: float = 0.25) -> Endpoint:
        """An internet client: behind a shared NAT address, a fresh IPv4 or IPv6 host."""
        rng = self.lab.rng
        r = rng.random()
        if r < nat_share:
            g = self.nat[int(rng.integers(len(self.nat)))]
            return g[int(rng.integers(len(g)))]
        return self.lab.client(self.lab.public_ip(v6=r > 1 - v6_share), local=False)

    def any_client(self, local_share: float = 0.4, v6: bool = True) -> Endpoint:
        """A LAN or internet client; ``v6`` False for services reachable over IPv4 only."""
        if self.lab.rng.random() < local_share:
            return self.lan_client(0.15 if v6 else 0.0)
        return self.remote_client(0.1 if v6 else 0.0)

    def internet_server(self, v6: bool = False, stack: str = "linux") -> Endpoint:
        """A server out on the internet (CDN, mail relay, NTP pool) on a drawn path."""
        return self.lab.endpoint(self.lab.public_ip(v6=v6), STACKS[stack], draw_path(self.lab.rng))
