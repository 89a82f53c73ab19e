"""SYN floods as the tools and botnets of the literature send them, seen at the victim.

Each campaign draws how its packets are made, as flood tools differ (hping3, Mirai and its
descendants, booter "methods"):

- sources: one host, a botnet of real hosts (each with its own stack and path), forged
  addresses (every SYN its own, or a subnet that egress filtering lets through, whose
  addresses repeat), or one IPv6 host;
- source ports: random, one per source (chosen once per bot or thread), incrementing
  (hping3), one fixed port, or a small pool;
- flags: SYN alone, or with ECE+CWR, ECE, PSH or URG set;
- options: none (raw-socket tools), MSS only, a real stack's layout, or Mirai's (MSS, SACK,
  timestamps, window scale); some floods carry a payload in the SYN;
- TTL and window: the tool's constants, random per packet, or the sending host's stack;
- the victim answers (SYN-ACK and its retransmissions, RST for closed ports) or the capture
  holds the inbound side only; steady, pulsing or low-rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from flowsentinel.datasets.lab.base import SPAN_S, Lab
from flowsentinel.datasets.lab.floods import SYNFLOOD, _hosts, _register, times
from flowsentinel.datasets.lab.stacks import STACKS, draw_path, draw_stack, syn_options
from flowsentinel.datasets.lab.wire import ACK, CWR, ECE, PSH, RST, SYN, TCP, URG
from flowsentinel.datasets.lab.world import ATTACKER, World

_FLAGS = (
    (SYN, 0.55),
    (SYN | ECE | CWR, 0.17),
    (SYN | ECE, 0.06),
    (SYN | PSH, 0.1),
    (SYN | URG, 0.06),
    (SYN | PSH | URG, 0.06),
)
_SOURCES = (("single", 0.25), ("botnet", 0.25), ("spoofed", 0.42), ("ipv6", 0.08))
_SPORTS = (
    ("random", 0.35),
    ("per-source", 0.3),
    ("increment", 0.12),
    ("fixed", 0.08),
    ("pool", 0.15),
)
_OPTIONS = (("none", 0.35), ("mss", 0.15), ("stack", 0.3), ("mirai", 0.2))
_PATTERNS = (("steady", 0.6), ("pulsing", 0.22), ("lowrate", 0.18))


@dataclass(frozen=True)
class Plan:
    """How one campaign's SYNs are made (drawn by :func:`_plan`)."""

    sources: str
    sports: str
    flags: int
    options: str
    payload: int  # 0: none; else the largest payload of a SYN
    ttl: str  # "tool" (one initial TTL), "random" or "stack"
    window: str  # "tool" (one value), "random" or "stack"
    answered: bool  # the victim's answers are in the capture
    pattern: str
    fixed_dport: bool

    @property
    def kind(self) -> str:
        """The session kind: sources, then the flags beyond SYN."""
        extra = {
            ECE | CWR: "-ecn-cwr",
            ECE: "-ece",
            PSH: "-psh",
            URG: "-urg",
            PSH | URG: "-psh-urg",
        }
        return (
            f"syn-{self.sources}{extra.get(self.flags & ~SYN, '')}{'-data' if self.payload else ''}"
        )


T = TypeVar("T")


def _draw(rng: np.random.Generator, table: tuple[tuple[T, float], ...]) -> T:
    """One value of a (value, share) table."""
    share = np.array([s for _, s in table])
    return table[int(rng.choice(len(table), p=share / share.sum()))][0]


def _plan(rng: np.random.Generator) -> Plan:
    """A campaign's way of making SYNs, drawn."""
    sources = _draw(rng, _SOURCES)
    real = sources in ("single", "botnet", "ipv6")
    return Plan(
        sources=sources,
        sports=_draw(rng, _SPORTS),
        flags=_draw(rng, _FLAGS),
        options=_draw(rng, _OPTIONS),
        payload=int(rng.choice([1, 32, 512, 1400])) if rng.random() < 0.2 else 0,
        ttl="stack" if real and rng.random() < 0.6 else str(rng.choice(["tool", "tool", "random"])),
        window=str(rng.choice(["tool", "tool", "random", "stack"])),
        answered=rng.random() < 0.35,
        pattern=_draw(rng, _PATTERNS),
        fixed_dport=sources in ("single", "ipv6") or rng.random() < 0.85,
    )


