"""Read pcap and pcapng captures in chunks into numpy record batches.

The file is read in blocks of a few MiB into one reusable numpy buffer; a numba loop walks the
record (or block) headers of each block and returns the offset, captured length, wire length,
timestamp (integer microseconds) and link type of every packet, without creating a Python
object per packet. Memory is bounded by the block size, however long the capture.

Damaged input never raises past the reader and never silently loses what could be read.
Timestamps are data, never a sign of damage (merged captures jump and go backwards). A classic
pcap record is damaged when its captured length is 0, above the snap length (at least 65,535)
or above its wire length, or when it runs past the next records: the reader then scans forward,
byte by byte, for the next plausible pair of record headers and counts the bytes it skipped as a
range (offset, length) in :class:`ReadCounters`. pcapng blocks are walked by their own lengths
(see :mod:`~flowsentinel.capture.pcapng`). Only a file that is not a capture at all (no pcap or
pcapng magic), or one cut inside its file header, raises
:class:`~flowsentinel.core.errors.InputError`.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from flowsentinel.capture.kernels import kernel
from flowsentinel.capture.pcapng import iter_pcapng
from flowsentinel.capture.records import (
    CHUNK_BYTES,
    MAX_RECORD,
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
    u32,
)
from flowsentinel.core.errors import InputError

__all__ = [
    "CHUNK_BYTES",
    "MAX_RECORD",
    "EmptyCaptureError",
    "ReadCounters",
    "RecordBatch",
    "UnalignedCut",
    "file_head",
    "is_capture_magic",
    "is_classic_pcap_magic",
    "iter_records",
]

PCAP_HEADER = 24
MAX_WIRE = 1 << 20  # a larger wire length is taken for damage while resynchronising
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


class EmptyCaptureError(InputError):
    """A capture file of zero bytes (an error alone; counted and skipped in a set)."""


def is_classic_pcap_magic(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a classic pcap (records that a byte range of
    the file can be read from, see :func:`iter_records`)."""
    return head[:4] in _PCAP_MAGICS


