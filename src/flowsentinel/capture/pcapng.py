"""pcapng: blocks walked by their own lengths, damaged ones skipped and counted.

A block is whole when its length is at least its type's minimum, a multiple of 4, at most
``MAX_BLOCK``, and repeated unchanged after its body. The numba walker emits the packets of
enhanced, simple and obsolete packet blocks and stops at any other block (section header,
interface description, statistics...) for Python to read it. A block whose lengths disagree is
damaged: the walker scans forward, byte by byte, for the next plausible block (a type the format
defines, consistent lengths) and counts the bytes in between as a skipped range. A packet block
whose lengths agree but whose captured length runs past its body is skipped by its length.

An interface description that cannot be read (a damaged block whose type says interface
description, options running past the block, an impossible time resolution or offset) keeps
its place in the section's interface list, so only the packets of that interface are lost:
they are counted as unreadable, and the rest of the file is read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from flowsentinel.capture.kernels import kernel
from flowsentinel.capture.records import (
    MAX_RECORD,
    ST_LOST_IDB,
    ST_RESYNC,
    ST_TRUNCATED,
    ReadCounters,
    RecordBatch,
    Source,
    add_range,
    count_rest,
    end_resync,
    new_state,
    start_resync,
    u16,
    u32,
)
from flowsentinel.core.errors import InputError

SHB = 0x0A0D0D0A
MAX_BLOCK = 16 * MAX_RECORD
IDB, OPB, SPB, EPB = 1, 2, 3, 6
# blocks the format defines that hold no packet: name resolution, statistics, IRIG, ARINC,
# systemd journal, decryption secrets, custom blocks
NON_PACKET_TYPES = frozenset({4, 5, 7, 8, 9, 10, 0xBAD, 0x40000BAD})


# ---------------------------------------------------------------------------------------------
# numba block walker


@kernel()
def _min_len(btype):  # pragma: no cover - numba
    if btype in (EPB, OPB):
        return 32
    if btype == SPB:
        return 16
    if btype == IDB:
        return 20
    if btype == SHB:
        return 28
    return 12


@kernel("int64(uint8[:], int64)")
def _shb_order(buf, p):  # pragma: no cover - numba
    """1 big-endian, 0 little-endian, -1 no byte-order magic at p + 8."""
    a, b, c, d = buf[p + 8], buf[p + 9], buf[p + 10], buf[p + 11]
    if a == 0x1A and b == 0x2B and c == 0x3C and d == 0x4D:
        return 1
    if a == 0x4D and b == 0x3C and c == 0x2B and d == 0x1A:
        return 0
    return -1


@kernel()
def _defined(btype):  # pragma: no cover - numba
    """A block type the format defines (what resynchronisation accepts)."""
    return (btype >= 1 and btype <= 10) or btype == SHB or btype == 0xBAD or btype == 0x40000BAD


@kernel()
def _block(buf, p, end, at_eof, big, strict):  # pragma: no cover - numba
    """1 if a whole block starts at p, 0 if not, -1 if that needs the bytes after end.

    strict (resynchronising): the type must also be one the format defines."""
    if p + 12 > end:
        return 0 if at_eof else -1
    btype = u32(buf, p, big)
    if btype == SHB:
        order = _shb_order(buf, p)
        if order < 0:
            return 0
        big = order == 1
    elif strict and not _defined(btype):
        return 0
    blen = u32(buf, p + 4, big)
    if blen < _min_len(btype) or blen % 4 != 0 or blen > MAX_BLOCK:
        return 0
    if p + blen > end:
        return 0 if at_eof else -1
    return 1 if u32(buf, p + blen - 4, big) == blen else 0


@kernel("UniTuple(int64, 2)(uint8[:], int64, int64, int64, boolean, boolean)")
def _scan(buf, p, stop, end, at_eof, big):  # pragma: no cover - numba
    """The first offset in [p, stop) where a plausible block starts (or where more bytes are
    needed to tell), with _block's answer; (stop, 0) if none."""
    while p < stop:
        r = _block(buf, p, end, at_eof, big, True)
        if r != 0:
            return p, r
        p += 1
    return stop, 0


@kernel()
def _resync(buf, pos, end, base, at_eof, big, st, ranges):  # pragma: no cover - numba
    q, r = _scan(buf, pos, end, end, at_eof, big)
    if r == 1:
        end_resync(st, ranges, base + q, False)
        return q, True
    if r == -1 or not at_eof:
        return q, False
    end_resync(st, ranges, base + end, True)
    return end, False


@kernel("boolean(uint8[:], int64, int64, boolean)")
def _damaged_at_end(buf, pos, end, big):  # pragma: no cover - numba
    """At the end of the file, a block running past it: damaged (blocks follow) or cut."""
    _, r = _scan(buf, pos + 1, end, end, True, big)
    return r == 1


