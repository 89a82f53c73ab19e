"""Packets as columns, and the vectorised writer that turns them into a pcap.

Generators describe packets field by field (one row per packet, or whole arrays for floods and
bulk transfers); :func:`to_pcap` builds every frame with numpy: Ethernet, IPv4 (with fragments)
or IPv6, TCP (options from interned templates, timestamps patched in), UDP or ICMP/ICMPv6,
payloads copied from a seeded filler and per-packet heads, and valid IP and transport checksums
computed over the whole batch with cumulative sums. No per-byte Python work.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np

TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMP6: Final = 58

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128

#: the columns of a packet, in the order of :meth:`Packets.row`
COLUMNS: Final[tuple[str, ...]] = (
    "ts",
    "order",
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "ttl",
    "tos",
    "ipid",
    "frag",
    "seq",
    "ack",
    "flags",
    "win",
    "opt",
    "tsval",
    "tsecr",
    "plen",
    "head",
)
_COL = {name: k for k, name in enumerate(COLUMNS)}
#: ``frag`` column: fragment offset in 8-byte units, plus this bit for "more fragments"
MORE_FRAGMENTS: Final = 1 << 16
_FILLER_SIZE = 1 << 17
_CHUNK_BYTES = 8 << 20  # frames built per batch (bounds the temporary index arrays)


@dataclass
class Host:
    """One address of the lab (IPv4 or IPv6) and its Ethernet address."""

    ip: str
    packed: bytes
    mac: bytes


@dataclass
class Packets:
    """The lab's packets as columns: single rows (handshakes, requests) or whole arrays."""

    hosts: list[Host] = field(default_factory=list)
    _host_ids: dict[str, int] = field(default_factory=dict)
    heads: list[bytes] = field(default_factory=lambda: [b""])
    _head_ids: dict[bytes, int] = field(default_factory=dict)
    options: list[bytes] = field(default_factory=lambda: [b""])
    ts_at: list[int] = field(default_factory=lambda: [-1])  # where TSval sits in an option
    _option_ids: dict[bytes, int] = field(default_factory=dict)
    rows: list[tuple[int, ...]] = field(default_factory=list)
    chunks: list[np.ndarray] = field(default_factory=list)
    order: int = 0

    def host(self, ip: str) -> int:
        """The index of an address (added on first use)."""
        k = self._host_ids.get(ip)
        if k is None:
            addr = ipaddress.ip_address(ip)
            k = len(self.hosts)
            mac = bytes([0x02, 0x1A]) + (k + 1).to_bytes(4, "big")
            if addr.is_multicast and addr.version == 4:
                mac = bytes([1, 0, 0x5E]) + (int(addr) & 0x7FFFFF).to_bytes(3, "big")
            elif addr.is_multicast:
                mac = bytes([0x33, 0x33]) + addr.packed[-4:]
            self.hosts.append(Host(str(addr), addr.packed, mac))
            self._host_ids[ip] = k
        return k

    def head(self, data: bytes, intern: bool = False) -> int:
        """The index of a payload head (its first bytes; the rest of the payload is filler)."""
        if not data:
            return 0
        if intern:
            k = self._head_ids.get(data)
            if k is not None:
                return k
            self._head_ids[data] = len(self.heads)
        self.heads.append(data)
        return len(self.heads) - 1

    def option(self, data: bytes, ts_at: int = -1) -> int:
        """The index of a TCP option template (``ts_at``: offset of its TSval, or -1)."""
        if len(data) % 4 or len(data) > 40:
            raise ValueError("TCP options must be padded to 4 bytes, at most 40")
        k = self._option_ids.get(data)
        if k is None:
            k = len(self.options)
            self._option_ids[data] = k
            self.options.append(data)
            self.ts_at.append(ts_at)
        return k

    def row(self, *values: int) -> None:
        """One packet: the values of :data:`COLUMNS` after ``ts`` and ``order``."""
        self.rows.append((values[0], self.order, *values[1:]))
        self.order += 1

    def block(self, n: int, **cols: np.ndarray | int) -> None:
        """``n`` packets at once; columns not given are 0 (``ipid`` -1: drawn at write time)."""
        arr = np.zeros((n, len(COLUMNS)), np.int64)
        arr[:, _COL["ipid"]] = -1
        for name, value in cols.items():
            arr[:, _COL[name]] = value
        arr[:, _COL["order"]] = np.arange(self.order, self.order + n)
        self.order += n
        self.chunks.append(arr)

    def table(self) -> np.ndarray:
        """All packets as one (n, len(COLUMNS)) array in capture order (time, then creation)."""
        parts = list(self.chunks)
        if self.rows:
            parts.append(np.array(self.rows, np.int64))
        arr = np.concatenate(parts) if parts else np.zeros((0, len(COLUMNS)), np.int64)
        return arr[np.lexsort((arr[:, _COL["order"]], arr[:, _COL["ts"]]))]