def is_capture_magic(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a pcap or pcapng capture (by its magic)."""
    return head[:4] in _PCAP_MAGICS or head[:4] == _PCAPNG_SHB


# ---------------------------------------------------------------------------------------------
# numba record walker


@kernel(inline=True)
def _head_ok(buf, p, big, lim):  # pragma: no cover - numba
    """A record header whose lengths a capture tool could have written."""
    incl = u32(buf, p + 8, big)
    return incl >= 1 and incl <= lim and u32(buf, p + 12, big) >= incl


@kernel()
def _strict_ok(buf, p, big, nano, lim):  # pragma: no cover - numba
    """_head_ok, and a sub-second field and wire length in range (for resynchronising)."""
    if not _head_ok(buf, p, big, lim) or u32(buf, p + 12, big) > MAX_WIRE:
        return False
    return u32(buf, p + 4, big) < (1_000_000_000 if nano else 1_000_000)


@kernel()
def _pair(buf, p, end, at_eof, big, nano, lim):  # pragma: no cover - numba
    """1 if a plausible record starts at p and is followed by another one (or by the end of
    the file), 0 if not, -1 if that cannot be told without the bytes after end."""
    if p + 16 > end:
        return 0 if at_eof else -1
    if not _strict_ok(buf, p, big, nano, lim):
        return 0
    q = p + 16 + u32(buf, p + 8, big)
    if q > end:
        return 0 if at_eof else -1
    if q + 16 > end:
        return 1 if at_eof else -1
    return 1 if _strict_ok(buf, q, big, nano, lim) else 0


@kernel()
def _scan(buf, p, stop, end, at_eof, big, nano, lim):  # pragma: no cover - numba
    """The first offset in [p, stop) where _pair is not 0, with that answer; (stop, 0) if none."""
    while p < stop:
        r = _pair(buf, p, end, at_eof, big, nano, lim)
        if r != 0:
            return p, r
        p += 1
    return stop, 0


@kernel("int64(uint8[:], int64, int64, boolean, boolean, boolean, int64, int64)")
def first_chain(buf, p, end, at_eof, big, nano, lim, chain):  # pragma: no cover - numba
    """The first offset in buf[p:end] where ``chain`` plausible records follow one another (or
    fewer that end exactly at the end of the file); at the end of the file, its end when
    there is none; -1 if there is none that these bytes can show. A guess: the caller checks
    it against the reader of the bytes before it."""
    while p < end:
        q = p
        k = 0
        while k < chain and q + 16 <= end and _strict_ok(buf, q, big, nano, lim):
            q += 16 + u32(buf, q + 8, big)
            k += 1
        if k == chain and q <= end:
            return p
        if at_eof and q == end and k > 0:
            return p
        p += 1
    return end if at_eof else -1


@kernel()
def _resync(buf, pos, end, base, at_eof, big, nano, lim, st, ranges):  # pragma: no cover
    """Scan for the next plausible record; returns (pos, found). Not found: pos is where the
    scan must go on with more bytes (or end, the range counted, at the end of the file)."""
    q, r = _scan(buf, pos, end, end, at_eof, big, nano, lim)
    if r == 1:
        end_resync(st, ranges, base + q, False)
        return q, True
    if r == -1 or not at_eof:
        return q, False
    end_resync(st, ranges, base + end, True)
    return end, False


@kernel(
    "Tuple((int64, int64, boolean))(uint8[:], int64, int64, int64, boolean, boolean, int64, "
    "boolean, int64[:], int64[:, ::1], int64[:], int32[:], int32[:], int64[:])"
)
def walk_pcap(buf, pos, end, base, big, nano, lim, at_eof, st, ranges, off, cap, wire, ts):
    """Walk classic pcap records in buf[pos:end] (buf[0] is byte `base` of the file).

    Returns (n, pos, full): the packets written to off/cap/wire/ts, where to go on, and whether
    the output arrays are full. Damaged records and skipped ranges are counted in st/ranges.
    """
    n = 0
    maxn = off.shape[0]
    checked = False  # the header at pos was checked as the previous record's follower
    resync = st[ST_RESYNC] != 0  # (a local copy: the loop stays tight)
    while True:
        if n >= maxn:
            return n, pos, True
        if resync:
            pos, found = _resync(buf, pos, end, base, at_eof, big, nano, lim, st, ranges)
            if not found:
                return n, pos, False
            resync = False
            continue
        if pos + 16 > end:
            if at_eof and pos < end:  # a few bytes after the last record
                st[ST_TRUNCATED] += 1
                add_range(st, ranges, base + pos, end - pos)
                return n, end, False
            return n, pos, False
        incl = u32(buf, pos + 8, big)
        q = pos + 16 + incl
        if q > end and not at_eof and _head_ok(buf, pos, big, lim):
            return n, pos, False
        if q > end or not (checked or _head_ok(buf, pos, big, lim)):
            # a damaged header, or a record running past the end of the file: cut there, or
            # damaged with records after it (the scan tells which)
            start_resync(st, base + pos, base + q)
            pos += 1
            checked, resync = False, True
            continue
        if q + 16 <= end:
            follows = _head_ok(buf, q, big, lim)
        elif at_eof:
            follows = True  # the last record (any bytes after it are counted above)
        else:
            return n, pos, False
        if not follows:
            # either this record's length runs over the records after it, or the damage starts
            # right after it (the next turn handles it): a chain of records inside it tells
            c, r = _scan(buf, pos + 16, q, end, at_eof, big, nano, lim)
            if r == -1:
                return n, pos, False
            if r == 1:
                start_resync(st, base + pos, base + q)
                pos, resync = c, True
                continue
        off[n] = pos + 16
        cap[n] = incl
        wire[n] = min(u32(buf, pos + 12, big), 0x7FFFFFFF)
        frac = u32(buf, pos + 4, big)
        ts[n] = u32(buf, pos, big) * 1_000_000 + (frac // 1000 if nano else frac)
        n += 1
        pos = q
        checked = follows


# ---------------------------------------------------------------------------------------------


def _open(source: str | Path | bytes | bytearray | memoryview | BinaryIO) -> tuple[BinaryIO, bool]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, str) and "://" in source:
        return _open_url(source), True
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


def _open_url(url: str) -> BinaryIO:
    """A capture at an fsspec URL (``s3://``, ``hdfs://``, ``file://``, ...), read in chunks."""
    import fsspec  # 150 ms of imports: only when a URL is read (the CLI's start-up budget)

    try:
        return fsspec.open(url, "rb").open()
    except FileNotFoundError:
        raise InputError("no such capture file", path=url) from None
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"cannot read the capture ({exc})", path=url) from None


def file_head(source: str | Path, size: int = 4) -> bytes:
    """The first ``size`` bytes of a capture file, local or at an fsspec URL (its magic
    number, by default); :class:`~flowsentinel.core.errors.InputError` when it cannot be
    opened."""
    fh, owned = _open(source)
    try:
        return _read_exact(fh, size)
    finally:
        if owned:
            fh.close()


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
    byte_range: tuple[int, int | None] | None = None,
) -> Iterator[RecordBatch]:
    """Yield the packets of a pcap or pcapng capture (path, bytes or binary stream) in batches.

    The arrays of a batch are valid until the next batch is requested (they share one buffer).
    What could not be read is counted in ``counters`` while the iterator runs.

    ``byte_range=(start, stop)`` (a classic pcap in a seekable stream; ``stop`` None: the end)
    reads the records that start in ``[start, stop)`` of a file cut at guessed offsets: from
    the first plausible chain of records at or after ``start`` (``CHAIN`` of them) up to the
    first record that starts at or after ``stop``. ``counters.span`` is then the file bytes
    read (where the records began, where the next one begins); a reader of the bytes before
    it confirms the guess when its span ends where this one starts (see
    :mod:`~flowsentinel.capture.partitioned`). No plausible chain: :class:`UnalignedCut`.
    """
    counters = counters if counters is not None else ReadCounters()
    fh, owned = _open(source)
    name = str(source) if isinstance(source, str | Path) else getattr(source, "name", None)
    try:
        head = _read_exact(fh, PCAP_HEADER)
        if not head:
            raise EmptyCaptureError("the capture is empty", path=name)
        magic = head[:4]
        if magic in _PCAP_MAGICS:
            if len(head) < PCAP_HEADER:
                raise InputError(
                    f"the capture is cut inside its {PCAP_HEADER}-byte file header "
                    f"({len(head)} bytes)",
                    path=name,
                )
            yield from _iter_pcap(fh, head, counters, batch_packets, chunk_bytes, byte_range)
        elif byte_range is not None:
            raise UnalignedCut(f"{name}: only classic pcap files are read by byte ranges")
        elif magic == _PCAPNG_SHB:
            yield from iter_pcapng(fh, head, counters, batch_packets, chunk_bytes, name)
        else:
            raise InputError(
                "not a pcap or pcapng capture (unknown magic number "
                f"{magic.hex()}); convert it with editcap or tcpdump -w",
                path=name,
            )
    finally:
        if owned:
            fh.close()


