"""Scenarios for the capture-set tests: many flows whose keys repeat, crossing flow timeouts,
activity timeouts and FIN cuts, and a capture cut into slices as ``editcap -c`` would (the
records are walked by dpkt, independently of our reader)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
from tests.capture.craft import ACK, FIN, PSH, SYN, T0, Pkt, frame

S = 1_000_000


def busy_scenario(seed: int = 7, flows: int = 400, span_s: int = 400) -> list[Pkt]:
    """Packets of ``flows`` conversations over ``span_s`` seconds between a few hosts, so that
    5-tuples repeat: long gaps (activity and flow timeouts), FINs mid-conversation, UDP and TCP
    both ways, in time order."""
    rng = np.random.default_rng(seed)
    hosts = [f"10.0.{k // 4}.{k % 4 + 1}" for k in range(8)]
    pkts: list[Pkt] = []
    for _ in range(flows):
        a, b = rng.choice(len(hosts), 2, replace=False)
        sport, dport = int(rng.integers(40000, 40006)), int(rng.choice([53, 80, 443]))
        proto = 17 if dport == 53 else 6
        t = int(rng.integers(0, span_s * S))
        for k in range(int(rng.integers(1, 9))):
            fwd = rng.random() < 0.6
            src, dst = (hosts[a], hosts[b]) if fwd else (hosts[b], hosts[a])
            sp, dp = (sport, dport) if fwd else (dport, sport)
            flags = SYN if k == 0 else ACK | (PSH if rng.random() < 0.3 else 0)
            if proto == 6 and rng.random() < 0.12:
                flags |= FIN
            pkts.append(Pkt(t, src, dst, sp, dp, proto=proto, flags=flags,
                            payload=int(rng.integers(0, 400))))  # fmt: skip
            # gaps: mostly short, some above the activity timeout (5 s), a few above 120 s
            t += int(rng.choice([rng.integers(1, 2 * S), rng.integers(5 * S, 9 * S),
                                 rng.integers(121 * S, 130 * S)], p=[0.8, 0.15, 0.05]))  # fmt: skip
    pkts.sort(key=lambda p: p.t_us)
    return pkts


def write_pcap(path: Path, pkts: list[Pkt]) -> Path:
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=65535)
        for p in pkts:
            w.writepkt(frame(p), ts=T0 + p.t_us / 1e6)
    return path


def slice_records(data: bytes, cuts: list[int]) -> list[bytes]:
    """The pcap ``data`` cut before the records numbered ``cuts`` (one pcap per slice)."""
    records = list(dpkt.pcap.Reader(io.BytesIO(data)))
    bounds = [0, *cuts, len(records)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        buf = io.BytesIO()
        w = dpkt.pcap.Writer(buf, snaplen=65535)
        for ts, raw in records[lo:hi]:
            w.writepkt(raw, ts=ts)
        out.append(buf.getvalue())
    return out


def same_flows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same rows, column for column (flows are compared in one canonical order)."""
    key = ["Timestamp", "Flow ID", "Flow Duration", "Total Fwd Packets", "Total Backward Packets"]
    left = a.sort_values(key, kind="stable").reset_index(drop=True)
    right = b.sort_values(key, kind="stable").reset_index(drop=True)
    assert list(left.columns) == list(right.columns)
    pd.testing.assert_frame_equal(left, right, check_exact=True)