def col(name: str) -> int:
    """The position of a column in :data:`COLUMNS`."""
    return _COL[name]


def _put(buf: np.ndarray, pos: np.ndarray, values: np.ndarray, size: int) -> None:
    """Write ``values`` big-endian, ``size`` bytes each, at positions ``pos`` of ``buf``."""
    v = values.astype(np.int64)
    for k in range(size):
        buf[pos + k] = (v >> (8 * (size - 1 - k))) & 0xFF


def _put_le(buf: np.ndarray, pos: np.ndarray, values: np.ndarray, size: int) -> None:
    """Write ``values`` little-endian (the pcap record headers)."""
    v = values.astype(np.int64)
    for k in range(size):
        buf[pos + k] = (v >> (8 * k)) & 0xFF


def _copy(
    buf: np.ndarray, dst: np.ndarray, src_blob: np.ndarray, src: np.ndarray, lengths: np.ndarray
) -> None:
    """Copy ``lengths[i]`` bytes of ``src_blob`` from ``src[i]`` to ``buf[dst[i]:]``."""
    keep = lengths > 0
    dst, src, lengths = dst[keep], src[keep], lengths[keep]
    if not lengths.size:
        return
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    within = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
    buf[np.repeat(dst, lengths) + within] = src_blob[np.repeat(src, lengths) + within]


def _zero(buf: np.ndarray, start: np.ndarray, lengths: np.ndarray) -> None:
    """Zero ``lengths[i]`` bytes from ``start[i]``."""
    total = int(lengths.sum())
    if total:
        first = np.cumsum(lengths) - lengths
        buf[np.repeat(start - first, lengths) + np.arange(total)] = 0


class _WordSums:
    """Prefix sums of the buffer's 16-bit big-endian words at even and at odd offsets, so the
    one's-complement sum of any byte range is two lookups."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.even = np.r_[0, np.cumsum((buf[0:-1:2].astype(np.int64) << 8) | buf[1::2])]
        self.odd = np.r_[0, np.cumsum((buf[1:-1:2].astype(np.int64) << 8) | buf[2::2])]

    def __call__(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """The (unfolded) sums of ``buf[start:end]``, an odd last byte padded with zero."""
        words = (end - start) // 2
        first = start // 2
        last = first + words
        ev, od = len(self.even) - 1, len(self.odd) - 1  # both branches are evaluated: clip
        total = np.where(
            start % 2 == 0,
            self.even[np.minimum(last, ev)] - self.even[np.minimum(first, ev)],
            self.odd[np.minimum(last, od)] - self.odd[np.minimum(first, od)],
        )
        odd_len = (end - start) % 2 == 1
        return total + np.where(odd_len, self.buf[np.maximum(end - 1, 0)].astype(np.int64) << 8, 0)


def _fold(total: np.ndarray) -> np.ndarray:
    """Fold carries and complement: the Internet checksum of unfolded sums."""
    for _ in range(3):
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass
class _Layout:
    """Where each part of each frame sits in a batch buffer."""

    rec: np.ndarray  # pcap record header
    ip: np.ndarray
    l4: np.ndarray
    pay: np.ndarray
    end: np.ndarray  # end of the IP datagram (before Ethernet padding)
    size: int


def _layout(v6: np.ndarray, l4len: np.ndarray, plen: np.ndarray) -> tuple[_Layout, np.ndarray]:
    """Offsets of every part of every frame in a batch, and the frame lengths."""
    iplen = np.where(v6, 40, 20)
    frame = np.maximum(60, 14 + iplen + l4len + plen)
    rec = np.cumsum(16 + frame) - (16 + frame)
    ip = rec + 16 + 14
    l4 = ip + iplen
    pay = l4 + l4len
    end = pay + plen
    return _Layout(rec, ip, l4, pay, end, int((16 + frame).sum())), frame


class _Tables:
    """The lab's lookup tables as arrays (addresses, MACs, option templates, heads)."""

    def __init__(self, pk: Packets, rng: np.random.Generator) -> None:
        self.v6 = np.array([len(h.packed) == 16 for h in pk.hosts], bool)
        self.addr = np.zeros((len(pk.hosts), 16), np.uint8)
        for k, h in enumerate(pk.hosts):
            self.addr[k, : len(h.packed)] = np.frombuffer(h.packed, np.uint8)
        self.mac = np.array([np.frombuffer(h.mac, np.uint8) for h in pk.hosts]).reshape(-1, 6)
        words = self.addr[:, 0::2].astype(np.int64) * 256 + self.addr[:, 1::2]
        self.addr_sum = words.sum(axis=1)
        self.opt_len = np.array([len(o) for o in pk.options], np.int64)
        self.opt_off = np.cumsum(self.opt_len) - self.opt_len
        self.opt_blob = np.frombuffer(b"".join(pk.options) + b"\0", np.uint8)
        self.ts_at = np.array(pk.ts_at, np.int64)
        self.head_len = np.array([len(h) for h in pk.heads], np.int64)
        self.head_off = np.cumsum(self.head_len) - self.head_len
        self.head_blob = np.frombuffer(b"".join(pk.heads) + b"\0", np.uint8)
        self.filler = rng.integers(0, 256, _FILLER_SIZE + 65536, dtype=np.uint8)