class UnalignedCut(Exception):  # noqa: N818 - a signal to read the file whole, not an error
    """A byte range of a cut capture whose first record could not be found with confidence."""


CHAIN = 4  # plausible records in a row that mark where a guessed cut's first record starts
_SEEK_WINDOW = 4 << 20  # bytes searched for that chain after a guessed cut


def _iter_pcap(
    fh: BinaryIO,
    head: bytes,
    counters: ReadCounters,
    batch: int,
    chunk: int,
    byte_range: tuple[int, int | None] | None = None,
) -> Iterator[RecordBatch]:
    order, nano = _PCAP_MAGICS[head[:4]]
    snap, network = struct.unpack(order + "II", head[16:24])
    linktype = network & 0x0FFFFFFF
    lim = min(max(snap, 65_535), MAX_RECORD)
    big = order == ">"
    src = Source(fh, chunk)
    src.consumed = PCAP_HEADER
    start, stop = (PCAP_HEADER, None) if byte_range is None else byte_range
    if start > PCAP_HEADER:
        src.consumed = start = _first_record(fh, start, big, nano, lim)
    st, ranges = new_state()
    off = np.empty(batch, np.int64)
    cap = np.empty(batch, np.int32)
    wire = np.empty(batch, np.int32)
    ts = np.empty(batch, np.int64)
    while True:
        src.fill()
        counters.bytes_total = src.seen
        while True:
            n, pos, full = walk_pcap(
                src.buf, src.start, src.end, src.consumed, big, nano, lim, src.eof,
                st, ranges, off, cap, wire, ts,
            )  # fmt: skip
            counters.sync(st, ranges)
            src.start = int(pos)
            end = None
            if stop is not None and n and src.consumed + off[n - 1] - 16 >= stop:
                # a record at or after stop: the next range's first one
                begins = src.consumed + off[:n] - 16
                n = int(np.searchsorted(begins, stop))
                end = int(begins[n])
            if n:
                counters.records += int(n)
                counters.link_types[linktype] = counters.link_types.get(linktype, 0) + int(n)
                links = np.full(n, linktype, np.int32)
                yield RecordBatch(
                    src.buf, off[:n], cap[:n], wire[:n], ts[:n], links, src.consumed + int(pos)
                )
            if end is not None:
                counters.span = (start, end)
                counters.bytes_total = _span_bytes(start, end)
                return
            if not full:
                break
        if src.eof:
            count_rest(src, st, ranges, counters)
            if byte_range is not None:
                counters.span = (start, src.seen)
                counters.bytes_total = _span_bytes(start, src.seen)
            return


