"""Read pcap and pcapng captures in chunks into numpy record batches.

The file is read in blocks of a few MiB into one reusable numpy buffer; a numba loop walks the
record (or block) headers of each block and returns the offset, captured length, wire length,
timestamp (integer microseconds) and link type of every packet, without creating a Python
object per packet. Memory is bounded by the block size, however long the capture.

Malformed input never raises past the reader: a record cut by the end of the file, a corrupt
record length (the reader resynchronises on the next plausible record header) and unknown block
types are counted in :class:`ReadCounters`. Only a file that is not a capture at all (no pcap or
pcapng magic) raises :class:`~flowsentinel.core.errors.InputError`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numba as nb
import numpy as np

from flowsentinel.core.errors import InputError

CHUNK_BYTES = 8 << 20
MAX_RECORD = 262_144  # the largest snap length libpcap writes
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


@dataclass
class ReadCounters:
    """What the file reader could not turn into packets."""

    records: int = 0
    truncated_records: int = 0  # a record cut by the end of the file
    corrupt_records: int = 0  # an impossible record length (resynchronised after)
    bytes_skipped: int = 0  # bytes jumped over while resynchronising
    unknown_blocks: int = 0  # pcapng blocks that hold no packet (statistics, names, ...)
    link_types: dict[int, int] = field(default_factory=dict)


@dataclass
class RecordBatch:
    """Packets of one chunk: every array has one entry per packet."""

    buf: np.ndarray  # uint8, the chunk (offsets point into it)
    offset: np.ndarray  # int64
    caplen: np.ndarray  # int32
    wirelen: np.ndarray  # int32
    ts_us: np.ndarray  # int64 microseconds since the epoch
    linktype: np.ndarray  # int32
    file_pos: int = 0  # bytes of the source read up to the end of this batch

    def __len__(self) -> int:
        return int(self.offset.shape[0])


# ---------------------------------------------------------------------------------------------
# numba record walkers


@nb.njit(cache=True, inline="always")
def _u32(buf: np.ndarray, p: int, big: bool) -> int:
    if big:
        return (
            (np.int64(buf[p]) << 24)
            | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8)
            | np.int64(buf[p + 3])
        )
    return (
        (np.int64(buf[p + 3]) << 24)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 1]) << 8)
        | np.int64(buf[p])
    )


@nb.njit(cache=True, inline="always")
def _u16(buf: np.ndarray, p: int, big: bool) -> int:
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return (np.int64(buf[p + 1]) << 8) | np.int64(buf[p])


@nb.njit(cache=True)
def _plausible(buf, p, end, big, last_sec, snap):  # pragma: no cover - numba
    if p + 16 > end:
        return False
    sec = _u32(buf, p, big)
    incl = _u32(buf, p + 8, big)
    orig = _u32(buf, p + 12, big)
    if incl > snap or incl > MAX_RECORD or orig > 0x40000 or incl > orig or orig == 0:
        return False
    return not (last_sec > 0 and (sec < last_sec - 86400 or sec > last_sec + 86400))


@nb.njit(cache=True)
def walk_pcap(buf, pos, end, big, nano, snap, last_sec, at_eof, off, cap, wire, ts):
    """Walk classic pcap records in buf[pos:end]; returns (n, pos, status, skipped, last_sec).

    status: 0 = needs more data (or done), 1 = output full, 2 = truncated record at EOF.
    Corrupt records are skipped by resynchronising on the next plausible header.
    """
    n = 0
    skipped = 0
    corrupt = 0
    maxn = off.shape[0]
    while True:
        if n >= maxn:
            return n, pos, 1, skipped, last_sec, corrupt
        if pos + 16 > end:
            if at_eof and pos < end:
                return n, pos, 2, skipped, last_sec, corrupt
            return n, pos, 0, skipped, last_sec, corrupt
        sec = _u32(buf, pos, big)
        frac = _u32(buf, pos + 4, big)
        incl = _u32(buf, pos + 8, big)
        orig = _u32(buf, pos + 12, big)
        bad = incl > MAX_RECORD or incl > max(snap, 65535) or (orig > 0 and incl > orig)
        if (
            not bad
            and last_sec > 0
            and (sec < last_sec - 86400 * 365 or sec > last_sec + 86400 * 365)
        ):
            bad = True
        if bad:
            # resynchronise: the next offset whose header (and the one after it) look valid
            corrupt += 1
            q = pos + 1
            found = False
            while q + 16 <= end:
                if _plausible(buf, q, end, big, last_sec, max(snap, 65535)):
                    nxt = q + 16 + _u32(buf, q + 8, big)
                    if nxt == end or _plausible(buf, nxt, end, big, last_sec, max(snap, 65535)):
                        found = True
                        break
                q += 1
            skipped += q - pos
            pos = q
            if not found:
                if at_eof:
                    skipped += end - pos
                    return n, end, 0, skipped, last_sec, corrupt
                return n, pos, 0, skipped, last_sec, corrupt
            continue
        if pos + 16 + incl > end:
            if at_eof:
                return n, pos, 2, skipped, last_sec, corrupt
            return n, pos, 0, skipped, last_sec, corrupt
        off[n] = pos + 16
        cap[n] = incl
        wire[n] = orig if orig >= incl else incl
        if nano:
            ts[n] = sec * 1_000_000 + frac // 1000
        else:
            ts[n] = sec * 1_000_000 + frac
        last_sec = sec
        n += 1
        pos += 16 + incl


@nb.njit(cache=True)
def walk_pcapng(buf, pos, end, big, at_eof, off, cap, wire, tsraw, iface):
    """Walk pcapng blocks; stops at any block that is not a packet so Python can parse it.

    Returns (n, pos, status, block_type): status 0 = needs more data, 1 = output full,
    2 = truncated block at EOF, 3 = a non-packet block starts at pos (block_type), 4 = corrupt
    block length at pos.
    """
    n = 0
    maxn = off.shape[0]
    while True:
        if n >= maxn:
            return n, pos, 1, 0
        if pos + 12 > end:
            return n, pos, (2 if at_eof and pos < end else 0), 0
        btype = _u32(buf, pos, big)
        if btype == 0x0A0D0D0A:
            return n, pos, 3, btype
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or blen % 4 != 0 or blen > 16 * MAX_RECORD:
            return n, pos, 4, btype
        if pos + blen > end:
            return n, pos, (2 if at_eof else 0), 0
        if btype == 6 or btype == 2:  # enhanced / obsolete packet block
            if blen < 32:
                return n, pos, 4, btype
            if btype == 6:
                iface[n] = _u32(buf, pos + 8, big)
            else:
                iface[n] = _u16(buf, pos + 8, big)
            tsraw[n] = (_u32(buf, pos + 12, big) << 32) | _u32(buf, pos + 16, big)
            c = _u32(buf, pos + 20, big)
            w = _u32(buf, pos + 24, big)
            if c > blen - 32:
                c = blen - 32
            off[n] = pos + 28
            cap[n] = c
            wire[n] = w if w >= c else c
            n += 1
        elif btype == 3:  # simple packet block: no timestamp, interface 0
            w = _u32(buf, pos + 8, big)
            c = min(w, blen - 16)
            iface[n] = 0
            tsraw[n] = -1
            off[n] = pos + 12
            cap[n] = c
            wire[n] = w
            n += 1
        else:
            return n, pos, 3, btype
        pos += blen


# ---------------------------------------------------------------------------------------------


class _Source:
    """A binary stream read in chunks into one numpy buffer (carrying the unread tail)."""

    def __init__(self, fh: BinaryIO, chunk: int) -> None:
        self.fh = fh
        self.chunk = chunk
        self.buf = np.empty(chunk + 2 * MAX_RECORD + 64, dtype=np.uint8)
        self.start = 0  # first unread byte in buf
        self.end = 0  # end of valid bytes in buf
        self.eof = False
        self.consumed = 0  # bytes of the file before buf[0]

    def fill(self) -> None:
        """Move the unread tail to the front and read more (at most one chunk)."""
        tail = self.end - self.start
        if self.start:
            self.buf[:tail] = self.buf[self.start : self.end]
            self.consumed += self.start
        self.start, self.end = 0, tail
        room = min(self.chunk, self.buf.shape[0] - tail)
        if room > 0 and not self.eof:
            view = memoryview(self.buf)[tail : tail + room]
            got = 0
            while got < room:
                k = self.fh.readinto(view[got:])  # type: ignore[attr-defined]
                if not k:
                    self.eof = True
                    break
                got += k
            self.end = tail + got

    def grow(self, need: int) -> None:
        """Make room for one block of `need` bytes (pcapng blocks may be large)."""
        if need + self.chunk > self.buf.shape[0]:
            new = np.empty(need + self.chunk, dtype=np.uint8)
            new[: self.end - self.start] = self.buf[self.start : self.end]
            self.consumed += self.start
            self.end -= self.start
            self.start = 0
            self.buf = new


def _open(source: str | Path | bytes | bytearray | memoryview | BinaryIO) -> tuple[BinaryIO, bool]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise InputError("no such capture file", path=path)
        if path.is_dir():
            raise InputError("a folder, not a capture file", path=path)
        try:
            return path.open("rb"), True
        except OSError as exc:
            raise InputError(f"cannot read the capture ({exc})", path=path) from None
    return source, False


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = fh.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def iter_records(
    source: str | Path | bytes | bytearray | memoryview | BinaryIO,
    counters: ReadCounters | None = None,
    *,
    batch_packets: int = 65_536,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[RecordBatch]:
    """Yield the packets of a pcap or pcapng capture (path, bytes or binary stream) in batches.

    The arrays of a batch are valid until the next batch is requested (they share one buffer).
    """
    counters = counters if counters is not None else ReadCounters()
    fh, owned = _open(source)
    name = str(source) if isinstance(source, str | Path) else None
    try:
        head = _read_exact(fh, 24)
        if not head:
            raise InputError("the capture is empty", path=name)
        magic = head[:4]
        if magic in _PCAP_MAGICS:
            if len(head) < 24:
                counters.truncated_records += 1
                return
            yield from _iter_pcap(fh, head, counters, batch_packets, chunk_bytes)
        elif magic == _PCAPNG_SHB:
            yield from _iter_pcapng(fh, head, counters, batch_packets, chunk_bytes)
        else:
            raise InputError(
                "not a pcap or pcapng capture (unknown magic number "
                f"{magic.hex()}); convert it with editcap or tcpdump -w",
                path=name,
            )
    finally:
        if owned:
            fh.close()


def _count_links(counters: ReadCounters, links: np.ndarray) -> None:
    if links.size == 0:
        return
    values, counts = np.unique(links, return_counts=True)
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        counters.link_types[v] = counters.link_types.get(v, 0) + c


def _iter_pcap(
    fh: BinaryIO, head: bytes, counters: ReadCounters, batch: int, chunk: int
) -> Iterator[RecordBatch]:
    order, nano = _PCAP_MAGICS[head[:4]]
    snap, network = struct.unpack(order + "II", head[16:24])
    linktype = network & 0x0FFFFFFF
    big = order == ">"
    src = _Source(fh, chunk)
    off = np.empty(batch, np.int64)
    cap = np.empty(batch, np.int32)
    wire = np.empty(batch, np.int32)
    ts = np.empty(batch, np.int64)
    last_sec = 0
    while True:
        src.fill()
        while True:
            n, pos, status, skipped, last_sec, corrupt = walk_pcap(
                src.buf, src.start, src.end, big, nano, snap, last_sec, src.eof, off, cap, wire, ts
            )
            counters.bytes_skipped += int(skipped)
            counters.corrupt_records += int(corrupt)
            src.start = int(pos)
            if n:
                counters.records += int(n)
                links = np.full(n, linktype, np.int32)
                counters.link_types[linktype] = counters.link_types.get(linktype, 0) + int(n)
                yield RecordBatch(
                    src.buf, off[:n], cap[:n], wire[:n], ts[:n], links, src.consumed + int(pos)
                )
            if status == 2:
                counters.truncated_records += 1
                return
            if status != 1:
                break
        if src.eof:
            return


@dataclass
class _Iface:
    linktype: int
    mul: int = 1  # ts_us = raw * mul // div + offset_us
    div: int = 1
    offset_us: int = 0


def _parse_idb(block: bytes, big: bool) -> _Iface:
    o = ">" if big else "<"
    linktype = struct.unpack(o + "H", block[8:10])[0]
    iface = _Iface(linktype)
    p = 16
    end = len(block) - 4
    while p + 4 <= end:
        code, length = struct.unpack(o + "HH", block[p : p + 4])
        value = block[p + 4 : p + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:  # if_tsresol
            v = value[0]
            if v & 0x80:
                iface.mul, iface.div = 1_000_000, 1 << (v & 0x7F)
            else:
                e = v & 0x7F
                iface.mul, iface.div = (10 ** max(0, 6 - e), 10 ** max(0, e - 6))
        elif code == 14 and length >= 8:  # if_tsoffset (seconds)
            iface.offset_us = struct.unpack(o + "q", value[:8])[0] * 1_000_000
        p += 4 + ((length + 3) & ~3)
    return iface


def _iter_pcapng(
    fh: BinaryIO, head: bytes, counters: ReadCounters, batch: int, chunk: int
) -> Iterator[RecordBatch]:
    src = _Source(fh, chunk)
    # put the bytes already read back in front of the stream
    src.buf[: len(head)] = np.frombuffer(head, np.uint8)
    src.end = len(head)
    off = np.empty(batch, np.int64)
    cap = np.empty(batch, np.int32)
    wire = np.empty(batch, np.int32)
    tsraw = np.empty(batch, np.int64)
    iface = np.empty(batch, np.int64)
    big = False
    ifaces: list[_Iface] = []
    last_ts = 0
    while True:
        src.fill()
        while True:
            n, pos, status, btype = walk_pcapng(
                src.buf, src.start, src.end, big, src.eof, off, cap, wire, tsraw, iface
            )
            src.start = int(pos)
            if n:
                ids = iface[:n]
                links = np.full(n, -1, np.int32)
                ts = np.empty(n, np.int64)
                for k, itf in enumerate(ifaces):
                    sel = ids == k
                    if sel.any():
                        links[sel] = itf.linktype
                        ts[sel] = tsraw[:n][sel] * itf.mul // itf.div + itf.offset_us
                unknown = (ids < 0) | (ids >= len(ifaces))
                ts[unknown] = last_ts
                simple = tsraw[:n] < 0  # simple packet blocks carry no time: reuse the last one
                if simple.any():
                    idx = np.where(~simple, np.arange(n), 0)
                    np.maximum.accumulate(idx, out=idx)
                    ts[simple] = np.where(idx[simple] > 0, ts[idx[simple]], last_ts)
                last_ts = int(ts[-1])
                counters.records += int(n)
                _count_links(counters, links)
                yield RecordBatch(
                    src.buf, off[:n], cap[:n], wire[:n], ts, links, src.consumed + int(pos)
                )
            if status == 1:
                continue
            if status == 3:
                blen = struct.unpack(
                    (">" if big else "<") + "I", src.buf[pos + 4 : pos + 8].tobytes()
                )[0]
                block = src.buf[pos : pos + blen].tobytes()
                if btype == 0x0A0D0D0A:
                    bom = block[8:12]
                    big = bom == b"\x1a\x2b\x3c\x4d"
                    blen = struct.unpack((">" if big else "<") + "I", block[4:8])[0]
                    if src.end - pos < blen:
                        src.grow(blen)
                        break
                    ifaces = []
                elif btype == 1:
                    ifaces.append(_parse_idb(block, big))
                else:
                    counters.unknown_blocks += 1
                src.start = int(pos + blen)
                continue
            if status == 4:
                counters.corrupt_records += 1
                counters.bytes_skipped += int(src.end - pos)
                return  # a pcapng block chain cannot be resynchronised reliably
            if status == 2:
                counters.truncated_records += 1
                return
            # status 0: need more bytes; a block larger than the buffer needs a bigger one
            if src.end - src.start >= 8:
                blen = struct.unpack(
                    (">" if big else "<") + "I",
                    src.buf[src.start + 4 : src.start + 8].tobytes(),
                )[0]
                if blen > src.buf.shape[0] - src.chunk:
                    src.grow(blen)
            break
        if src.eof and src.start >= src.end:
            return
        if src.eof:
            # the loop above returned status 0 although at EOF: nothing more can be read
            n_left = src.end - src.start
            if n_left:
                counters.truncated_records += 1
            return