def _l4_len(t: np.ndarray, tabs: _Tables) -> np.ndarray:
    """Transport header lengths (0 for later fragments, which carry none)."""
    proto = t[:, _COL["proto"]]
    first = (t[:, _COL["frag"]] & 0xFFFF) == 0
    tcp = 20 + tabs.opt_len[t[:, _COL["opt"]]]
    return np.where(first, np.where(proto == TCP, tcp, 8), 0)


def _write_ip(
    buf: np.ndarray, lay: _Layout, t: np.ndarray, tabs: _Tables, v6: np.ndarray, l4len: np.ndarray
) -> None:
    """IPv4 and IPv6 headers (IPv4 checksums come later, with the transport ones)."""
    src, dst = t[:, _COL["src"]], t[:, _COL["dst"]]
    proto, tos = t[:, _COL["proto"]], t[:, _COL["tos"]]
    datagram = l4len + t[:, _COL["plen"]]
    four = np.flatnonzero(~v6)
    ip = lay.ip[four]
    buf[ip] = 0x45
    buf[ip + 1] = tos[four]
    _put(buf, ip + 2, 20 + datagram[four], 2)
    _put(buf, ip + 4, t[four, _COL["ipid"]], 2)
    frag = t[four, _COL["frag"]]
    flags = np.where(frag == 0, 0x4000, np.where(frag & MORE_FRAGMENTS, 0x2000, 0))
    _put(buf, ip + 6, flags | (frag & 0x1FFF), 2)
    buf[ip + 8] = t[four, _COL["ttl"]]
    buf[ip + 9] = proto[four]
    for k in range(4):
        buf[ip + 12 + k] = tabs.addr[src[four], k]
        buf[ip + 16 + k] = tabs.addr[dst[four], k]
    six = np.flatnonzero(v6)
    ip = lay.ip[six]
    _put(buf, ip, (6 << 28) | (tos[six] << 20) | (t[six, _COL["ipid"]] & 0xFFFFF), 4)
    _put(buf, ip + 4, datagram[six], 2)
    buf[ip + 6] = proto[six]
    buf[ip + 7] = t[six, _COL["ttl"]]
    for k in range(16):
        buf[ip + 8 + k] = tabs.addr[src[six], k]
        buf[ip + 24 + k] = tabs.addr[dst[six], k]