def _source_ips(
    lab: Lab, plan: Plan, n: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per packet: the source address, its stack's initial TTL, its hops to the victim and
    the index of the source."""
    rng = lab.rng
    # forged: the whole address space (every SYN its own address), or the few addresses
    # egress filtering lets through (a subnet of the bot's); bots: each sends several SYNs
    per = 1.0 if rng.random() < 0.3 else float(np.exp(rng.uniform(0, np.log(30))))
    many = max(2, round(n / per))
    if plan.sources == "spoofed":
        pool = [lab.spoofed_ip() for _ in range(many)]
        pick = rng.integers(0, len(pool), n)
        return (
            [pool[i] for i in pick.tolist()],
            np.full(n, 64),
            np.full(n, int(rng.integers(5, 20))),
            pick,
        )
    if plan.sources == "botnet":
        bots = [(lab.public_ip(), draw_stack(rng), draw_path(rng)) for _ in range(min(many, 300))]
    elif plan.sources == "ipv6":
        bots = [(lab.public_ip(v6=True), STACKS["linux"], draw_path(rng))]
    else:
        ip = ATTACKER if rng.random() < 0.3 else lab.public_ip()
        bots = [
            (ip, STACKS[str(rng.choice(["linux", "linux", "windows"]))], draw_path(rng, "metro"))
        ]
    pick = rng.integers(0, len(bots), n)
    ips = [bots[i][0] for i in pick.tolist()]
    init = np.array([b[1].ttl for b in bots])[pick]
    hops = np.array([b[2].hops for b in bots])[pick]
    return ips, init, hops, pick


def _sports(rng: np.random.Generator, mode: str, source: np.ndarray) -> np.ndarray:
    """The source ports of SYNs from the given sources (indices)."""
    n = len(source)
    if mode == "per-source":
        return rng.integers(1024, 65535, int(source.max()) + 1)[source]
    if mode == "fixed":
        return np.full(n, int(rng.integers(1024, 65535)))
    if mode == "increment":
        return (int(rng.integers(1024, 60000)) + np.arange(n)) % 64512 + 1024
    if mode == "pool":
        return rng.choice(rng.integers(1024, 65535, int(rng.integers(2, 40))), n)
    return rng.integers(1024, 65535, n)


def _option(lab: Lab, plan: Plan) -> int:
    """The option template of the campaign's SYNs (0: none)."""
    if plan.options == "none":
        return 0
    if plan.options == "mss":
        return lab.pk.option(bytes([2, 4, 5, 0xB4]))
    stack = STACKS["linux"] if plan.options == "mirai" else draw_stack(lab.rng)
    return lab.pk.option(*syn_options(stack, stack.mss))


def _ttl(rng: np.random.Generator, plan: Plan, init: np.ndarray, hops: np.ndarray) -> np.ndarray:
    """The TTL of each SYN as seen at the victim."""
    n = len(init)
    if plan.ttl == "random":
        return rng.integers(1, 256, n)
    if plan.ttl == "tool":
        return np.full(n, int(rng.choice([64, 128, 255]))) - hops
    return np.maximum(1, init - hops)


def _window(rng: np.random.Generator, plan: Plan, n: int) -> np.ndarray:
    """The window field of each SYN."""
    if plan.window == "random":
        return rng.integers(0, 65536, n)
    if plan.window == "tool":
        return np.full(n, int(rng.choice([0, 512, 1024, 8192, 14600, 64240, 65535])))
    return rng.choice([64240, 65535, 29200, 8192, 5840], n)


def _campaign(lab: Lab, w: World, plan: Plan, n: int) -> None:
    """One SYN flood campaign of about ``n`` SYNs, and the victim's answers if captured."""
    rng = lab.rng
    victim = w.servers[
        "web6" if plan.sources == "ipv6" else str(rng.choice(["web", "web", "app", "mail"]))
    ]
    dur = {
        "steady": float(np.exp(rng.uniform(0, np.log(120)))),
        "pulsing": rng.uniform(60, 300),
    }.get(plan.pattern, rng.uniform(200, 600))
    dur = min(dur, n / rng.uniform(2, 10))  # low-rate still means a few SYNs a second at least
    t = times(rng, n, rng.uniform(0, SPAN_S - dur), dur, plan.pattern)
    src, init, hops, source = _source_ips(lab, plan, n)
    sport = _sports(rng, plan.sports, source)
    port = int(rng.choice([80, 80, 443, 443, 22, 25, 3389, 8080]))
    dport = np.full(n, port) if plan.fixed_dport else rng.integers(1, 65535, n)
    keep = _register(lab, src, sport, victim.ip, dport, TCP, t, SYNFLOOD, plan.kind)
    src = [s for s, k in zip(src, keep.tolist(), strict=True) if k]
    t, sport, dport = t[keep], sport[keep], dport[keep]
    init, hops = init[keep], hops[keep]
    n = len(t)
    hid = _hosts(lab, src)
    seq = rng.integers(0, 2**32, n)
    ttl, win = _ttl(rng, plan, init, hops), _window(rng, plan, n)
    size = rng.integers(0, plan.payload + 1, n) if plan.payload else 0
    syn = dict(
        src=hid,
        dst=victim.hid,
        proto=TCP,
        sport=sport,
        dport=dport,
        seq=seq,
        flags=plan.flags,
        opt=_option(lab, plan),
    )
    lab.pk.block(n, ts=t, ttl=ttl, win=win, plen=size, **syn)
    if plan.answered:
        _answers(lab, victim.hid, hid, t, sport, dport, seq)


def _answers(
    lab: Lab,
    victim: int,
    hid: np.ndarray,
    t: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    seq: np.ndarray,
) -> None:
    """The victim's SYN-ACKs (retransmitted at 1 and 3 s) or RSTs for closed ports."""
    rng = lab.rng
    n = len(t)
    closed = ~np.isin(dport, (80, 443, 22, 25, 3389, 8080))
    reply = t + rng.integers(20, 300, n)
    synack = lab.pk.option(*syn_options(STACKS["linux"], 1460, STACKS["iot"]))
    sseq = rng.integers(0, 2**32, n)
    lab.pk.block(
        n,
        ts=reply,
        src=victim,
        dst=hid,
        proto=TCP,
        sport=dport,
        dport=sport,
        ttl=64,
        seq=np.where(closed, 0, sseq),
        ack=(seq + 1) & 0xFFFFFFFF,
        flags=np.where(closed, RST | ACK, SYN | ACK),
        win=np.where(closed, 0, 64240),
        opt=np.where(closed, 0, synack),
    )
    for back in (1_000_000, 3_000_000):  # retransmitted SYN-ACKs of half-open connections
        again = np.flatnonzero(~closed & (rng.random(n) < 0.5))
        lab.pk.block(
            len(again),
            ts=reply[again] + back,
            src=victim,
            dst=hid[again],
            proto=TCP,
            sport=dport[again],
            dport=sport[again],
            ttl=64,
            seq=sseq[again],
            ack=(seq[again] + 1) & 0xFFFFFFFF,
            flags=SYN | ACK,
            win=64240,
            opt=synack,
        )


def syn_flood(lab: Lab, w: World, n: int) -> None:
    """About ``n`` SYNs: one campaign for every flags × sources × answered-or-one-way (so
    every seed covers them all), each with the rest of its way of making SYNs drawn (see the
    module doc); a one-way campaign mostly repeats its source ports (its random-port SYNs
    would all be one-packet flows); a quarter more campaigns entirely drawn."""
    rng = lab.rng
    plans = []
    for flags, _ in _FLAGS:
        for sources, _ in _SOURCES:
            for answered in (True, False):
                plan = replace(_plan(rng), flags=flags, sources=sources, answered=answered)
                if sources in ("single", "ipv6"):  # one source to random ports: a scan
                    plan = replace(plan, fixed_dport=True)
                if not answered and plan.sports in ("random", "increment") and rng.random() < 0.8:
                    plan = replace(plan, sports=str(rng.choice(["per-source", "pool", "fixed"])))
                plans.append(plan)
    plans += [_plan(rng) for _ in range(len(plans) // 4)]
    share = rng.dirichlet(np.full(len(plans), 3.0))
    for plan, part in zip(plans, share, strict=True):
        _campaign(lab, w, plan, max(4, round(n * part)))
