"""Volumetric DoS as seen at the victim: UDP, ACK, RST and ICMP floods at several rates
(steady, pulsing on/off, low-rate) from one source or forged ones, and TCP SYN-ACK
reflection, some one-way (only the victim's inbound side); the labels, rate patterns and
packet helpers that ``synflood`` (SYN floods) and ``amplification`` (UDP reflection) share.
Packets are built as arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from flowsentinel.datasets.lab.base import SPAN_S, T0, Lab
from flowsentinel.datasets.lab.stacks import STACKS, syn_options
from flowsentinel.datasets.lab.wire import (
    ACK,
    ICMP,
    MORE_FRAGMENTS,
    PSH,
    RST,
    SYN,
    TCP,
    UDP,
)
from flowsentinel.datasets.lab.world import ATTACKER, World

SYNFLOOD = "DoS SYN flood"
UDPFLOOD = "DoS UDP flood"
ACKFLOOD = "DoS ACK flood"
RSTFLOOD = "DoS RST flood"
ICMPFLOOD = "DoS ICMP flood"
REFLECTION = "DoS UDP reflection"
SYNACK_REFLECTION = "DoS SYN-ACK reflection"


def times(
    rng: np.random.Generator, n: int, start_s: float, dur_s: float, pattern: str
) -> np.ndarray:
    """``n`` sorted packet times: steady (uniform), pulsing (bursts of 2-8 s every 10-40 s)
    or low-rate (Poisson over the whole duration, the same draw)."""
    t = rng.uniform(0, dur_s, n)
    if pattern == "pulsing":
        on, period = rng.uniform(2, 8), rng.uniform(10, 40)
        t = np.floor(t / on) * period + (t % on)
        t = t * dur_s / max(float(t.max()), 1e-9)
    return T0 + ((start_s + np.sort(t)) * 1_000_000).astype(np.int64)


def _hosts(lab: Lab, ips: Sequence[str]) -> np.ndarray:
    """The host indices of a list of addresses."""
    return np.array([lab.pk.host(ip) for ip in ips], np.int64)


def _sources(lab: Lab, n: int, spoofed: bool, single: str) -> tuple[list[str], np.ndarray]:
    """Source addresses and TTLs of ``n`` packets: forged (any TTL) or one attacker."""
    ips = [lab.spoofed_ip() for _ in range(n)] if spoofed else [single] * n
    ttl = lab.rng.integers(30, 250, n) if spoofed else np.full(n, 64 - int(lab.rng.integers(3, 12)))
    return ips, ttl


def _register(
    lab: Lab,
    src: list[str],
    sport: np.ndarray,
    dst: str,
    dport: np.ndarray,
    proto: int,
    t: np.ndarray,
    label: str,
    kind: str,
) -> np.ndarray:
    """Register each distinct 5-tuple once (a session), at its first packet; the packets of a
    tuple that belongs to another label are left out. Returns the kept packets."""
    group = (
        pd.DataFrame({"ip": src, "sp": sport, "dp": dport})
        .groupby(["ip", "sp", "dp"], sort=False)
        .ngroup()
        .to_numpy()
    )
    first = np.unique(group, return_index=True)[1]
    ok = np.array(
        [
            lab.session(src[k], int(sport[k]), dst, int(dport[k]), proto, int(t[k]), label, kind)
            for k in first.tolist()
        ],
        bool,
    )
    return ok[group]


def _ports(rng: np.random.Generator, n: int, mode: str, fixed: int) -> np.ndarray:
    """``n`` ports: one fixed port, a small pool reused by the tool, or random."""
    if mode == "fixed":
        return np.full(n, fixed, np.int64)
    if mode == "pool":
        return rng.choice(rng.integers(1024, 65535, int(rng.integers(4, 24))), n)
    return rng.integers(1024, 65535, n)


def udp_flood(lab: Lab, w: World, n: int) -> None:
    """UDP floods: one source to random or fixed ports, forged sources, payloads from empty
    to full-size, fragmented large datagrams, pulsing; ICMP port unreachable answers (rate
    limited) for closed ports."""
    rng = lab.rng
    plans = (  # kind, share, spoofed, sport mode, dport mode, size, pattern, fragmented
        ("udp-single-randport", 0.25, False, "pool", "pool", 512, "steady", False),
        ("udp-single-fixedport", 0.1, False, "fixed", "fixed", 1400, "steady", False),
        ("udp-single-small", 0.1, False, "pool", "fixed", 0, "steady", False),
        ("udp-spoofed", 0.25, True, "random", "fixed", 64, "steady", False),
        ("udp-fragmented", 0.15, False, "pool", "pool", 4000, "steady", True),
        ("udp-pulsing", 0.15, False, "pool", "fixed", 1024, "pulsing", False),
    )
    for kind, share, spoofed, smode, dmode, size, pattern, frag in plans:
        m = max(2, round(n * share))
        dur = rng.uniform(1, 10) if pattern == "steady" else rng.uniform(60, 200)
        t = times(rng, m, rng.uniform(0, SPAN_S - dur), dur, pattern)
        single = ATTACKER if rng.random() < 0.5 else lab.public_ip()
        src, ttl = _sources(lab, m, spoofed, single)
        sport = _ports(rng, m, smode, int(rng.integers(1024, 65535)))
        if spoofed:  # each forged source sends a few datagrams from one port
            pick = rng.integers(0, max(1, m // 4), m)
            src, ttl, sport = [src[i] for i in pick.tolist()], ttl[pick], sport[pick]
        dport = _ports(rng, m, dmode, int(rng.choice([53, 80, 123, 161, 443, 3478])))
        keep = _register(lab, src, sport, w.servers["web"].ip, dport, UDP, t, UDPFLOOD, kind)
        src = [s for s, k in zip(src, keep.tolist(), strict=True) if k]
        sizes = (
            np.full(int(keep.sum()), size)
            if size < 1000
            else rng.integers(size // 2, size * 2, int(keep.sum()))
        )
        if not frag:  # one frame each: at most 1,472 bytes of UDP payload on Ethernet
            sizes = np.minimum(sizes, 1472)
        _udp_packets(
            lab,
            _hosts(lab, src),
            w.servers["web"].hid,
            t[keep],
            sport[keep],
            dport[keep],
            sizes,
            ttl[keep],
            frag,
        )
    _unreachables(lab, w, n // 20)


def _udp_packets(
    lab: Lab,
    src: np.ndarray,
    dst: int | np.ndarray,
    t: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    sizes: np.ndarray,
    ttl: np.ndarray | int,
    fragment: bool,
) -> None:
    """UDP datagrams; with ``fragment``, those above 1472 bytes go as IPv4 fragments of 1480
    bytes (the first one carries the UDP header and the datagram's full UDP length)."""
    n = len(t)
    big = (sizes > 1472) if fragment else np.zeros(n, bool)
    ipid = lab.rng.integers(0, 65536, n)
    ttl_a = np.broadcast_to(np.asarray(ttl), (n,))
    dst_a = np.broadcast_to(np.asarray(dst), (n,))
    lab.pk.block(
        n,
        ts=t,
        src=src,
        dst=dst_a,
        proto=UDP,
        sport=sport,
        dport=dport,
        ttl=ttl_a,
        ipid=ipid,
        frag=np.where(big, MORE_FRAGMENTS, 0),
        seq=np.where(big, 8 + sizes, 0),
        plen=np.where(big, 1472, sizes),
    )
    k = np.flatnonzero(big)
    offset = np.full(len(k), 1480)
    while k.size:
        rest = sizes[k] + 8 - offset
        part = np.minimum(rest, 1480)
        more = rest > 1480
        lab.pk.block(
            len(k),
            ts=t[k] + 2 + offset // 1480,
            src=src[k],
            dst=dst_a[k],
            proto=UDP,
            ttl=ttl_a[k],
            ipid=ipid[k],
            frag=(offset // 8) | np.where(more, MORE_FRAGMENTS, 0),
            plen=part,
        )
        keep = more
        k, offset = k[keep], offset[keep] + 1480


def _unreachables(lab: Lab, w: World, n: int) -> None:
    """The victim's ICMP port unreachable answers to the single-source UDP flood."""
    att = lab.endpoint(ATTACKER, "linux", w.servers["web"].path)
    victim = w.servers["web"]
    if not lab.session(victim.ip, 0, ATTACKER, 0, ICMP, T0, UDPFLOOD, "udp-unreachable"):
        return
    t = T0 + np.sort(lab.rng.integers(0, int(SPAN_S * 1e6), n))
    lab.pk.block(
        n, ts=t, src=victim.hid, dst=att.hid, proto=ICMP, sport=3 << 8 | 3, ttl=64, plen=28
    )


def ack_rst_flood(lab: Lab, w: World, n: int) -> None:
    """ACK floods (bare or with payload, forged sources, the victim answers RST) and RST
    floods (a few RSTs per tuple, no answer)."""
    rng = lab.rng
    victim = w.servers["web"]
    plans = (  # label, kind, share, spoofed, flags, payload, per tuple
        (ACKFLOOD, "ack-spoofed", 0.3, True, ACK, 0, 1),
        (ACKFLOOD, "ack-psh-single", 0.25, False, ACK | PSH, 700, 6),
        (RSTFLOOD, "rst-spoofed", 0.25, True, RST, 0, 3),
        (RSTFLOOD, "rst-single", 0.2, False, RST | ACK, 0, 8),
    )
    for label, kind, share, spoofed, flags, payload, per in plans:
        m = max(2, round(n * share))
        dur = rng.uniform(5, 60)
        t = times(rng, m * per, rng.uniform(0, SPAN_S - dur), dur, "steady")
        src1, ttl1 = _sources(lab, m, spoofed, lab.public_ip())
        tuple_of = rng.integers(0, m, m * per)
        src = [src1[i] for i in tuple_of.tolist()]
        sport = rng.integers(1024, 65535, m)[tuple_of]
        dport = np.full(m * per, 80)
        keep = _register(lab, src, sport, victim.ip, dport, TCP, t, label, kind)
        src = [s for s, k in zip(src, keep.tolist(), strict=True) if k]
        hid, t, sport = _hosts(lab, src), t[keep], sport[keep]
        k = len(t)
        size = rng.integers(0, 2 * payload + 1, k) if payload else 0
        lab.pk.block(
            k,
            ts=t,
            src=hid,
            dst=victim.hid,
            proto=TCP,
            sport=sport,
            dport=80,
            ttl=ttl1[tuple_of][keep],
            seq=rng.integers(0, 2**32, k),
            ack=rng.integers(0, 2**32, k) if flags & ACK else 0,
            flags=flags,
            win=rng.integers(0, 65536, k),
            plen=size,
        )
        if flags & ACK:  # no such connection: the victim resets
            lab.pk.block(
                k,
                ts=t + rng.integers(20, 200, k),
                src=victim.hid,
                dst=hid,
                proto=TCP,
                sport=80,
                dport=sport,
                ttl=64,
                seq=rng.integers(0, 2**32, k),
                flags=RST,
            )


def icmp_flood(lab: Lab, w: World, n: int) -> None:
    """ICMP echo floods: one source (one long flow) and forged sources, small and large
    echoes; the victim replies."""
    rng = lab.rng
    victim = w.servers["web"]
    for kind, spoofed, share in (("icmp-single", False, 0.4), ("icmp-spoofed", True, 0.6)):
        m = max(2, round(n * share))
        dur = rng.uniform(2, 30)
        t = times(rng, m, rng.uniform(0, SPAN_S - dur), dur, "steady")
        src, ttl = _sources(lab, m, spoofed, lab.public_ip())
        zeros = np.zeros(m, np.int64)
        keep = _register(lab, src, zeros, victim.ip, zeros, ICMP, t, ICMPFLOOD, kind)
        src = [s for s, k in zip(src, keep.tolist(), strict=True) if k]
        hid, t = _hosts(lab, src), t[keep]
        k = len(t)
        size = rng.choice([8, 56, 1000, 1472], k)
        seq = rng.integers(0, 2**32, k)
        lab.pk.block(
            k,
            ts=t,
            src=hid,
            dst=victim.hid,
            proto=ICMP,
            sport=8 << 8,
            ttl=ttl[keep],
            seq=seq,
            plen=size,
        )
        lab.pk.block(
            k,
            ts=t + rng.integers(10, 100, k),
            src=victim.hid,
            dst=hid,
            proto=ICMP,
            sport=0,
            ttl=64,
            seq=seq,
            plen=size,
        )


def synack_reflection(lab: Lab, w: World, n: int) -> None:
    """TCP SYN-ACK reflection: servers answer forged SYNs, so the victim receives SYN-ACKs
    (retransmitted 1, 3 and 7 s later) from their ports 80, 443, 22; the victim resets some,
    the rest is one-way."""
    rng = lab.rng
    victim = w.servers["web"]
    refl = [lab.public_ip() for _ in range(int(rng.integers(30, 120)))]
    dur = rng.uniform(20, 90)
    t = times(rng, n, rng.uniform(0, SPAN_S - dur), dur, "steady")
    src = [refl[i] for i in rng.integers(0, len(refl), n).tolist()]
    sport = rng.choice([80, 443, 443, 22, 25], n)
    vport = rng.integers(1024, 65535, n)
    keep = _register(lab, src, sport, victim.ip, vport, TCP, t, SYNACK_REFLECTION, "synack-refl")
    src = [s for s, k in zip(src, keep.tolist(), strict=True) if k]
    hid, t, sport, vport = _hosts(lab, src), t[keep], sport[keep], vport[keep]
    m = len(t)
    seq, ack = rng.integers(0, 2**32, m), rng.integers(0, 2**32, m)
    ttl = rng.integers(40, 120, m)
    opt = lab.pk.option(*syn_options(STACKS["linux"], 1460, STACKS["linux"]))
    for k, back in enumerate((0, 1_000_000, 3_000_000, 7_000_000)):
        sent = np.flatnonzero(rng.random(m) < (1.0, 0.8, 0.6, 0.4)[k])
        lab.pk.block(
            len(sent),
            ts=t[sent] + back,
            src=hid[sent],
            dst=victim.hid,
            proto=TCP,
            sport=sport[sent],
            dport=vport[sent],
            ttl=ttl[sent],
            seq=seq[sent],
            ack=ack[sent],
            flags=SYN | ACK,
            win=64240,
            opt=opt,
        )
    rst = np.flatnonzero(rng.random(m) < 0.3)
    lab.pk.block(
        len(rst),
        ts=t[rst] + rng.integers(20, 200, len(rst)),
        src=victim.hid,
        dst=hid[rst],
        proto=TCP,
        sport=vport[rst],
        dport=sport[rst],
        ttl=64,
        seq=ack[rst],
        flags=RST,
    )
