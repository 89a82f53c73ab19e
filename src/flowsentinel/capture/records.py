"""What the capture readers share: the record batch, the counters of what could not be read,
the chunked byte source and the numba helpers (integers, skipped byte ranges).

The walkers of :mod:`~flowsentinel.capture.pcap` and :mod:`~flowsentinel.capture.pcapng` keep
their bookkeeping in one small int64 state array (``ST_*`` below) and write the skipped byte
ranges into a bounded (``MAX_RANGES`` × 2) array, so that a numba call never allocates and the
Python side copies the totals into :class:`ReadCounters` after each call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from flowsentinel.capture.kernels import kernel

CHUNK_BYTES = 8 << 20
MAX_RECORD = 262_144  # the largest snap length libpcap writes
MAX_RANGES = 100  # skipped byte ranges listed one by one (all of them are counted)

# the walkers' state array
ST_RESYNC = 0  # 1 while scanning for the next plausible record (block) header
ST_SKIP_START = 1  # file offset where the range being skipped started
ST_CORRUPT = 2  # damaged records / blocks
ST_TRUNCATED = 3  # a record (block) cut by the end of the file
ST_SKIPPED = 4  # bytes in skipped ranges
ST_RANGES = 5  # skipped ranges (adjacent ones merged)
ST_LAST_END = 6  # file offset just after the last skipped range
ST_LOST_IDB = 7  # damaged pcapng blocks whose type field says interface description
ST_CLAIMED_END = 8  # where the damaged record being skipped claimed to end (file offset)
ST_SIZE = 9


@dataclass
class ReadCounters:
    """What the file reader read, and what it could not turn into packets (with where)."""

    records: int = 0
    truncated_records: int = 0  # a record (block) cut by the end of the file
    corrupt_records: int = 0  # damaged records or blocks (each one starts a skipped range)
    bytes_skipped: int = 0  # bytes of the file in skipped ranges
    damaged_ranges: list[tuple[int, int]] = field(default_factory=list)  # (offset, length)
    ranges_total: int = 0  # skipped ranges, all of them (only the first MAX_RANGES are listed)
    unreadable_packets: int = 0  # pcapng packets of an interface whose description is damaged
    unreadable_bytes: int = 0  # their captured bytes
    unknown_blocks: int = 0  # pcapng blocks that hold no packet (statistics, names, ...)
    unknown_block_types: int = 0  # pcapng blocks of a type the format does not define
    bytes_total: int = 0  # bytes of the file seen (its size once it has been read)
    link_types: dict[int, int] = field(default_factory=dict)
    # a byte range of a cut file: where its first record starts and where the next one does
    span: tuple[int, int] | None = None

    @property
    def damaged_bytes(self) -> int:
        """Bytes that could not be read: skipped ranges and packets of unreadable interfaces."""
        return self.bytes_skipped + self.unreadable_bytes

    @property
    def damaged_share(self) -> float:
        """The share of the file (0..1) that could not be read."""
        return min(1.0, self.damaged_bytes / self.bytes_total) if self.bytes_total else 0.0

    def absorb(self, other: ReadCounters) -> None:
        """Add another file's counts (the totals of a set of captures; byte ranges stay with
        each file)."""
        for name in ("records", "truncated_records", "corrupt_records", "bytes_skipped",
                     "ranges_total", "unreadable_packets", "unreadable_bytes", "unknown_blocks",
                     "unknown_block_types", "bytes_total"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for link, count in other.link_types.items():
            self.link_types[link] = self.link_types.get(link, 0) + count

    def sync(self, st: np.ndarray, ranges: np.ndarray) -> None:
        """Copy a walker's state array (totals for the file) into the counters."""
        self.corrupt_records = int(st[ST_CORRUPT])
        self.truncated_records = int(st[ST_TRUNCATED])
        if int(st[ST_SKIPPED]) != self.bytes_skipped or int(st[ST_RANGES]) != self.ranges_total:
            self.bytes_skipped = int(st[ST_SKIPPED])
            self.ranges_total = int(st[ST_RANGES])
            listed = min(self.ranges_total, ranges.shape[0])
            self.damaged_ranges = [(int(a), int(b)) for a, b in ranges[:listed].tolist()]


