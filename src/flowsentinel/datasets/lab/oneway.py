"""Benign UDP that goes one way, as networks carry it by design or by failure: syslog, flow
exports (NetFlow/IPFIX) and SNMP traps sent to collectors that never answer, and queries to a
server that is down (DNS with the resolver's retries, NTP polls, SNMP polls). Labelled
``BENIGN``; without it a one-way UDP flow would always be a flood to a model."""

from __future__ import annotations

import numpy as np

from flowsentinel.datasets.lab.base import Endpoint, Lab, us
from flowsentinel.datasets.lab.benign import _udp_session, lognormal
from flowsentinel.datasets.lab.world import World

#: (kind, share): what sends one way
_KINDS = (
    ("syslog", 0.3),
    ("flow-export", 0.15),
    ("snmp-trap", 0.08),
    ("dns-unanswered", 0.25),
    ("ntp-unanswered", 0.05),
    ("snmp-unanswered", 0.1),
)
#: retries of a query nobody answers (s after the first): glibc (timeout 5 s, 2 attempts),
#: Windows' resolver (1, 2, 4 s), a poller's fixed period
_RETRIES = ((5.0,), (1.0, 2.0, 4.0), (1.0, 3.0, 7.0), (10.0, 20.0))


def _times(lab: Lab, t: int, n: int, median_gap_us: float, sigma: float) -> np.ndarray:
    """``n`` send times from ``t``, gaps drawn log-normally around ``median_gap_us``."""
    gaps = lab.rng.lognormal(np.log(median_gap_us), sigma, n)
    gaps[0] = 0
    return t + np.cumsum(gaps).astype(np.int64)


def _send(
    lab: Lab, a: Endpoint, b: Endpoint, ap: int, bp: int, ts: np.ndarray, sizes: np.ndarray
) -> None:
    """One datagram per time, all from ``a`` to ``b``."""
    for t, size in zip(ts.tolist(), sizes.tolist(), strict=True):
        lab.udp(int(t), a, b, ap, bp, int(size))


def _exporter(lab: Lab, w: World, kind: str, t: int) -> None:
    """Logs, flow records or traps to a collector on the LAN: bursts and quiet spells."""
    rng = lab.rng
    src = (
        w.servers[str(rng.choice(["gw", "web", "db", "mail", "app"]))]
        if rng.random() < 0.7
        else w.lan_client()
    )
    dst = w.servers[str(rng.choice(["app", "db"]))]
    if src.ip == dst.ip:
        return
    port = {
        "syslog": 514,
        "flow-export": int(rng.choice([2055, 4739, 9995, 6343])),
        "snmp-trap": 162,
    }[kind]
    sport = port if kind == "syslog" and rng.random() < 0.5 else None
    cport = _udp_session(lab, src, dst, port, t, kind, sport)
    n = int(rng.integers(2, 60))
    if kind == "flow-export":  # a full datagram of records every second or so
        ts = _times(lab, t, n, 1_000_000, 0.4)
        sizes = rng.integers(1200, 1465, n)
    elif kind == "syslog":  # lines of text, often several in a burst
        ts = _times(lab, t, n, float(rng.choice([2_000, 200_000, 5_000_000])), 1.5)
        sizes = np.array([lognormal(rng, 160, 0.5, 40, 1024) for _ in range(n)])
    else:
        ts = _times(lab, t, n, 10_000_000, 1.2)
        sizes = rng.integers(60, 400, n)
    _send(lab, src, dst, cport, port, ts, sizes)


def _unanswered(lab: Lab, w: World, kind: str, t: int) -> None:
    """A query to a server that is down or unreachable, retried, never answered."""
    rng = lab.rng
    c = w.any_client(0.6, v6=False)
    s = (
        w.internet_server()
        if rng.random() < 0.5
        else w.servers["dns" if kind == "dns-unanswered" else "ntp"]
    )
    port = {"dns-unanswered": 53, "ntp-unanswered": 123, "snmp-unanswered": 161}[kind]
    cport = _udp_session(
        lab, c, s, port, t, kind, 123 if kind == "ntp-unanswered" and rng.random() < 0.5 else None
    )
    if kind == "ntp-unanswered":  # a poll every 64 s (or more) on one tuple
        ts = t + us(64.0) * np.arange(int(rng.integers(2, 4)))
        sizes = np.full(len(ts), 48)
    else:
        back = _RETRIES[int(rng.integers(len(_RETRIES)))]
        ts = t + np.array([0, *[us(b * rng.uniform(0.98, 1.03)) for b in back]], np.int64)
        size = int(rng.integers(28, 70)) if kind == "dns-unanswered" else int(rng.integers(40, 90))
        sizes = np.full(len(ts), size)
    _send(lab, c, s, cport, port, ts, sizes)


def oneway_udp(lab: Lab, w: World, n: int) -> None:
    """``n`` benign one-way UDP sessions (see the module doc)."""
    rng = lab.rng
    share = np.array([s for _, s in _KINDS])
    for _ in range(n):
        kind = _KINDS[int(rng.choice(len(_KINDS), p=share / share.sum()))][0]
        t = lab.start(0, 860)
        if kind in ("syslog", "flow-export", "snmp-trap"):
            _exporter(lab, w, kind, t)
        else:
            _unanswered(lab, w, kind, t)