@kernel(
    "UniTuple(int64, 3)(uint8[:], int64, int64, int64, boolean, boolean, int64[:], int64[:, "
    "::1], int64[:], int32[:], int32[:], int64[:], int64[:])"
)
def walk_pcapng(buf, pos, end, base, big, at_eof, st, ranges, off, cap, wire, tsraw, iface):
    """Walk pcapng blocks in buf[pos:end] (buf[0] is byte `base` of the file).

    Returns (n, pos, status): 0 = needs more bytes (or done at the end of the file), 1 = output
    full, 2 = a section header or a whole non-packet block starts at pos (for Python to read).
    Simple packet blocks get tsraw -1 (no time of their own).
    """
    n = 0
    maxn = off.shape[0]
    while True:
        if n >= maxn:
            return n, pos, 1
        if st[ST_RESYNC]:
            pos, found = _resync(buf, pos, end, base, at_eof, big, st, ranges)
            if not found:
                return n, pos, 0
            continue
        if pos + 12 > end:
            if at_eof and pos < end:
                st[ST_TRUNCATED] += 1
                add_range(st, ranges, base + pos, end - pos)
                return n, end, 0
            return n, pos, 0
        btype = u32(buf, pos, big)
        if btype == SHB:
            return n, pos, 2
        r = _block(buf, pos, end, at_eof, big, False)
        if r == -1:
            return n, pos, 0
        blen = u32(buf, pos + 4, big)
        if r == 0:  # damaged, or cut by the end of the file: the scan tells which
            if btype == IDB:
                st[ST_LOST_IDB] += 1
            start_resync(st, base + pos, base + pos + blen)
            pos += 1
            continue
        if btype in (EPB, OPB):
            c = u32(buf, pos + 20, big)
            if c > blen - 32:  # lengths agree, the packet does not fit: skip the block
                start_resync(st, base + pos, base + pos + blen)
                end_resync(st, ranges, base + pos + blen, False)
            else:
                iface[n] = u32(buf, pos + 8, big) if btype == EPB else u16(buf, pos + 8, big)
                tsraw[n] = (u32(buf, pos + 12, big) << 32) | u32(buf, pos + 16, big)
                w = u32(buf, pos + 24, big)
                off[n] = pos + 28
                cap[n] = c
                wire[n] = min(max(w, c), 0x7FFFFFFF)
                n += 1
        elif btype == SPB:
            w = u32(buf, pos + 8, big)
            c = min(w, blen - 16)
            iface[n] = 0
            tsraw[n] = -1
            off[n] = pos + 12
            cap[n] = c
            wire[n] = min(w, 0x7FFFFFFF)
            n += 1
        else:
            return n, pos, 2
        pos += blen


# ---------------------------------------------------------------------------------------------
# interfaces and time


@dataclass
class _Iface:
    """One interface description: ts_us = (raw >> shift) scaled by mul / div, plus offset."""

    linktype: int
    mul: int = 1
    div: int = 1
    shift: int = 0
    offset_us: int = 0


def _resolution(code: int) -> tuple[int, int, int] | None:
    """(mul, div, shift) for an if_tsresol value, None if impossible; every product of the
    conversion stays below 2**63 (binary fractions are first shifted down to 2**-40)."""
    if code & 0x80:
        bits = code & 0x7F
        if bits > 62:
            return None
        shift = max(0, bits - 40)
        return 1_000_000, 1 << (bits - shift), shift
    if code > 18:
        return None
    return (10 ** (6 - code), 1, 0) if code <= 6 else (1, 10 ** (code - 6), 0)


def parse_idb(block: bytes, big: bool) -> _Iface | None:
    """The interface of an IDB (a whole block), or None if it cannot be read."""
    o = ">" if big else "<"
    iface = _Iface(struct.unpack(o + "H", block[8:10])[0])
    p, end = 16, len(block) - 4
    while p + 4 <= end:
        code, length = struct.unpack(o + "HH", block[p : p + 4])
        if code == 0:
            break
        if p + 4 + length > end:
            return None  # an option running past the block
        value = block[p + 4 : p + 4 + length]
        if code == 9 and length >= 1:  # if_tsresol
            res = _resolution(value[0])
            if res is None:
                return None
            iface.mul, iface.div, iface.shift = res
        elif code == 14 and length >= 8:  # if_tsoffset (seconds)
            seconds = struct.unpack(o + "q", value[:8])[0]
            if abs(seconds) > 1 << 33:
                return None
            iface.offset_us = seconds * 1_000_000
        p += 4 + ((length + 3) & ~3)
    return iface


