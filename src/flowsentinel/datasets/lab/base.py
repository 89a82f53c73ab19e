"""The lab being built: its random generator, packets, hosts, ports and labelled sessions."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np

from flowsentinel.datasets.lab.stacks import STACKS, NetPath, Stack, draw_path, draw_stack
from flowsentinel.datasets.lab.wire import ICMP, ICMP6, UDP, Packets

T_BASE = 1_499_245_200  # 2017-07-05 09:00:00 UTC (a Wednesday, like CIC-IDS2017's DoS day)
T0 = T_BASE * 1_000_000
SPAN_S = 900.0  # the capture's length


@dataclass
class Session:
    """One crafted conversation: the 5-tuple of its first packet, start, label and kind."""

    src: str
    sport: int
    dst: str
    dport: int
    proto: int
    start_us: int
    label: str
    kind: str


@dataclass
class Endpoint:
    """A host as the lab uses it: address, stack and its path to the capture point."""

    ip: str
    stack: Stack
    path: NetPath
    hid: int = -1

    @property
    def ttl(self) -> int:
        """The TTL seen at the capture point: the stack's initial TTL minus the path's hops."""
        return max(1, self.stack.ttl - self.path.hops)


def endpoint_key(a: str, ap: int, b: str, bp: int, proto: int) -> tuple[str, int, str, int, int]:
    """A 5-tuple without direction (the smaller endpoint first)."""
    x, y = (a, ap), (b, bp)
    lo, hi = min(x, y), max(x, y)
    return (lo[0], lo[1], hi[0], hi[1], proto)


@dataclass
class Lab:
    """Everything a generator needs: ``rng``, ``pk`` and the sessions registered so far."""

    rng: np.random.Generator
    pk: Packets = field(default_factory=Packets)
    sessions: list[Session] = field(default_factory=list)
    keys: dict[tuple[str, int, str, int, int], str] = field(default_factory=dict)
    _ports: set[tuple[str, int]] = field(default_factory=set)
    _public: set[str] = field(default_factory=set)

    def endpoint(self, ip: str, stack: Stack | str, path: NetPath) -> Endpoint:
        """An endpoint with a given stack and path (its address is added to the capture)."""
        st = STACKS[stack] if isinstance(stack, str) else stack
        return Endpoint(ip, st, path, self.pk.host(ip))

    def client(self, ip: str, *, local: bool, stack: Stack | None = None) -> Endpoint:
        """A client with a drawn (or given) stack and path."""
        st = stack or draw_stack(self.rng)
        return self.endpoint(ip, st, draw_path(self.rng, local=local))

    def public_ip(self, v6: bool = False) -> str:
        """A fresh routable-looking address outside the lab's own networks."""
        while True:
            if v6:
                words = self.rng.integers(0, 65536, 6)
                ip = str(ipaddress.IPv6Address(f"2001:db8:{':'.join(f'{w:x}' for w in words)}"))
            else:
                first = int(self.rng.choice([23, 31, 45, 62, 77, 89, 103, 118, 151, 185, 203, 212]))
                rest = self.rng.integers(0, 256, 3)
                ip = f"{first}.{rest[0]}.{rest[1]}.{max(1, int(rest[2]) % 255)}"
            if ip not in self._public:
                self._public.add(ip)
                return ip

    def spoofed_ip(self) -> str:
        """Any unicast IPv4 address (a flood's forged source); may repeat."""
        a = self.rng.integers(1, 224)
        while a in (10, 127, 172, 192):
            a = self.rng.integers(1, 224)
        b, c, d = self.rng.integers(0, 256, 3)
        return f"{a}.{b}.{c}.{max(1, int(d))}"

    def port(self, host: str, low: int = 32768, high: int = 60999) -> int:
        """A port of ``host`` not used by any other session."""
        while True:
            p = int(self.rng.integers(low, high))
            if (host, p) not in self._ports:
                self._ports.add((host, p))
                return p

    def session(
        self, src: str, sport: int, dst: str, dport: int, proto: int, t: int, label: str, kind: str
    ) -> bool:
        """Register a session; False when its 5-tuple already belongs to another label (the
        caller then draws another tuple), so every flow's label is unambiguous."""
        key = endpoint_key(src, sport, dst, dport, proto)
        have = self.keys.get(key)
        if have is not None and have != label:
            return False
        self.keys[key] = label
        self.sessions.append(Session(src, sport, dst, dport, proto, t, label, kind))
        return True

    def start(self, lo: float = 0.0, hi: float = SPAN_S) -> int:
        """A start time (µs) drawn uniformly in [lo, hi) seconds of the capture."""
        return T0 + int(self.rng.uniform(lo, hi) * 1_000_000)

    def udp(
        self,
        t: int,
        a: Endpoint,
        b: Endpoint,
        ap: int,
        bp: int,
        plen: int,
        head: int = 0,
        ttl: int | None = None,
        tos: int = 0,
    ) -> None:
        """One UDP datagram from ``a`` to ``b``."""
        self.pk.row(
            t, a.hid, b.hid, UDP, ap, bp, ttl or a.ttl, tos, -1, 0, 0, 0, 0, 0, 0, 0, 0, plen, head
        )

    def icmp(
        self,
        t: int,
        a: Endpoint,
        b: Endpoint,
        typ: int,
        code: int,
        ident: int,
        seq: int,
        plen: int,
        head: int = 0,
        ttl: int | None = None,
    ) -> None:
        """One ICMP (ICMPv6 between IPv6 hosts) message."""
        proto = ICMP6 if ":" in a.ip else ICMP
        self.pk.row(
            t,
            a.hid,
            b.hid,
            proto,
            (typ << 8) | code,
            0,
            ttl or a.ttl,
            0,
            -1,
            0,
            ((ident & 0xFFFF) << 16) | (seq & 0xFFFF),
            0,
            0,
            0,
            0,
            0,
            0,
            plen,
            head,
        )


def us(seconds: float) -> int:
    """Seconds as integer microseconds."""
    return round(seconds * 1_000_000)