def _span_bytes(start: int, end: int) -> int:
    """The bytes of the file a range stands for (the first range has the file header)."""
    return end - start + (PCAP_HEADER if start == PCAP_HEADER else 0)


def _first_record(fh: BinaryIO, start: int, big: bool, nano: bool, lim: int) -> int:
    """The file offset of the first plausible chain of records at or after ``start``; the
    stream is left there."""
    try:
        fh.seek(start)
    except (OSError, ValueError) as exc:  # a stream that cannot seek (io.UnsupportedOperation)
        raise UnalignedCut(f"cannot seek to offset {start} ({exc})") from None
    window = np.frombuffer(_read_exact(fh, _SEEK_WINDOW), np.uint8)
    at_eof = len(window) < _SEEK_WINDOW
    found = first_chain(window, 0, len(window), at_eof, big, nano, lim, CHAIN)
    if found < 0:
        raise UnalignedCut(f"no record found within {_SEEK_WINDOW} bytes of offset {start}")
    fh.seek(start + int(found))  # a stream that seeked once seeks again
    return start + int(found)


# ---------------------------------------------------------------------------------------------
# cutting one classic pcap into record-aligned slices (as ``editcap -c`` would), by a walk of
# its record headers; metering in parallel cuts at guessed offsets instead (``byte_range``)


@kernel("int64[::1](uint8[:], boolean, int64, int64[:])")
def _cut_points(buf, big, lim, targets):  # pragma: no cover - numba
    """The first record start at or after each target offset, hopping record headers from
    the file header; -1 for all when a header is not one a capture tool could have written
    (a damaged file is read whole, by one reader, never cut at a guessed record)."""
    out = np.full(targets.shape[0], -1, np.int64)
    end = buf.shape[0]
    pos = np.int64(PCAP_HEADER)
    k = 0
    while pos + 16 <= end and k < targets.shape[0]:
        if not _head_ok(buf, pos, big, lim):
            return np.full(targets.shape[0], -1, np.int64)
        while k < targets.shape[0] and pos >= targets[k]:
            out[k] = pos
            k += 1
        pos += 16 + int(u32(buf, pos + 8, big))
    if k < targets.shape[0] and pos != end and pos + 16 <= end:
        return np.full(targets.shape[0], -1, np.int64)
    for j in range(k, targets.shape[0]):
        out[j] = end
    return out


def split_ranges(
    path: str | Path, parts: int, *, min_bytes: int = 16 << 20
) -> list[tuple[int, int]]:
    """Record-aligned byte ranges ``[(start, stop), ...]`` of about equal size that cover the
    records of a local classic pcap file; one range (the whole file) for pcapng, damaged or
    small files (under ``min_bytes`` per part)."""
    path = Path(path)
    size = path.stat().st_size
    parts = max(1, min(parts, size // max(1, min_bytes)))
    whole = [(PCAP_HEADER, size)]
    if parts < 2:
        return whole
    with path.open("rb") as fh:
        head = fh.read(PCAP_HEADER)
    if head[:4] not in _PCAP_MAGICS or len(head) < PCAP_HEADER:
        return whole
    order, _ = _PCAP_MAGICS[head[:4]]
    snap = struct.unpack(order + "I", head[16:20])[0]
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    targets = np.array([size * k // parts for k in range(1, parts)], np.int64)
    cuts = _cut_points(buf, order == ">", min(max(snap, 65_535), MAX_RECORD), targets)
    del buf
    if (cuts < 0).any():
        return whole
    bounds = sorted({PCAP_HEADER, *cuts.tolist(), size})
    return list(itertools.pairwise(bounds))


class RangeReader(io.RawIOBase):
    """A classic pcap seen as its file header followed by the records of one byte range: what
    :func:`iter_records` reads for one part of a split capture."""

    def __init__(self, path: str | Path, start: int, stop: int) -> None:
        super().__init__()
        self.name = f"{path}[{start}:{stop}]"
        self._fh = Path(path).open("rb")  # noqa: SIM115 - closed by close(), as any file
        self._head = self._fh.read(PCAP_HEADER)
        self._fh.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, view: Any) -> int:
        mv = memoryview(view).cast("B")
        if self._head:
            n = min(len(self._head), len(mv))
            mv[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        want = min(len(mv), self._left)
        if want <= 0:
            return 0
        got = self._fh.readinto(mv[:want])
        self._left -= got
        return got

    def close(self) -> None:
        self._fh.close()
        super().close()