#: (linktype or -1, mul, div, shift, offset) per interface: the arguments of :func:`_resolve`
_IfaceArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _Interfaces:
    """The interfaces of the current section (None: an unreadable description), as arrays."""

    def __init__(self) -> None:
        self.items: list[_Iface | None] = []
        self._arrays: _IfaceArrays | None = None

    def reset(self) -> None:
        self.items = []
        self._arrays = None

    def append(self, iface: _Iface | None) -> None:
        self.items.append(iface)
        self._arrays = None

    def arrays(self) -> _IfaceArrays:
        """(linktype or -1, mul, div, shift, offset) per interface, plus one unreadable entry."""
        if self._arrays is None:
            rows = [i if i is not None else _Iface(-1) for i in self.items] + [_Iface(-1)]

            def column(name: str) -> np.ndarray:
                return np.array([getattr(r, name) for r in rows], np.int64)

            self._arrays = (
                column("linktype"),
                column("mul"),
                column("div"),
                column("shift"),
                column("offset_us"),
            )
        return self._arrays


@kernel(
    "void(int64[:], int64[:], int64[:], int64[:], int64[:], int64[:], int64[:], int64, "
    "int32[:], int64[:])"
)
def _resolve(ids, raw, linktype, mul, div, shift, offset, last_ts, links, ts):  # pragma: no cover
    """Link type (-1: unreadable interface) and µs time of each packet of a batch; a simple
    packet block (raw -1) has no time of its own and takes the previous packet's."""
    unreadable = linktype.shape[0] - 1  # the last entry stands for any unreadable interface
    prev = last_ts
    for i in range(ids.shape[0]):
        k = ids[i]
        if k < 0 or k > unreadable:
            k = unreadable
        links[i] = linktype[k]
        r = raw[i]
        if r < 0:
            ts[i] = prev
            continue
        r >>= shift[k]
        d, m = div[k], mul[k]
        ts[i] = (r * m if d == 1 else (r // d) * m + (r % d) * m // d) + offset[k]
        if links[i] >= 0:
            prev = ts[i]


def _timestamps(
    ids: np.ndarray, raw: np.ndarray, interfaces: _Interfaces, last_ts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(link types, µs timestamps, readable mask) of a batch."""
    links = np.empty(len(ids), np.int32)
    ts = np.empty(len(ids), np.int64)
    _resolve(ids, raw, *interfaces.arrays(), last_ts, links, ts)
    return links, ts, links >= 0


# ---------------------------------------------------------------------------------------------


@dataclass
class _Reader:
    """The state of one pcapng file being read."""

    src: Source
    counters: ReadCounters
    name: str | None
    st: np.ndarray
    ranges: np.ndarray
    big: bool = False
    lost_idbs: int = 0
    last_ts: int = 0

    def __post_init__(self) -> None:
        self.interfaces = _Interfaces()

    @property
    def pos(self) -> int:
        return self.src.start

    def sync(self) -> None:
        self.counters.sync(self.st, self.ranges)
        while self.lost_idbs < int(self.st[ST_LOST_IDB]):
            self.interfaces.append(None)
            self.lost_idbs += 1

    def damaged(self, length: int = 0, claimed: int = 0) -> None:
        """The block at pos is damaged: skip `length` bytes, or resynchronise if 0."""
        at = self.src.consumed + self.pos
        start_resync(self.st, at, at + (length or claimed))
        if length:
            end_resync(self.st, self.ranges, at + length, False)
            self.src.start += length
        else:
            self.src.start += 1
        self.sync()

    def batch(self, n: int, arrays: tuple[np.ndarray, ...]) -> RecordBatch:
        off, cap, wire, tsraw, iface = (a[:n] for a in arrays)
        links, ts, ok = _timestamps(iface, tsraw, self.interfaces, self.last_ts)
        if not ok.all():
            self.counters.unreadable_packets += int((~ok).sum())
            self.counters.unreadable_bytes += int(cap[~ok].sum())
            off, cap, wire, ts, links = off[ok], cap[ok], wire[ok], ts[ok], links[ok]
        if len(ts):
            self.last_ts = int(ts[-1])
            self.counters.records += len(ts)
            values, counts = np.unique(links, return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist(), strict=True):
                self.counters.link_types[v] = self.counters.link_types.get(v, 0) + c
        return RecordBatch(self.src.buf, off, cap, wire, ts, links, self.src.consumed + self.pos)

    def word(self, p: int, big: bool | None = None) -> int:
        """The 32-bit integer at p in the section's byte order (or the one given)."""
        big = self.big if big is None else big
        return struct.unpack((">" if big else "<") + "I", self.src.buf[p : p + 4].tobytes())[0]

    def block_len(self, p: int) -> int:
        """The length field of the block at p (a section header's in its own byte order)."""
        head = self.src.buf[p : p + 12].tobytes()
        big = self.big
        if head[:4] == b"\x0a\x0d\x0d\x0a" and len(head) == 12:
            big = head[8:12] == b"\x1a\x2b\x3c\x4d"
        return struct.unpack((">" if big else "<") + "I", head[4:8])[0]

    def section_header(self) -> bool:
        """Read the section header at pos; False if more bytes are needed first."""
        src, pos = self.src, self.pos
        first = src.consumed + pos == 0
        order = int(_shb_order(src.buf, pos))
        magic_ok = order >= 0
        if not magic_ok:
            order = self._guess_order()
            if order < 0 and first:
                raise InputError(
                    "damaged pcapng section header (no byte-order magic, and no block "
                    "readable in either byte order after it)",
                    path=self.name,
                )
        self.big = self.big if order < 0 else order == 1
        blen = self.word(pos + 4)
        sane = 28 <= blen <= MAX_BLOCK and blen % 4 == 0
        avail = src.end - pos
        if magic_ok and sane and avail < blen and not src.eof:
            src.grow(blen)
            return False
        if first and sane and avail < blen and not _damaged_at_end(src.buf, pos, src.end, self.big):
            raise InputError(
                f"the capture is cut inside its section header block ({avail} of {blen} bytes)",
                path=self.name,
            )
        self.interfaces.reset()  # a new section starts here, even if its header is damaged
        self.lost_idbs = int(self.st[ST_LOST_IDB])
        whole = sane and avail >= blen and self.word(pos + blen - 4) == blen
        if whole and magic_ok:
            src.start = pos + blen
        elif whole:  # only the byte-order magic is damaged: the section is read
            self.damaged(blen)
        else:
            self.damaged(claimed=blen)
        return True

    def _guess_order(self) -> int:
        """The byte order of a section header whose byte-order magic is damaged: the one in
        which its lengths agree, else the one in which a plausible block comes first after it
        (1 big-endian, 0 little-endian, -1 none in the bytes at hand)."""
        src, pos = self.src, self.pos
        for big in (0, 1):
            blen = self.word(pos + 4, bool(big))
            sane = 28 <= blen <= MAX_BLOCK and blen % 4 == 0 and pos + blen <= src.end
            if sane and self.word(pos + blen - 4, bool(big)) == blen:
                return big
        found = []
        for big in (0, 1):
            q, r = _scan(src.buf, pos + 1, src.end, src.end, True, bool(big))
            if r == 1:
                found.append((int(q), big))
        return min(found)[1] if found else -1

    def other_block(self) -> None:
        """An interface description or a block without packets, whole and consistent."""
        src, pos = self.src, self.pos
        o = ">" if self.big else "<"
        btype, blen = struct.unpack(o + "II", src.buf[pos : pos + 8].tobytes())
        if btype == IDB:
            iface = parse_idb(src.buf[pos : pos + blen].tobytes(), self.big)
            self.interfaces.append(iface)
            if iface is None:
                self.damaged(blen)
                return
        elif btype in NON_PACKET_TYPES or btype & 0x80000000:
            self.counters.unknown_blocks += 1
        else:
            self.counters.unknown_block_types += 1
        src.start = pos + blen

    def make_room(self) -> None:
        """Before reading more: room for the (candidate) block at pos, however long."""
        src = self.src
        if src.end - src.start >= 12:
            need = self.block_len(src.start)
            if need <= MAX_BLOCK and need > src.buf.shape[0] - src.chunk:
                src.grow(need)


def iter_pcapng(
    fh: BinaryIO,
    head: bytes,
    counters: ReadCounters,
    batch: int,
    chunk: int,
    name: str | None,
) -> Iterator[RecordBatch]:
    """The packets of a pcapng stream whose first bytes (`head`) have been read already."""
    if len(head) < 12:
        raise InputError(
            f"the capture is cut inside its section header block ({len(head)} bytes)", path=name
        )
    src = Source(fh, chunk)
    src.buf[: len(head)] = np.frombuffer(head, np.uint8)
    src.end = len(head)
    reader = _Reader(src, counters, name, *new_state())
    arrays = (
        np.empty(batch, np.int64),
        np.empty(batch, np.int32),
        np.empty(batch, np.int32),
        np.empty(batch, np.int64),
        np.empty(batch, np.int64),
    )
    while True:
        src.fill()
        counters.bytes_total = src.seen
        while True:
            n, pos, status = walk_pcapng(
                src.buf, src.start, src.end, src.consumed, reader.big, src.eof,
                reader.st, reader.ranges, *arrays,
            )  # fmt: skip
            src.start = int(pos)
            reader.sync()
            if n:
                yield reader.batch(int(n), arrays)
            if status == 1:
                continue
            if status == 2:
                if src.buf[pos : pos + 4].tobytes() != b"\x0a\x0d\x0d\x0a":
                    reader.other_block()
                    continue
                if reader.section_header():
                    continue
                break
            reader.make_room()
            break
        if src.eof:
            count_rest(src, reader.st, reader.ranges, counters)
            return
