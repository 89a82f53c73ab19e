"""UDP reflection/amplification as the victim sees it, over the reflector services of the
literature (Rossow, "Amplification Hell", NDSS 2014; US-CERT TA14-017A and later advisories).

An attacker sends requests with the victim's address forged as their source to many reflectors
(open resolvers, NTP and SNMP agents, SSDP and BACnet devices, ...); each reflector answers the
victim. What reaches the victim, per campaign:

- many reflectors (tens to thousands), of uneven weight (the attacker's list repeats some);
  each keeps its own TTL (its stack's initial TTL minus its hops);
- per request one response or several: NTP ``monlist`` up to 100 packets of 440 bytes, SSDP one
  answer per advertised service, memcached a value split over 1,400-byte datagrams, IKE
  responders and TFTP servers retransmitting their answer with back-off;
- response sizes spread log-normally around the published ones; answers above the MTU (large
  DNSSEC/``ANY`` answers, CLDAP, SNMP ``GetBulk``, WS-Discovery) arrive as IPv4 fragments;
- the forged source port: one port (a game or web port), a small pool, or a new one per request
  (then each response is its own flow, and the meter drops the one-packet ones);
- steady, pulsing or low-rate, for seconds to minutes; most campaigns are one-way.

Packets are built as arrays (:func:`flowsentinel.datasets.lab.floods._udp_packets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowsentinel.datasets.lab.base import SPAN_S, Lab
from flowsentinel.datasets.lab.floods import REFLECTION, _hosts, _register, _udp_packets, times
from flowsentinel.datasets.lab.wire import UDP
from flowsentinel.datasets.lab.world import World


@dataclass(frozen=True)
class Service:
    """One reflector service: what a single request makes it send to the victim."""

    name: str
    port: int
    size: int  # median UDP payload of one response packet (bytes)
    sigma: float  # log-normal spread of the response sizes
    packets: tuple[int, int]  # response packets per request, drawn in [lo, hi]
    gap_us: int  # median gap between the packets of one answer (µs)
    fragmented: float  # share of campaigns whose answers exceed the MTU
    big: int  # median UDP payload of such an oversized answer


#: the reflector services: sizes and packets per request as published (see the module doc)
SERVICES: tuple[Service, ...] = (
    Service("dns", 53, 1200, 0.5, (1, 1), 0, 0.55, 3600),  # ANY / DNSSEC RRSIG answers
    Service("ntp", 123, 440, 0.0, (1, 100), 300, 0.0, 0),  # monlist: 6 entries of 72 bytes
    Service("snmp", 161, 900, 0.6, (1, 1), 0, 0.3, 2600),  # GetBulk
    Service("ssdp", 1900, 300, 0.2, (1, 12), 2000, 0.0, 0),  # one answer per service
    Service("cldap", 389, 1400, 0.3, (1, 1), 0, 0.8, 3000),
    Service("memcached", 11211, 1400, 0.0, (2, 60), 50, 0.0, 0),  # 1,400-byte datagrams
    Service("chargen", 19, 300, 0.7, (1, 1), 0, 0.0, 0),  # 0-512 characters per datagram
    Service("qotd", 17, 180, 0.6, (1, 1), 0, 0.0, 0),
    Service("netbios", 137, 250, 0.4, (1, 1), 0, 0.0, 0),  # NBSTAT
    Service("wsd", 3702, 900, 0.5, (1, 2), 500, 0.2, 2200),
    Service("ike", 500, 300, 0.4, (1, 6), 2_000_000, 0.0, 0),  # the responder retransmits
    Service("bacnet", 47808, 120, 0.8, (1, 3), 800, 0.0, 0),
    Service("portmap", 111, 600, 0.5, (1, 1), 0, 0.0, 0),
    Service("ard", 3283, 1000, 0.1, (1, 1), 0, 0.0, 0),
    Service("ubiquiti", 10001, 200, 0.3, (1, 1), 0, 0.0, 0),
    Service("coap", 5683, 400, 0.7, (1, 4), 1000, 0.0, 0),
    Service("mdns", 5353, 350, 0.6, (1, 3), 1500, 0.0, 0),
    Service("rip", 520, 504, 0.2, (1, 4), 30_000, 0.0, 0),  # 25 routes per datagram
    Service("tftp", 69, 516, 0.01, (1, 5), 3_000_000, 0.0, 0),  # a block, retransmitted
    Service("rdp", 3389, 1260, 0.05, (1, 1), 0, 0.0, 0),  # RDP over UDP (DTLS)
    Service("slp", 427, 600, 0.6, (1, 3), 1000, 0.0, 0),
)
#: how the requests forge the victim's port: one port, a small pool, one per request
_VPORT_MODES = (("fixed", 1.0), ("pool", 1.0), ("random", 1.0))
_PATTERNS = (("steady", 0.55), ("pulsing", 0.25), ("lowrate", 0.2))


def _draw(rng: np.random.Generator, table: tuple[tuple[str, float], ...]) -> str:
    """One name of a (name, share) table."""
    share = np.array([s for _, s in table])
    return table[int(rng.choice(len(table), p=share / share.sum()))][0]


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A value drawn uniformly on a log scale in [lo, hi]."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _victim_ports(rng: np.random.Generator, n: int, mode: str) -> np.ndarray:
    """The forged source port of each of ``n`` requests: one, a pool, or one per request."""
    if mode == "fixed":
        return np.full(
            n, int(rng.choice([80, 443, 3074, 27015, 25565, int(rng.integers(1024, 65535))]))
        )
    if mode == "pool":
        return rng.choice(rng.integers(1024, 65535, int(rng.integers(2, 64))), n)
    return rng.integers(1024, 65535, n)


def _answers(
    rng: np.random.Generator, svc: Service, req_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each request's answer packets: the request index of every packet and its time (a burst
    ``gap_us`` apart, or retransmissions doubling from ``gap_us``)."""
    lo, hi = svc.packets
    k = rng.integers(lo, hi + 1, len(req_t)) if hi > lo else np.full(len(req_t), lo)
    which = np.repeat(np.arange(len(req_t)), k)
    pos = np.arange(len(which)) - np.repeat(np.cumsum(k) - k, k)
    if svc.gap_us >= 1_000_000:  # retransmissions with back-off: 0, g, 3g, 7g, ...
        offset = (2**pos - 1) * svc.gap_us + rng.integers(0, svc.gap_us // 10, len(which))
    else:
        gaps = rng.exponential(max(svc.gap_us, 1), len(which)).astype(np.int64) + 20
        gaps = np.where(pos == 0, 0, gaps)
        offset = np.cumsum(gaps) - np.repeat((np.cumsum(gaps) - gaps)[np.cumsum(k) - k], k)
    return which, req_t[which] + offset


def _sizes(
    rng: np.random.Generator, svc: Service, n_refl: int, reflector: np.ndarray
) -> np.ndarray:
    """The response sizes of a campaign's packets, from the index of each packet's reflector:
    each reflector answers around its own median (resolvers differ in EDNS buffer size and in
    minimal or truncated answers, agents in their data); in a campaign of oversized answers
    most reflectors give one (fragmented on the wire), the others a smaller one."""
    big = rng.random() < svc.fragmented
    own = np.where(big & (rng.random(n_refl) < 0.75), svc.big, svc.size)
    median = own * rng.lognormal(0.0, svc.sigma, n_refl)
    spread = rng.lognormal(0.0, svc.sigma / 3, len(reflector))
    return np.clip(median[reflector] * spread, 8, 65_000 if big else 1472).astype(np.int64)


def _campaign(lab: Lab, w: World, svc: Service, budget: int, ports: str) -> None:
    """One amplification campaign of about ``budget`` response packets over ``svc``, the
    forged victim ports made as ``ports`` says (see :func:`_victim_ports`)."""
    rng = lab.rng
    victim = w.servers[str(rng.choice(["web", "dns", "app", "gw", "mail"]))]
    mean_k = (svc.packets[0] + svc.packets[1]) / 2
    n_req = max(2, round(budget / mean_k))
    n_refl = max(2, min(n_req, round(_loguniform(rng, 5, 3000))))
    pattern = _draw(rng, _PATTERNS)
    dur = {"steady": _loguniform(rng, 2, 120), "pulsing": rng.uniform(60, 300)}.get(
        pattern, rng.uniform(200, 600)
    )
    req_t = times(rng, n_req, rng.uniform(0, SPAN_S - dur), dur, pattern)
    weight = rng.pareto(rng.uniform(0.8, 3.0), n_refl) + 1  # some reflectors used far more
    refl = rng.choice(n_refl, n_req, p=weight / weight.sum())
    vport = _victim_ports(rng, n_req, ports)
    which, t = _answers(rng, svc, req_t)
    ips = [lab.public_ip() for _ in range(n_refl)]
    src = [ips[i] for i in refl[which].tolist()]
    sport = np.full(len(t), svc.port)
    keep = _register(
        lab, src, sport, victim.ip, vport[which], UDP, t, REFLECTION, f"refl-{svc.name}"
    )
    kept = refl[which][keep]
    sizes = _sizes(rng, svc, n_refl, kept)
    hops = rng.integers(4, 26, n_refl)
    ttl = rng.choice([64, 128, 255], n_refl, p=[0.6, 0.15, 0.25]) - hops
    _udp_packets(
        lab,
        _hosts(lab, [s for s, k in zip(src, keep.tolist(), strict=True) if k]),
        victim.hid,
        t[keep],
        sport[keep],
        vport[which][keep],
        sizes,
        ttl[kept],
        True,
    )


def reflection(lab: Lab, w: World, n: int) -> None:
    """About ``n`` response packets of UDP amplification: for every service, a campaign of
    each way of forging the victim's port (so every seed covers them all)."""
    rng = lab.rng
    share = rng.dirichlet(np.full(len(SERVICES), 4.0))
    for svc, part in zip(SERVICES, share, strict=True):
        modes = [m for m, _ in _VPORT_MODES]
        for mode, piece in zip(modes, rng.dirichlet(np.full(len(modes), 3.0)), strict=True):
            _campaign(lab, w, svc, max(4, round(n * part * piece)), mode)
