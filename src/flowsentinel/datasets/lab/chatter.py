"""Benign LAN chatter and diagnostics: DHCP, ICMP echo, traceroute, mDNS and SSDP."""

from __future__ import annotations

import struct

from flowsentinel.datasets.lab.base import Endpoint, Lab, us
from flowsentinel.datasets.lab.benign import BENIGN, lognormal
from flowsentinel.datasets.lab.stacks import STACKS, draw_path
from flowsentinel.datasets.lab.wire import ICMP, ICMP6, MORE_FRAGMENTS, UDP
from flowsentinel.datasets.lab.world import World


def _fixed(lab: Lab, ip: str, stack: str = "linux") -> Endpoint:
    """A fixed address on the LAN (gateway, broadcast, multicast group)."""
    return lab.endpoint(ip, STACKS[stack], draw_path(lab.rng, local=True))


def dhcp(lab: Lab, w: World, n: int) -> None:
    """DHCP: DISCOVER/REQUEST broadcast from 0.0.0.0 and OFFER/ACK broadcast or unicast to the
    offered address (RFC 2131's broadcast bit), unicast renewals, and DHCPv6 (SOLICIT/REQUEST
    to ff02::1:2, ADVERTISE/REPLY back to the client's link-local address)."""
    rng = lab.rng
    gw = w.servers["gw"]
    anyhost, bcast = _fixed(lab, "0.0.0.0"), _fixed(lab, "255.255.255.255")
    for _ in range(n):
        t = lab.start()
        size = int(rng.integers(300, 348))
        r = rng.random()
        if r < 0.2:
            _dhcp6(lab, w, t)
        elif r < 0.6:
            c = w.lan_client()
            to = bcast if rng.random() < 0.5 else c
            lab.session("0.0.0.0", 68, "255.255.255.255", 67, UDP, t, BENIGN, "dhcp")
            lab.session(gw.ip, 67, to.ip, 68, UDP, t, BENIGN, "dhcp")
            for k in range(4):
                a, b, ap, bp = (anyhost, bcast, 68, 67) if k % 2 == 0 else (gw, to, 67, 68)
                lab.udp(t, a, b, ap, bp, size, ttl=64 if k % 2 == 0 else 255)
                t += int(rng.integers(500, 400_000))
        else:
            c = w.lan_client()
            lab.session(c.ip, 68, gw.ip, 67, UDP, t, BENIGN, "dhcp")
            lab.udp(t, c, gw, 68, 67, size)
            lab.udp(t + int(rng.integers(300, 5000)), gw, c, 67, 68, size)


def _dhcp6(lab: Lab, w: World, t: int) -> None:
    """One DHCPv6 exchange between a client's and the router's link-local addresses."""
    rng = lab.rng
    c = w.lan_client()
    client = _fixed(lab, f"fe80::{int(c.ip.rsplit('.', 1)[1]):x}:{rng.integers(1, 65535):x}")
    server = _fixed(lab, "fe80::1", "netdev")
    group = _fixed(lab, "ff02::1:2")
    lab.session(client.ip, 546, group.ip, 547, UDP, t, BENIGN, "dhcp6")
    lab.session(server.ip, 547, client.ip, 546, UDP, t, BENIGN, "dhcp6")
    for k in range(4):
        a, b, ap, bp = (client, group, 546, 547) if k % 2 == 0 else (server, client, 547, 546)
        lab.udp(
            t, a, b, ap, bp, int(rng.integers(60, 110)) + 40 * (k % 2), ttl=1 if k % 2 == 0 else 64
        )
        t += int(rng.integers(500, 1_000_000))