def _write_l4(
    buf: np.ndarray, lay: _Layout, t: np.ndarray, tabs: _Tables, l4len: np.ndarray, v6: np.ndarray
) -> None:
    """TCP (options, timestamps), UDP and ICMP headers; checksums come later."""
    proto = t[:, _COL["proto"]]
    has = l4len > 0
    tcp = np.flatnonzero(has & (proto == TCP))
    p = lay.l4[tcp]
    for name, at, size in (
        ("sport", 0, 2),
        ("dport", 2, 2),
        ("seq", 4, 4),
        ("ack", 8, 4),
        ("win", 14, 2),
    ):
        _put(buf, p + at, t[tcp, _COL[name]], size)
    buf[p + 12] = (l4len[tcp] // 4) << 4
    buf[p + 13] = t[tcp, _COL["flags"]]
    opt = t[tcp, _COL["opt"]]
    _copy(buf, p + 20, tabs.opt_blob, tabs.opt_off[opt], tabs.opt_len[opt])
    stamped = np.flatnonzero(tabs.ts_at[opt] >= 0)
    at = p[stamped] + 20 + tabs.ts_at[opt[stamped]]
    _put(buf, at, t[tcp[stamped], _COL["tsval"]], 4)
    _put(buf, at + 4, t[tcp[stamped], _COL["tsecr"]], 4)
    udp = np.flatnonzero(has & (proto == UDP))
    p = lay.l4[udp]
    _put(buf, p, t[udp, _COL["sport"]], 2)
    _put(buf, p + 2, t[udp, _COL["dport"]], 2)
    whole = t[udp, _COL["seq"]]  # a fragmented datagram's UDP length (0: this packet's)
    _put(buf, p + 4, np.where(whole > 0, whole, 8 + t[udp, _COL["plen"]]), 2)
    icmp = np.flatnonzero(has & ((proto == ICMP) | (proto == ICMP6)))
    p = lay.l4[icmp]
    _put(buf, p, t[icmp, _COL["sport"]], 2)  # type and code
    _put(buf, p + 4, t[icmp, _COL["seq"]], 4)  # identifier and sequence (rest of header)


def _checksums(
    buf: np.ndarray, lay: _Layout, t: np.ndarray, tabs: _Tables, l4len: np.ndarray, v6: np.ndarray
) -> None:
    """IPv4 header checksums and transport checksums (pseudo-header included, except ICMPv4);
    a fragmented IPv4 UDP datagram carries 0 ("no checksum"): its payload spans packets."""
    sums = _WordSums(buf)
    ip = lay.ip[~v6]
    ip_sum = _fold(sums(ip, ip + 20))
    proto = t[:, _COL["proto"]]
    has = l4len > 0
    whole = t[:, _COL["frag"]] == 0
    todo = np.flatnonzero(has & (whole | v6))
    start, end = lay.l4[todo], lay.end[todo]
    total = sums(start, end)
    pr = proto[todo]
    pseudo = (
        tabs.addr_sum[t[todo, _COL["src"]]]
        + tabs.addr_sum[t[todo, _COL["dst"]]]
        + pr
        + (end - start)
    )
    total = total + np.where(pr == ICMP, 0, pseudo)
    csum = _fold(total)
    at = np.where(pr == TCP, 16, np.where(pr == UDP, 6, 2))
    is_udp = pr == UDP
    csum = np.where(is_udp & (csum == 0), 0xFFFF, csum)  # UDP: 0 would mean "none"
    _put(buf, start + at, csum, 2)
    _put(buf, ip + 10, ip_sum, 2)


def _batch(t: np.ndarray, tabs: _Tables) -> bytes:
    """The pcap records of one batch of packets."""
    v6 = tabs.v6[t[:, _COL["src"]]]
    l4len = _l4_len(t, tabs)
    plen = t[:, _COL["plen"]]
    lay, frame = _layout(v6, l4len, plen)
    # payload bytes: the seeded filler at each byte's own position (one bulk copy, no per-byte
    # indexing); headers are written over it, Ethernet padding is zeroed
    reps = -(-lay.size // tabs.filler.size)
    buf = np.tile(tabs.filler, reps)[: lay.size]
    pad = np.flatnonzero(lay.end < lay.rec + 16 + frame)
    _zero(buf, lay.end[pad], lay.rec[pad] + 16 + frame[pad] - lay.end[pad])
    _zero(buf, lay.rec, lay.pay - lay.rec)
    ts = t[:, _COL["ts"]]
    _put_le(buf, lay.rec, ts // 1_000_000, 4)
    _put_le(buf, lay.rec + 4, ts % 1_000_000, 4)
    _put_le(buf, lay.rec + 8, frame, 4)
    _put_le(buf, lay.rec + 12, frame, 4)
    eth = lay.rec + 16
    for k in range(6):
        buf[eth + k] = tabs.mac[t[:, _COL["dst"]], k]
        buf[eth + 6 + k] = tabs.mac[t[:, _COL["src"]], k]
    _put(buf, eth + 12, np.where(v6, 0x86DD, 0x0800), 2)
    head = t[:, _COL["head"]]
    _copy(buf, lay.pay, tabs.head_blob, tabs.head_off[head], np.minimum(tabs.head_len[head], plen))
    _write_ip(buf, lay, t, tabs, v6, l4len)
    _write_l4(buf, lay, t, tabs, l4len, v6)
    _checksums(buf, lay, t, tabs, l4len, v6)
    return buf.tobytes()


def to_pcap(pk: Packets, rng: np.random.Generator) -> tuple[bytes, int]:
    """The packets as a classic pcap (Ethernet, microseconds) and their number."""
    t = pk.table()
    tabs = _Tables(pk, rng)
    mixed = tabs.v6[t[:, _COL["src"]]] != tabs.v6[t[:, _COL["dst"]]]
    if mixed.any():
        k = int(np.flatnonzero(mixed)[0])
        raise ValueError(
            f"a lab packet mixes IPv4 and IPv6: {pk.hosts[t[k, _COL['src']]].ip} → "
            f"{pk.hosts[t[k, _COL['dst']]].ip}"
        )
    ipid = t[:, _COL["ipid"]]
    drawn = rng.integers(0, 1 << 16, len(t))
    t[:, _COL["ipid"]] = np.where(ipid < 0, drawn, ipid)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    per = np.maximum(60, 70 + t[:, _COL["plen"]])
    bounds = np.searchsorted(np.cumsum(per), np.arange(_CHUNK_BYTES, int(per.sum()), _CHUNK_BYTES))
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(t)], strict=True):
        if hi > lo:
            out.append(_batch(t[lo:hi], tabs))
    return b"".join(out), len(t)
