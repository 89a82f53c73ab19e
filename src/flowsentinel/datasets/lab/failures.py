"""Benign TCP that does not go as planned, as every real network carries it: refused and
unanswered connection attempts (with each stack's SYN back-off), health checks that connect
and reset, connections caught mid-stream by the capture, zero-window stalls (recovered or
dead) and data retransmitted to a peer that went away. Labelled ``BENIGN``."""

from __future__ import annotations

import numpy as np

from flowsentinel.datasets.lab.base import Endpoint, Lab, us
from flowsentinel.datasets.lab.benign import BENIGN, lognormal, open_tcp
from flowsentinel.datasets.lab.stacks import syn_options
from flowsentinel.datasets.lab.tcp import Conn
from flowsentinel.datasets.lab.wire import ACK, PSH, RST, SYN
from flowsentinel.datasets.lab.world import World

#: SYN retransmissions of an unanswered connect (s after the first SYN), per stack family
SYN_BACKOFF = {
    "linux": (1.0, 3.0, 7.0, 15.0, 31.0),
    "android": (1.0, 3.0, 7.0, 15.0, 31.0),
    "windows": (1.0, 3.0, 7.0, 15.0),
    "macos": (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0),
    "ios": (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0),
    "iot": (3.0, 9.0, 21.0),
    "netdev": (2.0, 6.0, 14.0),
}
_PORTS = (80, 443, 443, 443, 22, 25, 445, 3389, 8080, 8443, 993, 5222, 9100, 5060, 1883)
_KINDS = (  # kind, share
    ("tcp-refused", 0.22),
    ("tcp-unanswered", 0.22),
    ("tcp-check", 0.16),
    ("tcp-midstream", 0.2),
    ("tcp-zerowindow", 0.08),
    ("tcp-stalled", 0.12),
)


def _pair(lab: Lab, w: World) -> tuple[Endpoint, Endpoint, int]:
    """A client, a server (of the lab or out on the internet) and a service port."""
    rng = lab.rng
    c = w.any_client(0.5)
    v6 = ":" in c.ip
    if rng.random() < 0.5:
        s = w.internet_server(v6=v6, stack=str(rng.choice(["linux", "linux", "windows", "iot"])))
    else:
        s = w.servers["web6" if v6 else str(rng.choice(["web", "app", "mail", "smb", "db"]))]
    return c, s, int(rng.choice(_PORTS))


def _syn(conn: Conn, t: int) -> None:
    """The client's SYN with its stack's options (the sequence number is then consumed)."""
    cs = conn.c.stack
    opt = conn.lab.pk.option(*syn_options(cs, conn.cmss))
    conn.pkt(t, True, SYN, opt=opt, win=conn.crwnd)


def refused(lab: Lab, conn: Conn, t: int) -> None:
    """SYN answered by RST+ACK (nothing listens); Windows tries twice more, half a second
    apart, on the same port."""
    tries = 3 if conn.c.stack.name == "windows" else 1
    for _ in range(tries):
        _syn(conn, t)
        conn.cseq += 1  # the RST acknowledges the SYN
        conn.pkt(t + conn.s_delay(), False, RST | ACK, seq=0, win=0, opt=0)
        conn.cseq -= 1  # a retry sends the same SYN again
        t += us(lab.rng.uniform(0.45, 0.6))


def unanswered(lab: Lab, conn: Conn, t: int) -> None:
    """SYNs that nobody answers (a filtered port, a host gone), retransmitted with the
    client stack's back-off until the application gives up."""
    backoff = SYN_BACKOFF[conn.c.stack.name]
    give_up = int(lab.rng.integers(1, len(backoff) + 1))
    _syn(conn, t)
    for back in backoff[:give_up]:
        _syn(conn, t + us(back * lab.rng.uniform(0.98, 1.05)))


def check(lab: Lab, conn: Conn, t: int) -> None:
    """A health check or port probe: handshake, then the client resets or closes at once."""
    t = conn.handshake(t) + int(lab.rng.integers(50, 3000))
    conn.close(t, "rst_client" if lab.rng.random() < 0.6 else "fin_client")


