"""A seeded generator of damaged captures, with what a reader must make of each one.

Valid captures are built here (classic pcap in both byte orders, µs and ns; pcapng in both byte
orders with one or two interfaces, µs or ns resolution) from dpkt-crafted frames, or taken from
real captures. Each one is described as a list of :class:`Record` (where each packet record or
block lies, its time and bytes) by the small parsers below, which are checked against dpkt on the
undamaged files (``check_layout``). A damage function then returns a :class:`Case`: the damaged
bytes, the packets a reader must still return (the original's minus exactly the damaged ones),
and the byte ranges it must report as skipped.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import dpkt
import numpy as np
from craft import C, Pkt, S, frame

from flowsentinel.capture import ReadCounters, iter_records

PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
SHB, IDB, EPB, SPB = 0x0A0D0D0A, 1, 6, 3
YEAR_S = 365 * 86_400


@dataclass(frozen=True)
class Record:
    """One packet record (pcap) or block (pcapng) of a capture."""

    start: int  # file offset of its header / block
    length: int  # bytes of the record or block
    ts_us: int  # -1: not a packet (a pcapng block without one)
    data: bytes
    kind: int = 0  # pcapng block type (0 for pcap records)
    iface: int = 0


@dataclass
class Capture:
    """A valid capture and its layout."""

    name: str
    data: bytes
    fmt: str  # "pcap" or "pcapng"
    big: bool
    records: list[Record]  # pcap: packet records; pcapng: every block after the first SHB
    header: int  # bytes before the first record (pcap: 24; pcapng: the SHB)

    @property
    def packets(self) -> list[Record]:
        return [r for r in self.records if r.ts_us >= 0]

    def order(self) -> str:
        return ">" if self.big else "<"


@dataclass
class Case:
    """A damaged capture and what reading it must give."""

    name: str
    data: bytes
    expected: list[tuple[int, bytes]]  # packets that must be read, in file order
    ranges: list[tuple[int, int]] | None = None  # exactly the skipped ranges (None: see span)
    span: tuple[int, int] | None = None  # every skipped byte lies in here
    extra: int = 0  # at most this many more packets (damaged ones read as they are)
    error: str | None = None  # the InputError the reader must raise
    unreadable: int = 0  # packets of an unreadable interface
    counters: dict[str, int] = field(default_factory=dict)  # other ReadCounters fields


# ---------------------------------------------------------------------------------------------
# valid captures


def crafted_packets(rng: np.random.Generator, n: int = 24) -> list[tuple[int, bytes]]:
    """n dpkt-crafted frames of random size (TCP, UDP, ICMP), 1 ms to 2 s apart."""
    t = 1_500_000_000_000_000 + int(rng.integers(0, 10**9))
    out = []
    for _ in range(n):
        t += int(rng.integers(1_000, 2_000_000))
        proto = int(rng.choice([6, 17, 1]))
        pkt = Pkt(0, C, S, int(rng.integers(1024, 65535)), 80, proto=proto,
                  payload=int(rng.integers(0, 900)))  # fmt: skip
        out.append((t, frame(pkt)))
    return out


def pcap_capture(
    packets: list[tuple[int, bytes]], *, big: bool = False, nano: bool = False, name: str = ""
) -> Capture:
    o = ">" if big else "<"
    magic = PCAP_MAGIC_NS if nano else PCAP_MAGIC_US
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 65_535, 1)]
    records, pos = [], 24
    for ts, data in packets:
        frac = ts % 1_000_000 * (1000 if nano else 1)
        out.append(struct.pack(o + "IIII", ts // 1_000_000, frac, len(data), len(data)) + data)
        records.append(Record(pos, 16 + len(data), ts, data))
        pos += 16 + len(data)
    fmt = f"pcap-{'be' if big else 'le'}-{'ns' if nano else 'us'}"
    return Capture(name or fmt, b"".join(out), "pcap", big, records, 24)


def _block(o: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n)


def shb(big: bool) -> bytes:
    o = ">" if big else "<"
    return _block(o, SHB, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(big: bool, linktype: int = 1, tsresol: int = 6, options: bytes | None = None) -> bytes:
    o = ">" if big else "<"
    if options is None:
        options = struct.pack(o + "HHB3x", 9, 1, tsresol) + struct.pack(o + "HH", 0, 0)
    return _block(o, IDB, struct.pack(o + "HHI", linktype, 0, 262_144) + options)


def epb(big: bool, iface: int, raw_ts: int, data: bytes) -> bytes:
    o = ">" if big else "<"
    head = struct.pack(o + "IIIII", iface, raw_ts >> 32, raw_ts & 0xFFFFFFFF, len(data), len(data))
    return _block(o, EPB, head + data)


def pcapng_capture(
    packets: list[tuple[int, bytes]],
    *,
    big: bool = False,
    tsresol: int = 6,
    interfaces: int = 1,
    name: str = "",
) -> Capture:
    """A one-section pcapng; with two interfaces, packets alternate between them."""
    scale = 10 ** (tsresol - 6)
    parts = [shb(big)] + [idb(big, tsresol=tsresol) for _ in range(interfaces)]
    for k, (ts, data) in enumerate(packets):
        parts.append(epb(big, k % interfaces, ts * scale, data))
    data = b"".join(parts)
    fmt = f"pcapng-{'be' if big else 'le'}-{'ns' if tsresol == 9 else 'us'}-{interfaces}if"
    return layout(data, name or fmt)


# ---------------------------------------------------------------------------------------------
# parsers (the layout of a valid capture)


def layout(data: bytes, name: str) -> Capture:
    """Where every record or block of a valid capture lies, with its packet's time and bytes."""
    if data[:4] == struct.pack(">I", SHB):
        return _pcapng_layout(data, name)
    magic = struct.unpack("<I", data[:4])[0]
    big = magic in (0xD4C3B2A1, 0x4D3CB2A1)
    o = ">" if big else "<"
    nano = struct.unpack(o + "I", data[:4])[0] == PCAP_MAGIC_NS
    records, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(o + "IIII", data[pos : pos + 16])
        ts = sec * 1_000_000 + (frac // 1000 if nano else frac)
        records.append(Record(pos, 16 + incl, ts, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return Capture(name, data, "pcap", big, records, 24)


def _pcapng_layout(data: bytes, name: str) -> Capture:
    big = data[8:12] == b"\x1a\x2b\x3c\x4d"
    o = ">" if big else "<"
    header = struct.unpack(o + "I", data[4:8])[0]
    resol: list[int] = []
    records, pos = [], header
    while pos + 12 <= len(data):
        btype, blen = struct.unpack(o + "II", data[pos : pos + 8])
        body = data[pos + 8 : pos + blen - 4]
        ts, pkt, iface = -1, b"", 0
        if btype == IDB:
            resol.append(_tsresol(body, o))
        elif btype == EPB:
            iface, hi, lo, cap = struct.unpack(o + "IIII", body[:16])
            ts = ((hi << 32) | lo) // resol[iface]
            pkt = body[20 : 20 + cap]
        elif btype == SPB:
            raise ValueError("simple packet blocks are not used by this corpus")
        records.append(Record(pos, blen, ts, pkt, btype, iface))
        pos += blen
    return Capture(name, data, "pcapng", big, records, header)


def _tsresol(body: bytes, o: str) -> int:
    """Raw time units per microsecond (decimal resolutions of at least µs only)."""
    p = 8
    while p + 4 <= len(body):
        code, length = struct.unpack(o + "HH", body[p : p + 4])
        if code == 0:
            break
        if code == 9:
            return 10 ** (body[p + 4] - 6)
        p += 4 + length + (-length % 4)
    return 1


def dpkt_packets(data: bytes) -> list[tuple[int, bytes]]:
    """The packets of a capture as dpkt reads them (time rounded to µs)."""
    fh = io.BytesIO(data)
    reader = dpkt.pcapng.Reader(fh) if data[:4] == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
    return [(_us(ts), bytes(buf)) for ts, buf in reader]


def _us(ts: float | Decimal) -> int:
    """dpkt's time in µs: nanosecond files give an exact Decimal (cut to µs, as we do)."""
    return int(ts * 1_000_000) if isinstance(ts, Decimal) else round(ts * 1e6)


def check_layout(cap: Capture) -> None:
    """The layout parser agrees with dpkt on the undamaged capture."""
    ours = [(r.ts_us, r.data) for r in cap.packets]
    theirs = dpkt_packets(cap.data)
    assert [d for _, d in ours] == [d for _, d in theirs], cap.name
    assert all(abs(a - b) <= 1 for (a, _), (b, _) in zip(ours, theirs, strict=True)), cap.name


def real_capture(path: Path) -> Capture:
    return layout(path.read_bytes(), path.name)


# ---------------------------------------------------------------------------------------------
# reading them with the reader under test


def read(data: bytes, chunk: int | None = None) -> tuple[list[tuple[int, bytes]], ReadCounters]:
    """(time, bytes) of every packet our reader returns, and its counters; with `chunk`, the
    file is read in chunks of that many bytes and batches of 7 packets (every boundary case)."""
    counters = ReadCounters()
    kwargs = {"chunk_bytes": chunk, "batch_packets": 7} if chunk else {}
    got: list[tuple[int, bytes]] = []
    for b in iter_records(data, counters, **kwargs):
        buf = b.buf
        got += [
            (t, bytes(buf[o : o + c]))
            for o, c, t in zip(b.offset.tolist(), b.caplen.tolist(), b.ts_us.tolist(), strict=True)
        ]
    return got, counters


def same(got: list[tuple[int, bytes]], want: list[tuple[int, bytes]]) -> bool:
    """The same packets in the same order (times within 1 µs: dpkt's are floats)."""
    return len(got) == len(want) and all(
        g[1] == w[1] and abs(g[0] - w[0]) <= 1 for g, w in zip(got, want, strict=True)
    )


def is_subsequence(want: list[tuple[int, bytes]], got: list[tuple[int, bytes]]) -> bool:
    it = iter(got)
    return all(any(g[1] == w[1] and abs(g[0] - w[0]) <= 1 for g in it) for w in want)


# ---------------------------------------------------------------------------------------------
# damage


def _packets(records: list[Record]) -> list[tuple[int, bytes]]:
    return [(r.ts_us, r.data) for r in records if r.ts_us >= 0]


def _without(cap: Capture, lost: Record) -> list[tuple[int, bytes]]:
    return _packets([r for r in cap.records if r is not lost])


def _pick(cap: Capture, rng: np.random.Generator, kind: int | None = None) -> Record:
    pool = [r for r in cap.records if (kind is None and r.ts_us >= 0) or r.kind == kind]
    return pool[int(rng.integers(0, len(pool)))]


def _put(data: bytes, pos: int, value: bytes) -> bytes:
    return data[:pos] + value + data[pos + len(value) :]


def _u32(cap: Capture, value: int) -> bytes:
    return struct.pack(cap.order() + "I", value & 0xFFFFFFFF)


def _lost(cap: Capture, rec: Record, claimed_end: int) -> dict[str, int]:
    """How a reader counts a damaged record: the last one, claiming to run past the end of
    the file, looks cut (truncated); any other is corrupt."""
    last = rec.start + rec.length == len(cap.data)
    return {"truncated_records" if last and claimed_end > len(cap.data) else "corrupt_records": 1}


def cut_header(cap: Capture, rng: np.random.Generator) -> Case:
    if cap.fmt == "pcap":
        k = int(rng.integers(4, 24))
        return Case(f"{cap.name}: cut at {k}", cap.data[:k], [], error="cut inside its 24-byte")
    k = int(rng.integers(12, cap.header))
    return Case(f"{cap.name}: cut at {k}", cap.data[:k], [], error="cut inside its section header")


def damaged_byte_order(cap: Capture, rng: np.random.Generator) -> Case:
    """The byte-order magic of the section header: the order is found from its lengths."""
    k = int(rng.integers(8, 12))
    data = _put(cap.data, k, bytes([cap.data[k] ^ (1 << int(rng.integers(0, 8)))]))
    return Case(
        f"{cap.name}: byte-order magic damaged at {k}",
        data,
        _packets(cap.records),
        ranges=[(0, cap.header)],
        counters={"corrupt_records": 1},
    )


def cut_record(cap: Capture, rng: np.random.Generator) -> Case:
    rec = _pick(cap, rng)
    cut = int(rng.integers(rec.start + 1, rec.start + rec.length))
    kept = [r for r in cap.records if r.start + r.length <= rec.start]
    return Case(
        f"{cap.name}: cut inside the record at {rec.start}",
        cap.data[:cut],
        _packets(kept),
        ranges=[(rec.start, cut - rec.start)],
        counters={"truncated_records": 1},
    )


def _record_boundaries(cap: Capture) -> set[int]:
    return {r.start for r in cap.records} | {len(cap.data)}


def bad_pcap_length(cap: Capture, rng: np.random.Generator, mode: str) -> Case:
    """A classic pcap record with an impossible (or overreaching) captured length."""
    rec = _pick(cap, rng)
    incl = rec.length - 16
    header = cap.data[rec.start : rec.start + 16]
    orig = struct.unpack(cap.order() + "I", header[12:16])[0]
    if mode == "huge":
        incl = int(rng.integers(1 << 20, 1 << 32))
    elif mode == "beyond_snap":
        incl = int(rng.integers(65_536, 262_145))
    elif mode == "zero":
        incl = 0
    elif mode == "above_wire":
        incl = orig + int(rng.integers(1, 64))
    else:  # "overreach": captured and wire lengths both grow, over the next records or the end
        bounds = _record_boundaries(cap)
        incl += int(rng.integers(1, 3000))
        while rec.start + 16 + incl in bounds:
            incl += 1
        orig = incl
    data = _put(cap.data, rec.start + 8, _u32(cap, incl) + _u32(cap, orig))
    return Case(
        f"{cap.name}: {mode} length at {rec.start}",
        data,
        _without(cap, rec),
        ranges=[(rec.start, rec.length)],
        counters=_lost(cap, rec, rec.start + 16 + incl),
    )


def bad_block_length(cap: Capture, rng: np.random.Generator, mode: str, kind: int = EPB) -> Case:
    """A pcapng block whose leading or trailing length is damaged."""
    rec = _pick(cap, rng, kind)
    if mode == "trailer":
        pos, value = rec.start + rec.length - 4, rec.length + 4 * int(rng.integers(1, 100))
    else:
        pos = rec.start + 4
        value = {
            "not4": rec.length + int(rng.integers(1, 4)),
            "huge": int(rng.integers(1 << 23, 1 << 32)),
            "small": int(rng.integers(0, 3)) * 4,
            "longer": rec.length + 4 * int(rng.integers(1, 800)),
            "shorter": max(12, rec.length - 4 * int(rng.integers(1, 8))),
        }[mode]
    claimed_end = rec.start + (rec.length if mode == "trailer" else value)
    return Case(
        f"{cap.name}: {mode} length of the block at {rec.start}",
        _put(cap.data, pos, _u32(cap, value)),
        _without(cap, rec),
        ranges=[(rec.start, rec.length)],
        counters=_lost(cap, rec, claimed_end),
    )


def bad_captured_length(cap: Capture, rng: np.random.Generator) -> Case:
    """An enhanced packet block whose captured length runs past the block."""
    rec = _pick(cap, rng, EPB)
    value = rec.length - 32 + int(rng.integers(1, 5000))
    return Case(
        f"{cap.name}: captured length past the block at {rec.start}",
        _put(cap.data, rec.start + 20, _u32(cap, value)),
        _without(cap, rec),
        ranges=[(rec.start, rec.length)],
        counters={"corrupt_records": 1},
    )


def _options(cap: Capture, rec: Record) -> dict[int, int]:
    """Option code → file offset of the option, for an interface description block."""
    o, out, p = cap.order(), {}, rec.start + 16
    while p + 4 <= rec.start + rec.length - 4:
        code, length = struct.unpack(o + "HH", cap.data[p : p + 4])
        if code == 0:
            break
        out.setdefault(code, p)
        p += 4 + length + (-length % 4)
    return out


def damaged_idb(cap: Capture, rng: np.random.Generator, mode: str) -> Case:
    """One interface description damaged: only that interface's packets are lost."""
    idbs = [r for r in cap.records if r.kind == IDB]
    k = int(rng.integers(0, len(idbs)))
    rec = idbs[k]
    options = _options(cap, rec)
    if mode == "option" and options:  # the first option's length runs past the block
        patch = (min(options.values()) + 2, struct.pack(cap.order() + "H", 0xFFF0))
    elif mode == "resolution" and 9 in options:  # if_tsresol 10**-127
        patch = (options[9] + 4, b"\x7f")
    elif mode == "length":
        patch = (rec.start + 4, _u32(cap, rec.length + 2))
    else:  # "trailer" (and the option modes of a description without such options)
        patch = (rec.start + rec.length - 4, _u32(cap, rec.length + 8))
    lost = [r for r in cap.records if r.kind == EPB and r.iface == k]
    kept = [r for r in cap.records if r.ts_us >= 0 and r.iface != k]
    return Case(
        f"{cap.name}: {mode} of interface {k} damaged",
        _put(cap.data, *patch),
        _packets(kept),
        ranges=[(rec.start, rec.length)],
        unreadable=len(lost),
        counters={"corrupt_records": 1},
    )


def insert_block(cap: Capture, rng: np.random.Generator, btype: int) -> Case:
    """A block without packets inserted between two blocks (undefined type, custom, NRB)."""
    rec = _pick(cap, rng)
    body = bytes(rng.integers(0, 256, int(rng.integers(0, 40)) * 4, dtype=np.uint8))
    if btype == 0xBAD:
        body = struct.pack(cap.order() + "I", 32473) + body  # private enterprise number
    block = _block(cap.order(), btype, body)
    counter = "unknown_blocks" if btype in (4, 5, 0xBAD) else "unknown_block_types"
    return Case(
        f"{cap.name}: block type {btype:#x} inserted at {rec.start}",
        cap.data[: rec.start] + block + cap.data[rec.start :],
        _packets(cap.records),
        ranges=[],
        counters={counter: 1},
    )


def damaged_block_type(cap: Capture, rng: np.random.Generator) -> Case:
    """A packet block whose type field is damaged is skipped (counted) as an unknown block."""
    rec = _pick(cap, rng, EPB)
    return Case(
        f"{cap.name}: block type damaged at {rec.start}",
        _put(cap.data, rec.start, _u32(cap, 0x00DEAD00)),
        _without(cap, rec),
        ranges=[],
        counters={"unknown_block_types": 1},
    )


def unknown_link_type(cap: Capture, rng: np.random.Generator) -> Case:
    rec = _pick(cap, rng, IDB)
    data = _put(cap.data, rec.start + 8, struct.pack(cap.order() + "H", 65_000))
    return Case(f"{cap.name}: link type 65000", data, _packets(cap.records), ranges=[])


def insert_junk(cap: Capture, rng: np.random.Generator) -> Case:
    """Random bytes between two records (any length, so later blocks lose their alignment)."""
    rec = _pick(cap, rng)
    junk = bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8))
    return Case(
        f"{cap.name}: {len(junk)} junk bytes at {rec.start}",
        cap.data[: rec.start] + junk + cap.data[rec.start :],
        _packets(cap.records),
        ranges=[(rec.start, len(junk))],
        counters={"corrupt_records": 1},
    )


def overwrite(cap: Capture, rng: np.random.Generator, fill: str) -> Case:
    """Random bytes or zeros over a span of the file: the records outside it are all read."""
    # after the interface descriptions: a description whose type field is destroyed cannot
    # be known to have been there (see docs/capture.md); damaged_idb covers them
    first = max([cap.header] + [r.start + r.length for r in cap.records if r.kind == IDB])
    a = int(rng.integers(first, len(cap.data) - 1))
    b = min(len(cap.data), a + int(rng.integers(1, 2500)))
    random = bytes(rng.integers(0, 256, b - a, dtype=np.uint8))
    patch = bytes(b - a) if fill == "zeros" else random
    hit = [r for r in cap.records if r.start < b and r.start + r.length > a]
    outside = [r for r in cap.records if r not in hit]
    hit_packets = [r for r in hit if r.ts_us >= 0 or r.kind == EPB]
    return Case(
        f"{cap.name}: {fill} over {a}..{b}",
        _put(cap.data, a, patch),
        _packets(outside),
        span=(min(r.start for r in hit), max(r.start + r.length for r in hit)),
        extra=len(hit_packets),
    )


def shift_times(cap: Capture, rng: np.random.Generator, mode: str) -> Case:
    """Clocks that jump by years (forward or backward) or packets out of time order: data,
    not damage. Every packet is read, with its time as written."""
    packets = cap.packets
    if mode == "jump":
        k = int(rng.integers(1, len(packets)))
        years = int(rng.integers(1, 20)) * int(rng.choice([-1, 1]))
        new_ts = [r.ts_us + (years * YEAR_S * 1_000_000 if i >= k else 0)
                  for i, r in enumerate(packets)]  # fmt: skip
    else:
        new_ts = [packets[i].ts_us for i in rng.permutation(len(packets))]
    data = bytearray(cap.data)
    for rec, ts in zip(packets, new_ts, strict=True):
        field = _time_field(cap, rec, ts)
        data[rec.start : rec.start + len(field)] = field
    expected = [(ts, r.data) for r, ts in zip(packets, new_ts, strict=True)]
    return Case(f"{cap.name}: times {mode}", bytes(data), expected, ranges=[])


def _time_field(cap: Capture, rec: Record, ts: int) -> bytes:
    """The header bytes from the record's start up to and including its time."""
    o = cap.order()
    head = cap.data[rec.start : rec.start + 20]
    if cap.fmt == "pcap":
        nano = struct.unpack(o + "I", cap.data[:4])[0] == PCAP_MAGIC_NS
        frac = ts % 1_000_000 * (1000 if nano else 1)
        return struct.pack(o + "II", ts // 1_000_000, frac)
    scale = _scale(cap, rec.iface)
    raw = ts * scale
    return head[:12] + struct.pack(o + "II", raw >> 32, raw & 0xFFFFFFFF)


def _scale(cap: Capture, iface: int) -> int:
    idbs = [r for r in cap.records if r.kind == IDB]
    body = cap.data[idbs[iface].start + 8 : idbs[iface].start + idbs[iface].length - 4]
    return _tsresol(body, cap.order())


def two_sections(first: Capture, second: Capture) -> Case:
    """Two pcapng sections of opposite byte orders, one after the other: all packets read."""
    data = first.data + second.data
    return Case(
        f"{first.name} + {second.name}", data, _packets(first.records + second.records), ranges=[]
    )


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to five random edits: a bit flip, random bytes over a span, a cut, bytes inserted
    or deleted (what a bad disk, a bad copy or a bad merge does to a file)."""
    d = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        if len(d) < 2:
            break
        a = int(rng.integers(0, len(d)))
        b = min(len(d), a + int(rng.integers(1, 3000)))
        op = int(rng.integers(0, 5))
        if op == 0:
            d[a] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:
            d[a:b] = bytes(rng.integers(0, 256, b - a, dtype=np.uint8))
        elif op == 2:
            del d[a:]
        elif op == 3:
            d[a:a] = bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8))
        else:
            del d[a:b]
    return bytes(d)


# ---------------------------------------------------------------------------------------------


Damage = Callable[[Capture, np.random.Generator], Case]


PCAP_LENGTHS = ("huge", "beyond_snap", "zero", "above_wire", "overreach")


def _modes(label: str, damage: Callable[..., Case], modes: tuple) -> list[tuple[str, Damage]]:
    return [(label.format(m), lambda c, r, m=m: damage(c, r, m)) for m in modes]


PCAP_DAMAGE: list[tuple[str, Damage]] = [
    ("cut header", cut_header),
    ("cut record", cut_record),
    *_modes("{} length", bad_pcap_length, PCAP_LENGTHS),
    ("junk", insert_junk),
    *_modes("{}", overwrite, ("random", "zeros")),
    *_modes("times {}", shift_times, ("jump", "shuffle")),
]

PCAPNG_DAMAGE: list[tuple[str, Damage]] = [
    ("cut header", cut_header),
    ("byte order", damaged_byte_order),
    ("cut block", cut_record),
    *_modes(
        "{} block length",
        bad_block_length,
        ("not4", "huge", "small", "longer", "shorter", "trailer"),
    ),
    ("captured length", bad_captured_length),
    *_modes("idb {}", damaged_idb, ("length", "trailer", "option", "resolution")),
    *_modes("block type {:#x}", insert_block, (0x1234, 0xBAD, 4)),
    ("damaged type", damaged_block_type),
    ("link type", unknown_link_type),
    ("junk", insert_junk),
    *_modes("{}", overwrite, ("random", "zeros")),
    *_modes("times {}", shift_times, ("jump", "shuffle")),
]


def corpus(seed: int, real: list[Path]) -> list[Case]:
    """Every damage on every base capture (crafted variants, then the real ones), seeded."""
    rng = np.random.default_rng(seed)
    packets = crafted_packets(rng)
    bases = [pcap_capture(packets, big=b, nano=n) for b in (False, True) for n in (False, True)]
    bases += [
        pcapng_capture(packets, big=b, tsresol=t, interfaces=i)
        for b in (False, True)
        for t, i in ((6, 1), (9, 2))
    ]
    bases += [real_capture(p) for p in real]
    cases = []
    for cap in bases:
        table = PCAP_DAMAGE if cap.fmt == "pcap" else PCAPNG_DAMAGE
        for label, damage in table:
            case = damage(cap, rng)
            cases.append(replace(case, name=f"{label} / {case.name}"))
    ng = [c for c in bases if c.fmt == "pcapng"]
    cases.append(two_sections(ng[0], ng[1]))
    return cases