def ping(lab: Lab, w: World, n: int) -> None:
    """ICMP echo: Linux-style 56-byte and Windows-style 32-byte payloads, one per second; some
    path-MTU tests send large echoes (``ping -s``) that go out and come back as IPv4
    fragments."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client(0.2)
        s = (
            w.internet_server(v6=":" in c.ip)
            if rng.random() < 0.6
            else w.servers["web6" if ":" in c.ip else "web"]
        )
        t = lab.start(0, 850)
        proto = ICMP6 if ":" in c.ip else ICMP
        lab.session(c.ip, 0, s.ip, 0, proto, t, BENIGN, "ping")
        req, rep = (128, 129) if proto == ICMP6 else (8, 0)
        size = 32 if c.stack.name == "windows" else 56
        if proto == ICMP and rng.random() < 0.15:
            size = int(rng.choice([1472, 2000, 4000, 8000]))
        ident = int(rng.integers(1, 65535))
        for k in range(int(rng.integers(3, 12))):
            _echo(lab, t, c, s, req, ident, k, size)
            _echo(lab, t + c.path.rtt_us + s.path.rtt_us, s, c, rep, ident, k, size)
            t += us(1.0) + int(rng.integers(0, 3000))


def _echo(
    lab: Lab, t: int, a: Endpoint, b: Endpoint, typ: int, ident: int, seq: int, size: int
) -> None:
    """One echo message; above the MTU, IPv4 fragments of 1,480 bytes (the first one holds
    the ICMP header)."""
    if size <= 1472:
        lab.icmp(t, a, b, typ, 0, ident, seq, size)
        return
    ipid = int(lab.rng.integers(0, 65536))
    total, offset = size + 8, 0
    while offset < total:
        part = min(1480, total - offset)
        more = MORE_FRAGMENTS if offset + part < total else 0
        lab.pk.block(
            1,
            ts=t + offset // 1480 * 12,
            src=a.hid,
            dst=b.hid,
            proto=ICMP,
            sport=(typ << 8) if offset == 0 else 0,
            ttl=a.ttl,
            ipid=ipid,
            frag=(offset // 8) | more,
            seq=((ident & 0xFFFF) << 16) | (seq & 0xFFFF),
            plen=part - 8 if offset == 0 else part,
        )
        offset += part


def traceroute(lab: Lab, w: World, n: int) -> None:
    """Traceroute: UDP probes to ports 33434 and up with growing TTL (Linux) or ICMP echoes
    (Windows); each router on the way answers with time exceeded, the target with port
    unreachable (or an echo reply). The ICMP errors quote the probe's headers."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client()
        s = w.internet_server()
        hops = [w.servers["gw"]] + [
            _fixed(lab, lab.public_ip(), "netdev") for _ in range(int(rng.integers(4, 12)))
        ]
        t = lab.start(0, 850)
        if c.stack.name == "windows" or rng.random() < 0.2:
            _tracert(lab, c, s, hops, t)
            continue
        sport = lab.port(c.ip, 33000, 65000)
        rtt = 300
        for ttl, router in enumerate([*hops, s], start=1):
            rtt += int(rng.integers(500, 15_000))
            last = router is s
            lab.session(router.ip, 0, c.ip, 0, ICMP, t, BENIGN, "traceroute")
            for probe in range(3):
                dport = 33434 + 3 * (ttl - 1) + probe
                lab.session(c.ip, sport, s.ip, dport, UDP, t, BENIGN, "traceroute")
                lab.udp(t, c, s, sport, dport, 32, ttl=ttl)
                quote = struct.pack(
                    "!BBHHHBBH4s4sHHHH",
                    0x45,
                    0,
                    60,
                    0,
                    0,
                    1,
                    UDP,
                    0,
                    bytes(4),
                    bytes(4),
                    sport,
                    dport,
                    40,
                    0,
                )
                lab.icmp(
                    t + rtt,
                    router,
                    c,
                    3 if last else 11,
                    3 if last else 0,
                    0,
                    0,
                    28,
                    lab.pk.head(quote),
                    ttl=router.ttl,
                )
                t += rtt + int(rng.integers(50, 500))


def _tracert(lab: Lab, c: Endpoint, s: Endpoint, hops: list[Endpoint], t: int) -> None:
    """Windows tracert: three ICMP echoes (64 bytes of data) per TTL; each router answers
    time exceeded quoting the echo's headers, the target an echo reply."""
    rng = lab.rng
    ident = int(rng.integers(1, 65535))
    lab.session(c.ip, 0, s.ip, 0, ICMP, t, BENIGN, "traceroute")
    rtt, seq = 300, 0
    for ttl, router in enumerate([*hops, s], start=1):
        rtt += int(rng.integers(500, 15_000))
        last = router is s
        silent = not last and rng.random() < 0.1  # a router that never answers: time-outs
        if not last and not silent:
            lab.session(router.ip, 0, c.ip, 0, ICMP, t, BENIGN, "traceroute")
        for _probe in range(3):
            seq += 1
            lab.icmp(t, c, s, 8, 0, ident, seq, 64, ttl=ttl)
            if silent:
                t += us(4.0)
                continue
            if last:
                lab.icmp(t + rtt, s, c, 0, 0, ident, seq, 64)
            else:
                quote = struct.pack(
                    "!BBHHHBBH4s4sBBHHH",
                    0x45,
                    0,
                    92,
                    0,
                    0,
                    1,
                    ICMP,
                    0,
                    bytes(4),
                    bytes(4),
                    8,
                    0,
                    0,
                    ident,
                    seq,
                )
                lab.icmp(t + rtt, router, c, 11, 0, 0, 0, 28, lab.pk.head(quote), ttl=router.ttl)
            t += rtt + int(rng.integers(50, 500))


def multicast(lab: Lab, w: World, n: int) -> None:
    """mDNS queries and announcements (port 5353 both sides, TTL 255) and SSDP M-SEARCH /
    NOTIFY to 239.255.255.250:1900, repeated a few times."""
    rng = lab.rng
    mdns, ssdp = _fixed(lab, "224.0.0.251"), _fixed(lab, "239.255.255.250")
    for _ in range(n):
        c = w.lan_client()
        t = lab.start(0, 880)
        if rng.random() < 0.5:
            lab.session(c.ip, 5353, mdns.ip, 5353, UDP, t, BENIGN, "mdns")
            for _k in range(int(rng.integers(1, 5))):
                lab.udp(t, c, mdns, 5353, 5353, lognormal(rng, 120, 0.8, 30, 1400), ttl=255)
                t += us(rng.choice([1, 2, 4, 20, 60]))
        else:
            port = lab.port(c.ip, 1024, 65535)
            lab.session(c.ip, port, ssdp.ip, 1900, UDP, t, BENIGN, "ssdp")
            for _k in range(int(rng.integers(2, 5))):
                lab.udp(t, c, ssdp, port, 1900, int(rng.integers(120, 180)), ttl=4)
                t += int(rng.integers(100_000, 3_000_000))