def new_state() -> tuple[np.ndarray, np.ndarray]:
    """A walker's state array and its skipped-range list."""
    return np.zeros(ST_SIZE, np.int64), np.zeros((MAX_RANGES, 2), np.int64)


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
# numba helpers


@kernel(inline=True)
def u32(buf: np.ndarray, p: int | np.int64, big: bool) -> np.int64:
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


@kernel(inline=True)
def u16(buf: np.ndarray, p: int | np.int64, big: bool) -> np.int64:
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return (np.int64(buf[p + 1]) << 8) | np.int64(buf[p])


@kernel("void(int64[:], int64[:, ::1], int64, int64)")
def add_range(st: np.ndarray, ranges: np.ndarray, start: int, length: int) -> None:
    """Count a skipped byte range (file offsets); one that continues the last one extends it."""
    if length <= 0:
        return
    st[ST_SKIPPED] += length
    k = st[ST_RANGES]
    if k > 0 and st[ST_LAST_END] == start:
        if k - 1 < ranges.shape[0]:
            ranges[k - 1, 1] += length
    else:
        if k < ranges.shape[0]:
            ranges[k, 0] = start
            ranges[k, 1] = length
        st[ST_RANGES] = k + 1
    st[ST_LAST_END] = start + length


@kernel("void(int64[:], int64, int64)")
def start_resync(st: np.ndarray, file_pos: int, claimed_end: int) -> None:
    """A damaged record starts at file_pos: count it and scan for the next plausible one."""
    st[ST_CORRUPT] += 1
    st[ST_RESYNC] = 1
    st[ST_SKIP_START] = file_pos
    st[ST_CLAIMED_END] = claimed_end


@kernel("void(int64[:], int64[:, ::1], int64, boolean)")
def end_resync(st: np.ndarray, ranges: np.ndarray, file_pos: int, file_end: bool) -> None:
    """The scan found a plausible record at file_pos, or reached the end of the file. There,
    a damaged record that claimed to run past the end is counted as cut, not as corrupt."""
    add_range(st, ranges, st[ST_SKIP_START], file_pos - st[ST_SKIP_START])
    st[ST_RESYNC] = 0
    if file_end and st[ST_CLAIMED_END] > file_pos:
        st[ST_CORRUPT] -= 1
        st[ST_TRUNCATED] += 1


# ---------------------------------------------------------------------------------------------


class Source:
    """A binary stream read in chunks into one numpy buffer (carrying the unread tail)."""

    def __init__(self, fh: BinaryIO, chunk: int) -> None:
        self.fh = fh
        self.chunk = chunk
        self.buf = np.empty(chunk + 2 * MAX_RECORD + 64, dtype=np.uint8)
        self.start = 0  # first unread byte in buf
        self.end = 0  # end of valid bytes in buf
        self.eof = False
        self.consumed = 0  # bytes of the file before buf[0]

    @property
    def seen(self) -> int:
        """Bytes of the file read so far."""
        return self.consumed + self.end

    def fill(self) -> None:
        """Move the unread tail to the front and read more (at most one chunk).

        The walkers never ask for more than fits (a record, or a block the caller has made room
        for with :meth:`grow`), so a full buffer here is a bug, not bad input.
        """
        tail = self.end - self.start
        if self.start:
            self.buf[:tail] = self.buf[self.start : self.end]
            self.consumed += self.start
        self.start, self.end = 0, tail
        room = min(self.chunk, self.buf.shape[0] - tail)
        if room <= 0 and not self.eof:
            raise RuntimeError("capture reader: no room left in its buffer")
        if not self.eof:
            view = self.buf.data[tail : tail + room]
            got = 0
            while got < room:
                k = self.fh.readinto(view[got:])  # type: ignore[attr-defined]  # BinaryIO omits readinto; io's files have it
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


def count_rest(src: Source, st: np.ndarray, ranges: np.ndarray, counters: ReadCounters) -> None:
    """At the end of the file the walkers consume every byte; anything left is counted."""
    if src.start < src.end:
        st[ST_TRUNCATED] += 1
        add_range(st, ranges, src.consumed + src.start, src.end - src.start)
        counters.sync(st, ranges)
        src.start = src.end
