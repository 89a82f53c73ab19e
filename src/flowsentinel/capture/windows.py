"""The aggregate detector: per-destination and per-source windows over decoded packets.

The flow model judges one flow at a time, and the meter leaves out single-packet flows (CIC
parity): a spoofed SYN flood or a UDP reflection flood is thousands of one-packet "flows" that
the model never sees. This detector reads the decoded packet arrays of every batch (the tap of
:func:`flowsentinel.capture.stream.iter_flow_arrays`) and counts, per tumbling window of
:data:`LONG_US` (10 s) and its :data:`SHORT_US` (1 s) sub-windows:

- per destination host: packets and bytes in and out, distinct sources, sources that sent one
  packet, SYNs received and SYN-ACKs sent (half-open connections), SYN-ACKs received without a
  SYN sent (reflected backscatter), UDP, ICMP and IP-fragment packets, the dominant destination
  and source ports, and the 1 s peaks of the same counts;
- per source: distinct destination ports probed with a SYN or a UDP packet from an ephemeral
  port (scans).

A window is flagged when a figure passes its threshold (:class:`Thresholds`: high quantiles of
benign windows times a margin, with floors; ``docs/capture.md`` says how they were learnt).
Once a target is flagged it stays "hot" for :data:`HOLD_US`: its next windows are reported as
the same attack even when a lull keeps them under the thresholds (a pulsing flood is one
incident). Everything is vectorised (dense codes of the keys and ``bincount`` per closed
window); memory holds the packets of one open 10 s window and the hot targets, whatever the
capture length.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import polars as pl

from flowsentinel.capture.decode import ICMP, ICMP6, IP_FRAGMENT, OK, TCP, UDP, Packets
from flowsentinel.core.errors import InputError

SHORT_US: Final = 1_000_000
LONG_US: Final = 10_000_000
HOLD_US: Final = 60_000_000  # a flagged target stays hot this long after its last flagged window
V4_PREFIX: Final = 0xFFFF00000000
#: source ports of UDP services abused for reflection/amplification
AMPLIFIERS: Final[dict[int, str]] = {
    17: "QOTD", 19: "chargen", 53: "DNS", 69: "TFTP", 111: "portmap", 123: "NTP", 137: "NetBIOS",
    161: "SNMP", 389: "CLDAP", 500: "ISAKMP", 520: "RIP", 1900: "SSDP", 3283: "ARD",
    3702: "WS-Discovery", 5353: "mDNS", 11211: "memcached", 37810: "DVR", 47808: "BACnet",
}  # fmt: skip


@dataclass(frozen=True)
class Thresholds:
    """Per-window limits (inclusive) above which a window is flagged.

    ``*_10s`` are counts in a 10 s window to one destination host, ``*_1s`` the peak count in
    one of its 1 s windows. Learnt as ``max(floor, margin × q99.9)`` of benign windows
    (``benchmarks/window_thresholds.py`` prints them; ``docs/capture.md`` has the figures)."""

    packets_1s: int = 2_000  # any packets to one host in a second
    sources_10s: int = 200  # distinct sources of one host in 10 s
    #: unmatched handshakes in 10 s: SYNs received minus SYN-ACKs sent, plus SYN-ACKs received
    #: minus SYNs sent (reflected backscatter)
    half_open_10s: int = 8
    half_open_1s: int = 100
    udp_1s: int = 500  # UDP packets received in a second
    udp_sources_10s: int = 50  # distinct UDP sources in 10 s
    icmp_1s: int = 200
    fragments_10s: int = 100  # non-first IP fragments received in 10 s
    scan_ports_10s: int = 20  # distinct destination ports probed by one source in 10 s
    min_sources_half_open: int = 3  # half-open/backscatter need this many sources (else a scan)


DEFAULT_THRESHOLDS: Final = Thresholds()


@dataclass
class WindowHit:
    """One flagged (or held) 10 s window of one target: what the incident builder reads."""

    start_us: int
    first_us: int
    last_us: int
    target_ip: str
    target_port: int | None
    protocol: str | None
    family: str  # DoS, DDoS, PortScan
    label: str  # SYN flood, UDP reflection (SNMP), port scan, ...
    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int
    sources: int
    one_packet_sources: int
    top_sources: list[tuple[str, int]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0  # the largest figure/threshold ratio (1.0 = at the threshold)
    held: bool = False  # under the thresholds, reported because the target is hot

    @property
    def confidence(self) -> float:
        """0.5 at a threshold, 1.0 at ten times it (log scale)."""
        if self.score <= 0:
            return 0.0
        return round(min(1.0, 0.5 + 0.5 * math.log10(max(1.0, self.score))), 3)


def address(hi: int, lo: int) -> str:
    """Text of an address kept as two 64-bit halves (IPv4 in its mapped form)."""
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


_PROTO_NAMES: Final = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMP6: "ipv6-icmp"}


#: a batch of packets as named columns (:func:`packet_columns`)
Columns = dict[str, np.ndarray]
_BATCH_ARRAYS: Final = frozenset({"ts", "shi", "slo", "dhi", "dlo", "sport", "dport"})


def packet_columns(pk: Packets) -> Columns:
    """The columns the windows need, for every packet with an IP header (fragments and
    other transports included: they count against their destination), and ``w``: the start
    of the packet's 10 s window (µs)."""
    has_ip = (pk.dst_hi | pk.dst_lo) != 0
    ok = pk.reason == OK
    tcp = ok & (pk.proto == TCP)
    syn = tcp & ((pk.flags & 0x12) == 0x02)
    synack = tcp & ((pk.flags & 0x12) == 0x12)
    udp = ok & (pk.proto == UDP)
    icmp = ok & ((pk.proto == ICMP) | (pk.proto == ICMP6))
    frag = pk.reason == IP_FRAGMENT
    # one 64-bit key per source (exact for IPv4, a hash for IPv6) for distinct counts
    skey = pk.src_lo ^ (pk.src_hi * np.uint64(0x9E3779B97F4A7C15))
    cols = {
        "ts": pk.ts,
        "shi": pk.src_hi,
        "slo": pk.src_lo,
        "skey": skey,
        "dhi": pk.dst_hi,
        "dlo": pk.dst_lo,
        "sport": pk.sport,
        "dport": pk.dport,
        "proto": np.where(ok, pk.proto, -1).astype(np.int32),
        "bytes": (pk.payload + pk.hdr).astype(np.int64),
        "syn": syn,
        "synack": synack,
        "udp": udp,
        "icmp": icmp,
        "frag": frag,
    }
    # the window keeps its packets: a copy of the batch's own arrays (the reader may reuse
    # them); the columns computed here are new already
    if has_ip.all():
        out = {k: v.copy() if k in _BATCH_ARRAYS else v for k, v in cols.items()}
    else:
        out = {k: v[has_ip] for k, v in cols.items()}
    out["w"] = out["ts"] // LONG_US * LONG_US
    return out