def midstream(lab: Lab, conn: Conn, t: int) -> None:
    """A connection opened before the capture began: data and ACKs without a handshake, or
    only keep-alives; it ends any way or stays open."""
    rng = lab.rng
    if rng.random() < 0.4:
        for _ in range(int(rng.integers(1, 5))):
            t = conn.keepalive(t) + us(float(rng.choice([15.0, 45.0, 60.0, 75.0])))
        conn.close(t, str(rng.choice(["open", "fin_client", "rst_server"])))
        return
    for _ in range(int(rng.integers(1, 6))):
        t = conn.exchange(
            t,
            lognormal(rng, 400, 1.0, 1, 20_000),
            lognormal(rng, 2000, 1.5, 1, 500_000),
            lognormal(rng, 200_000, 1.5, 100),
        )
        t += lognormal(rng, 1_000_000, 1.5, 1000)
    conn.close(t, str(rng.choice(["open", "fin_client", "fin_server", "rst_client"])))


def zero_window(lab: Lab, conn: Conn, t: int) -> None:
    """The client stops reading: its window falls to zero, the server probes with back-off
    (0.2 s doubling, up to 60 s); the client opens again, or the server gives up and resets."""
    rng = lab.rng
    t = conn.handshake(t)
    t = conn.exchange(
        t + 100, lognormal(rng, 300, 0.5, 60, 2000), lognormal(rng, 60_000, 1, 4000), 20_000
    )
    conn.pkt(t + conn.c_delay(), True, ACK, win=0)
    gap, probes = 0.2, int(rng.integers(2, 10))
    for _ in range(probes):
        t += us(gap * rng.uniform(1.0, 1.1))
        conn.pkt(t, False, ACK, seq=conn.sseq - 1, plen=0)
        conn.pkt(t + conn.c_delay(), True, ACK, win=0)
        gap = min(60.0, gap * 2)
    if rng.random() < 0.5:
        conn.pkt(t + us(gap / 2), True, ACK)
        t = conn.send(t + us(gap / 2) + conn.c_delay(), False, lognormal(rng, 30_000, 1, 1000))
        conn.close(t + 1000, "fin_server")
    else:
        conn.close(t + us(gap), "rst_server")


def stalled(lab: Lab, conn: Conn, t: int) -> None:
    """The peer goes away mid-transfer: a segment retransmitted with the RTO doubling from
    0.2-1 s, never acknowledged; the sender resets or just stops."""
    rng = lab.rng
    t = conn.handshake(t)
    t = conn.exchange(
        t + 100, lognormal(rng, 500, 0.8, 40, 4000), lognormal(rng, 5000, 1.5, 40, 200_000), 30_000
    )
    size = lognormal(rng, 300, 1.2, 1, 1400)
    rto = rng.uniform(0.2, 1.0)
    for _ in range(int(rng.integers(3, 9))):
        conn.pkt(t, True, ACK | PSH, plen=size)
        t += us(rto)
        rto = min(120.0, rto * 2)
    if rng.random() < 0.5:
        conn.pkt(t, True, RST | ACK, win=0)


_MAKE = {
    "tcp-refused": refused,
    "tcp-unanswered": unanswered,
    "tcp-check": check,
    "tcp-midstream": midstream,
    "tcp-zerowindow": zero_window,
    "tcp-stalled": stalled,
}


def tcp_failures(lab: Lab, w: World, n: int) -> None:
    """``n`` benign connections that fail, stall or are caught half-way (see the module doc);
    health checks repeat on fresh connections every few seconds."""
    rng = lab.rng
    share = np.array([s for _, s in _KINDS])
    for _ in range(n):
        kind = _KINDS[int(rng.choice(len(_KINDS), p=share / share.sum()))][0]
        c, s, port = _pair(lab, w)
        t = lab.start(0, 880)
        repeat = int(rng.integers(2, 6)) if kind == "tcp-check" else 1
        every = us(float(rng.choice([2.0, 5.0, 10.0, 30.0])))
        for k in range(repeat):
            conn = open_tcp(lab, c, s, port, kind, t + k * every, label=BENIGN)
            _MAKE[kind](lab, conn, t + k * every)