def packet_frame(pk: Packets) -> pl.DataFrame:
    """:func:`packet_columns` as a frame, without ``w``."""
    cols = packet_columns(pk)
    del cols["w"]
    return pl.DataFrame(cols)


def _select(cols: Columns, rows: np.ndarray) -> Columns:
    return {k: v[rows] for k, v in cols.items()}


def _concat(parts: list[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _codes(*columns: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes (0 to n - 1) of the rows' combined values of ``columns``, exact (hashed
    factorisation, one column at a time; a column of one value splits nothing), and n."""
    codes, n = np.zeros(len(columns[0]), dtype=np.int64), min(len(columns[0]), 1)
    for column in columns:
        if len(column) == 0 or column.min() == column.max():
            continue
        c, uniques = pd.factorize(column)
        if n > 1:
            c, uniques = pd.factorize(codes * len(uniques) + c)
        codes, n = c.astype(np.int64, copy=False), len(uniques)
    return codes, n


def _rows_of(codes: np.ndarray, n: int) -> np.ndarray:
    """A row of each code (any: the rows of one code share the values it codes)."""
    rows = np.zeros(n, dtype=np.int64)
    rows[codes] = np.arange(len(codes))
    return rows


def _count(codes: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """Per code: its rows (those of ``where`` only, when given)."""
    return np.bincount(codes if where is None else codes[where], minlength=n).astype(np.int64)


def _sum(codes: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Per code: the sum of ``values`` (whole numbers: exact below 2**53)."""
    return np.rint(np.bincount(codes, weights=values, minlength=n)).astype(np.int64)


def _extreme(codes: np.ndarray, n: int, values: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """Per code: the min or max (``ufunc``) of ``values``."""
    info = np.iinfo(np.int64)
    out = np.full(n, info.max if ufunc is np.minimum else info.min, dtype=np.int64)
    ufunc.at(out, codes, values)
    return out


def _dominant(host: np.ndarray, n: int, values: np.ndarray, packets: np.ndarray) -> tuple[
    np.ndarray, np.ndarray
]:  # fmt: skip
    """Per host window: the most frequent of ``values`` (ties: the smallest, so the figures
    do not depend on the order packets came in) and its share of the packets."""
    # ports and protocols span at most 65,536 values: (host, value) as one exact number
    values = values.astype(np.int64)
    low = int(values.min(initial=0))
    span = int(values.max(initial=0)) - low + 1
    pair = host * span + (values - low)
    if n * span <= 2 * max(len(values), 1 << 16):  # few hosts: a count for every value
        counts = np.bincount(pair, minlength=n * span).reshape(n, span)
        most = counts.max(axis=1, initial=0)
        return counts.argmax(axis=1) + low, most / np.maximum(packets, 1)  # the first: smallest
    pair, uniques = pd.factorize(pair)
    counts = np.bincount(pair, minlength=len(uniques))
    pair_host, pair_value = np.divmod(uniques, span)
    pair_value += low
    most = _extreme(pair_host, n, counts, np.maximum)
    best = counts == most[pair_host]
    top = _extreme(pair_host[best], n, pair_value[best], np.minimum)
    return top, most / np.maximum(packets, 1)


def _sources(host: np.ndarray, n: int, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per host window: distinct sources, those that sent one packet, those that sent UDP."""
    pair, m = _codes(host, a["skey"])
    pair_host = host[_rows_of(pair, m)]
    udp = _count(pair, m, a["udp"]) > 0
    return {
        "sources": _count(pair_host, n),
        "one_packet_sources": _count(pair_host, n, _count(pair, m) == 1),
        "udp_sources": _count(pair_host, n, udp),
    }


_SECONDS: Final = LONG_US // SHORT_US


def _peaks(host: np.ndarray, n: int, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per host window: packets, SYNs, UDP and ICMP packets received in each of its seconds."""
    per_s = host * _SECONDS + (a["ts"] - a["w"]) // SHORT_US
    wheres = {"packets": None, "syn": a["syn"], "udp": a["udp"], "icmp": a["icmp"]}
    return {k: _count(per_s, n * _SECONDS, w).reshape(n, _SECONDS) for k, w in wheres.items()}


def _figures(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per (window, host): what it received (counts, 1 s peaks, sources, dominant ports and
    protocol) and sent; one row per host window that received packets."""
    # one code per (window, host) for the packets' destinations and sources alike
    both, n = _codes(
        np.concatenate([a["w"], a["w"]]),
        np.concatenate([a["dhi"], a["shi"]]),
        np.concatenate([a["dlo"], a["slo"]]),
    )
    to, by = np.split(both, 2)
    rows = _rows_of(to, n)
    peaks = _peaks(to, n, a)
    packets = peaks["packets"].sum(axis=1)
    out = {
        "w": a["w"][rows], "dhi": a["dhi"][rows], "dlo": a["dlo"][rows],
        "packets_in": packets, "bytes_in": _sum(to, n, a["bytes"]),
        "first_us": _extreme(to, n, a["ts"], np.minimum),
        "last_us": _extreme(to, n, a["ts"], np.maximum),
        "syn_in": peaks["syn"].sum(axis=1), "synack_in": _count(to, n, a["synack"]),
        "udp_in": peaks["udp"].sum(axis=1), "icmp_in": peaks["icmp"].sum(axis=1),
        "fragments_in": _count(to, n, a["frag"]),
        **{f"{k}_1s": v.max(axis=1) for k, v in peaks.items()},
        **_sources(to, n, a),
    }  # fmt: skip
    for column in ("dport", "sport", "proto"):
        out[f"top_{column}"], out[f"top_{column}_share"] = _dominant(to, n, a[column], packets)
    out |= {
        "packets_out": _count(by, n), "bytes_out": _sum(by, n, a["bytes"]),
        "syn_out": _count(by, n, a["syn"]), "synack_out": _count(by, n, a["synack"]),
    }  # fmt: skip
    out["half_open"] = np.maximum(out["syn_in"] - out["synack_out"], 0)
    out["backscatter"] = np.maximum(out["synack_in"] - out["syn_out"], 0)
    received = packets > 0
    return {k: v[received] for k, v in out.items()}


_COLUMNS: Final = ("ts", "w", "shi", "slo", "skey", "dhi", "dlo", "sport", "dport", "proto",
                   "bytes", "syn", "synack", "udp", "icmp", "frag")  # fmt: skip


def host_windows(df: pl.DataFrame) -> pl.DataFrame:
    """The per-destination figures of every closed 10 s window in ``df`` (column ``w``: the
    window's start in µs): one row per (window, destination host).

    Grouped by dense codes of the keys (hashed, exact) and counted with ``bincount``: a
    polars group-by per figure cost twice as much on a flood's 250,000 packets."""
    return pl.DataFrame(_figures({name: df[name].to_numpy() for name in _COLUMNS}))


_SCAN_COLUMNS: Final = ("w", "ts", "shi", "slo", "dhi", "dlo", "sport", "dport", "bytes", "syn",
                        "udp")  # fmt: skip


def scan_windows(df: pl.DataFrame) -> pl.DataFrame:
    """Per (window, source): distinct destination ports it probed (SYN or UDP), and the
    destination it probed most ports of."""
    c = pl.col
    # a UDP reply comes from its service's port: only UDP from ephemeral ports probes
    probes = df.filter(c("syn") | (c("udp") & (c("sport") >= 1024)))
    per_dst = probes.group_by("w", "shi", "slo", "dhi", "dlo").agg(
        c("dport").n_unique().alias("ports"), c("ts").len().alias("packets"),
        c("bytes").sum().alias("bytes"), c("ts").min().alias("first_us"),
        c("ts").max().alias("last_us"),
    )  # fmt: skip
    return (
        per_dst.sort("ports", descending=True)
        .group_by("w", "shi", "slo")
        .agg(
            c("ports").sum().alias("scan_ports"),
            c("dhi").first(),
            c("dlo").first(),
            c("packets").sum(),
            c("bytes").sum(),
            c("first_us").min(),
            c("last_us").max(),
            c("dhi").len().alias("hosts"),
        )
    )


SOURCES_KEPT: Final = (
    256  # sources named per flagged window (the incident counts them across windows)
)


def top_sources(
    packets: Columns, targets: pl.DataFrame, k: int = SOURCES_KEPT
) -> dict[tuple, list]:
    """The ``k`` sources that sent most packets to each (window, target) of ``targets``, most
    first: an incident spanning windows counts its distinct sources from these."""
    keys = ("w", "dhi", "dlo")
    a = {x: packets[x] for x in (*keys, "shi", "slo")}
    if targets.is_empty() or len(a["w"]) == 0:
        return {}
    target, n = _codes(*(a[x] for x in keys))
    # the (window, host) of each code against the targets': a table of host windows, not packets
    rows = _rows_of(target, n)
    both, _ = _codes(*(np.concatenate([a[x][rows], targets[x].to_numpy()]) for x in keys))
    sel = np.isin(both[:n], both[n:])[target]
    if not sel.all():
        a, target = {x: v[sel] for x, v in a.items()}, target[sel]
    pair, m = _codes(target, a["shi"], a["slo"])
    rows = _rows_of(pair, m)
    counts = np.bincount(pair, minlength=m)
    # ties by address: the sources kept do not depend on the order packets came in
    order = np.lexsort((a["slo"][rows], a["shi"][rows], -counts, target[rows]))
    ranked = target[rows][order]
    first = np.r_[True, ranked[1:] != ranked[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(ranked)), 0))
    kept = rows[order][np.arange(len(ranked)) - start < k]
    out: dict[tuple, list] = {}
    columns = [a[x][kept].tolist() for x in (*keys, "shi", "slo")]
    for w, dhi, dlo, shi, slo, count in zip(*columns, counts[pair[kept]].tolist(), strict=True):
        out.setdefault((w, dhi, dlo), []).append((address(shi, slo), count))
    return out


def classify(row: dict[str, Any], th: Thresholds) -> tuple[str, str, float, dict[str, Any]]:
    """(family, label, score, figures) of one host window; score < 1: not flagged."""
    many = row["sources"] >= 10
    fam = "DDoS" if many else "DoS"
    # unmatched handshakes need several sources (one client retrying a dead server is not
    # an attack); a 1 s peak of SYNs needs several sources or one port (else: a scan)
    src_ok = row["sources"] >= th.min_sources_half_open
    peak_ok = src_ok or row["top_dport_share"] >= 0.5
    # handshakes left open either way: SYNs never answered, SYN-ACKs never asked for
    unmatched = row["half_open"] + row["backscatter"]
    handshake = "SYN-ACK reflection" if row["backscatter"] > row["half_open"] else "SYN flood"
    udp_reflect = row["top_sport_share"] >= 0.5 and row["top_sport"] in AMPLIFIERS
    # volume alone is no attack: a busy server answers; a flooded one (or a one-way capture
    # of the flood) sends back less than half of what it gets
    one_way = 1.0 if 2 * row["packets_out"] < row["packets_in"] else 0.0
    candidates: list[tuple[float, str, str]] = [
        (unmatched / th.half_open_10s if src_ok else 0.0, fam, handshake),
        (row["syn_1s"] / th.half_open_1s if row["half_open"] and peak_ok else 0.0, fam,
         "SYN flood"),
        (one_way * row["udp_1s"] / th.udp_1s, fam, "UDP flood"),
        (one_way * row["udp_sources"] / th.udp_sources_10s, "DDoS",
         f"UDP reflection ({AMPLIFIERS.get(row['top_sport'], row['top_sport'])})"
         if udp_reflect else "UDP flood"),
        (one_way * row["icmp_1s"] / th.icmp_1s, fam, "ICMP flood"),
        (row["fragments_in"] / th.fragments_10s, fam, "fragment flood"),
        (one_way * row["packets_1s"] / th.packets_1s, fam, "packet flood"),
        (one_way * row["sources"] / th.sources_10s, "DDoS", "flood from many sources"),
    ]  # fmt: skip
    score, family, label = max(candidates, key=lambda c: c[0])
    if label == "UDP flood" and udp_reflect:
        label = f"UDP reflection ({AMPLIFIERS[row['top_sport']]})"
    figures = {k: _plain(row[k]) for k in _FIGURES}
    return family, label, score, figures


_FIGURES: Final = (
    "packets_in", "bytes_in", "packets_out", "sources", "one_packet_sources", "half_open",
    "backscatter", "udp_in", "icmp_in", "fragments_in", "packets_1s", "syn_1s", "udp_1s",
    "top_dport", "top_sport",
)  # fmt: skip


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class _Hot:
    family: str
    label: str
    until_us: int


class WindowDetector:
    """Feed decoded packet batches (:meth:`add`), read flagged windows (:meth:`take`)."""

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        *,
        on_hosts: Callable[[pl.DataFrame], None] | None = None,
    ) -> None:
        self.thresholds = thresholds or DEFAULT_THRESHOLDS
        self.on_hosts = on_hosts  # sees every evaluated window's host figures (baselines)
        self._parts: list[Columns] = []
        self._open_w: int | None = None  # start of the oldest window still open
        self._hits: list[WindowHit] = []
        self._hot: dict[tuple[int, int], _Hot] = {}
        self._last: pl.DataFrame | None = None  # host windows of the last window evaluated
        self._last_packets: Columns | None = None  # and its packets' addresses
        self.packets = 0  # packets with an IP header seen
        self.windows = 0  # host windows evaluated

    def add(self, pk: Packets) -> None:
        """Buffer one batch; evaluate the windows that ended before its last packet."""
        if len(pk) == 0:
            return
        cols = packet_columns(pk)
        if len(cols["ts"]) == 0:
            return
        self.packets += len(cols["ts"])
        self._parts.append(cols)
        last_w = int(pk.ts.max()) // LONG_US * LONG_US
        if self._open_w is None:
            self._open_w = int(cols["w"].min())
        if last_w > self._open_w:
            self._close(before=last_w)

    def flush(self) -> None:
        """Evaluate every window still open (end of the capture)."""
        self._close(before=None)

    def take(self) -> list[WindowHit]:
        """The windows flagged (or held) since the last call, oldest first."""
        hits, self._hits = self._hits, []
        return hits

    def _close(self, before: int | None) -> None:
        done: list[Columns] = []
        keep: list[Columns] = []
        for part in self._parts:  # batches: only one that straddles ``before`` is split
            w = part["w"]
            if before is None or w.max() < before:
                done.append(part)
            elif w.min() >= before:
                keep.append(part)
            else:
                done.append(_select(part, w < before))
                keep.append(_select(part, w >= before))
        self._parts = keep
        self._open_w = before
        if done:
            self._evaluate(_concat(done))

    def _evaluate(self, a: Columns) -> None:
        hosts = pl.DataFrame(_figures(a))
        self.windows += hosts.height
        if self.on_hosts is not None:
            self.on_hosts(hosts)
        probes = pl.DataFrame({k: a[k] for k in _SCAN_COLUMNS})
        hits = self._host_hits(a, hosts) + self._scan_hits(scan_windows(probes))
        hits.sort(key=lambda h: (h.start_us, h.first_us))
        self._hits += hits

    def _host_hits(self, a: Columns, hosts: pl.DataFrame) -> list[WindowHit]:
        th = self.thresholds
        flagged = _candidates(hosts, th, self._hot)
        tops = top_sources(a, flagged)
        before = self._before(hosts, flagged, tops)
        out: list[WindowHit] = []
        emitted: list[tuple[int, tuple[int, int]]] = []
        for row in flagged.sort("w").iter_rows(named=True):
            key = (row["dhi"], row["dlo"])
            family, label, score, figures = classify(row, th)
            hot = self._hot.get(key)
            held = score < 1.0
            if held:
                if hot is None or row["w"] > hot.until_us:
                    before[(row["w"], *key)] = row
                    continue
                family, label = hot.family, hot.label
            else:
                if hot is None or row["w"] > hot.until_us:  # a new attack: its lead-in too
                    lead = before.get((row["w"] - LONG_US, *key))
                    if lead is not None:
                        out.append(_hit(lead, family, label, 0.0, {}, tops, True))
                self._hot[key] = _Hot(family, label, row["w"] + LONG_US + HOLD_US)
            out.append(_hit(row, family, label, score, figures, tops, held))
            emitted.append((row["w"], key))
        last_w = int(hosts["w"].to_numpy().max())
        self._hot = {k: v for k, v in self._hot.items() if v.until_us >= last_w}
        # the last window stays at hand for the next evaluation's lead-ins (with its packets,
        # for their sources), except the windows reported already
        reported = pl.DataFrame(
            [k for w, k in emitted if w == last_w],
            schema={"dhi": pl.UInt64, "dlo": pl.UInt64},
            orient="row",
        )
        last = hosts.filter(pl.col("w") == last_w)
        self._last = last.join(reported, on=["dhi", "dlo"], how="anti")
        addresses = {k: a[k] for k in ("w", "dhi", "dlo", "shi", "slo")}
        in_last = a["w"] == last_w
        self._last_packets = addresses if in_last.all() else _select(addresses, in_last)
        return out

    def _before(
        self, hosts: pl.DataFrame, targets: pl.DataFrame, tops: dict[tuple, list]
    ) -> dict[tuple[int, int, int], dict[str, Any]]:
        """The previous evaluation's last windows of ``targets`` not reported then, by
        (window, host), their top sources added to ``tops``: a flood that starts just before a
        window ends is reported from its start once the next window flags it, whatever the
        batches."""
        if self._last is None or self._last.is_empty():
            return {}
        first_w = int(hosts["w"].to_numpy().min())
        last = self._last.filter(pl.col("w") == first_w - LONG_US).join(
            targets.select("dhi", "dlo").unique(), on=["dhi", "dlo"], how="semi"
        )
        if self._last_packets is not None:
            tops.update(top_sources(self._last_packets, last))
        return {(r["w"], r["dhi"], r["dlo"]): r for r in last.iter_rows(named=True)}

    def _scan_hits(self, scans: pl.DataFrame) -> list[WindowHit]:
        flagged = scans.filter(pl.col("scan_ports") >= self.thresholds.scan_ports_10s)
        out = []
        for row in flagged.iter_rows(named=True):
            source = address(row["shi"], row["slo"])
            score = row["scan_ports"] / self.thresholds.scan_ports_10s
            out.append(
                WindowHit(
                    start_us=row["w"], first_us=row["first_us"], last_us=row["last_us"],
                    target_ip=address(row["dhi"], row["dlo"]), target_port=None, protocol=None,
                    family="PortScan", label="port scan", packets_in=row["packets"],
                    bytes_in=row["bytes"], packets_out=0, bytes_out=0, sources=1,
                    one_packet_sources=0, top_sources=[(source, row["packets"])],
                    figures={"ports": row["scan_ports"], "hosts": row["hosts"]}, score=score,
                )
            )  # fmt: skip
        return out


def _prefilter(th: Thresholds) -> pl.Expr:
    """Host windows that can pass a threshold (a cheap filter before :func:`classify`)."""
    c = pl.col
    return (
        (c("half_open") + c("backscatter") >= th.half_open_10s)
        | (c("syn_1s") >= th.half_open_1s) | (c("udp_1s") >= th.udp_1s)
        | (c("udp_sources") >= th.udp_sources_10s) | (c("icmp_1s") >= th.icmp_1s)
        | (c("fragments_in") >= th.fragments_10s) | (c("packets_1s") >= th.packets_1s)
        | (c("sources") >= th.sources_10s)
    )  # fmt: skip


def _candidates(
    hosts: pl.DataFrame, th: Thresholds, hot: dict[tuple[int, int], _Hot]
) -> pl.DataFrame:
    """The host windows that pass a threshold, and every window of their targets and of the
    hot targets (held windows are decided in time order by the caller)."""
    passing = hosts.filter(_prefilter(th)).select("dhi", "dlo")
    held = pl.DataFrame(
        {"dhi": [k[0] for k in hot], "dlo": [k[1] for k in hot]},
        schema={"dhi": pl.UInt64, "dlo": pl.UInt64},
    )
    targets = pl.concat([passing, held]).unique()
    return hosts.join(targets, on=["dhi", "dlo"], how="semi")


def _hit(
    row: dict[str, Any], family: str, label: str, score: float, figures: dict[str, Any],
    tops: dict[tuple, list], held: bool,
) -> WindowHit:  # fmt: skip
    one_port = row["top_dport_share"] >= 0.9 and row["top_proto"] in (TCP, UDP)
    return WindowHit(
        start_us=row["w"], first_us=row["first_us"], last_us=row["last_us"],
        target_ip=address(row["dhi"], row["dlo"]),
        target_port=int(row["top_dport"]) if one_port else None,
        protocol=_PROTO_NAMES.get(row["top_proto"]), family=family, label=label,
        packets_in=row["packets_in"], bytes_in=row["bytes_in"],
        packets_out=row["packets_out"], bytes_out=row["bytes_out"], sources=row["sources"],
        one_packet_sources=row["one_packet_sources"],
        top_sources=tops.get((row["w"], row["dhi"], row["dlo"]), []), figures=figures,
        score=round(float(score), 3), held=held,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# thresholds learnt from a network's own benign traffic

#: threshold field → the host-window figure it bounds
LEARNT_FIGURES: Final = {
    "packets_1s": "packets_1s",
    "sources_10s": "sources",
    "half_open_10s": "unmatched",
    "half_open_1s": "syn_1s",
    "udp_1s": "udp_1s",
    "udp_sources_10s": "udp_sources",
    "icmp_1s": "icmp_1s",
    "fragments_10s": "fragments_in",
}


@dataclass
class Baseline:
    """Host-window figures of benign traffic, and the thresholds they give
    (``max(floor, margin × q99.9)`` per figure; the floors are :data:`DEFAULT_THRESHOLDS`).

    Examples
    --------
    >>> b = Baseline()
    >>> b.thresholds().udp_1s == DEFAULT_THRESHOLDS.udp_1s  # nothing seen: the floors
    True
    """

    margin: float = 2.0
    quantile: float = 0.999
    parts: list[pl.DataFrame] = field(default_factory=list)

    def add_hosts(self, hosts: pl.DataFrame) -> None:
        """One evaluated window's host figures (the :class:`WindowDetector` hook)."""
        unmatched = (pl.col("half_open") + pl.col("backscatter")).alias("unmatched")
        figures = sorted(set(LEARNT_FIGURES.values()) - {"unmatched"})
        self.parts.append(hosts.select(*figures, unmatched))

    @property
    def windows(self) -> int:
        return sum(p.height for p in self.parts)

    def figures(self) -> dict[str, dict[str, float]]:
        """Per threshold: the benign maximum, the quantile, and the threshold it gives."""
        table = pl.concat(self.parts) if self.parts else None
        out = {}
        for name, column in LEARNT_FIGURES.items():
            floor = getattr(DEFAULT_THRESHOLDS, name)
            values = table[column].cast(pl.Float64).to_numpy() if table is not None else np.zeros(0)
            top = float(values.max()) if len(values) else 0.0
            q = float(np.quantile(values, self.quantile)) if len(values) else 0.0
            learnt = math.ceil(self.margin * q)
            out[name] = {"benign_max": top, "benign_quantile": q, "learnt": learnt,
                         "floor": floor, "threshold": max(floor, learnt)}  # fmt: skip
        return out

    def thresholds(self) -> Thresholds:
        chosen = {name: int(f["threshold"]) for name, f in self.figures().items()}
        return replace(DEFAULT_THRESHOLDS, **chosen)


def thresholds_to_json(thresholds: Thresholds) -> dict[str, int]:
    return asdict(thresholds)


def thresholds_from_json(path: str | Path) -> Thresholds:
    """Thresholds written by ``flowsentinel baseline``; one :class:`InputError` line for a file
    that is not one."""
    try:
        doc = json.loads(Path(path).read_text())
        values = doc["thresholds"] if isinstance(doc, dict) and "thresholds" in doc else doc
        known = {f.name for f in fields(Thresholds)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown threshold {unknown[0]!r}", path=path)
        bad = [k for k, v in values.items() if not isinstance(v, int) or v < 1]
        if bad:
            raise InputError(f"threshold {bad[0]!r} must be a positive integer", path=path)
        return replace(DEFAULT_THRESHOLDS, **values)
    except OSError as exc:
        raise InputError(f"cannot read the thresholds ({exc.strerror or exc})", path=path) from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"not a thresholds file ({exc})", path=path) from None
