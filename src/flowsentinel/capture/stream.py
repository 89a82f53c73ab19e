"""The streaming pipeline: capture → record batches → decoded packets → meter → flow batches.

This is the API the scan/watch commands and the service call. Every function takes a capture
as a path, raw bytes or a binary stream, and reports what could not be decoded in a
:class:`CaptureStats` the caller passes in (filled while the iterator runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

import pyarrow as pa

from flowsentinel.capture.decode import LINK_NAMES, REASONS, Packets, decode, new_counters
from flowsentinel.capture.frame import flows_to_arrow
from flowsentinel.capture.meter import F_TOT_FWD, FlowArrays, FlowMeter, MeterConfig
from flowsentinel.capture.pcap import EmptyCaptureError, ReadCounters, iter_records
from flowsentinel.core.errors import InputError

if TYPE_CHECKING:  # pandas costs 0.2-0.3 s of start-up; tables convert through pyarrow
    import pandas as pd

CaptureSource = str | Path | bytes | bytearray | memoryview | BinaryIO
#: called with every decoded batch, after the meter (the aggregate detector's tap)
PacketTap = Callable[[Packets], None]
MAX_DAMAGED_SHARE = 0.01  # more than 1 % of the file unreadable: an error unless allowed
ALLOW_HINT = "pass --allow-damaged to keep what was read"


class DamagedCaptureError(InputError):
    """More of the capture could not be read than the caller allows (see check_damage)."""


@dataclass
class CaptureStats:
    """What a run read, decoded, skipped and emitted (filled while the flows stream)."""

    source: str = ""
    packets: int = 0  # records read from the capture
    bytes_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # undecodable packets per reason
    read: ReadCounters = field(default_factory=ReadCounters)
    flows: int = 0
    flow_packets: int = 0  # packets inside the flows emitted
    meter: dict[str, int] = field(default_factory=dict)
    first_ts_us: int | None = None
    last_ts_us: int | None = None  # the latest packet time
    #: a set of captures: each file's own counts, in metering order
    captures: list[CaptureStats] = field(default_factory=list)
    #: files of a set whose packets start before an earlier file's last packet:
    #: (earlier file, later file, overlap in µs)
    overlaps: list[tuple[str, str, int]] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # files of a set with no bytes at all
    _absorbed: bool = field(default=True, repr=False)

    @property
    def packets_read(self) -> int:
        """Packets read so far, the file being read included (a set adds each file's count
        to :attr:`packets` when the file ends)."""
        current = self.captures[-1] if self.captures and not self._absorbed else None
        return self.packets + (current.packets if current is not None else 0)

    def begin(self, source: CaptureSource) -> CaptureStats:
        """The counts of the next file of a set (added to the totals by :meth:`absorb`)."""
        part = CaptureStats(source=_name(source))
        self.captures.append(part)
        self._absorbed = False
        self.source = f"{len(self.captures) + len(self.empty)} captures"
        return part

    def _note_overlap(self, part: CaptureStats) -> None:
        if part.first_ts_us is None or self.last_ts_us is None:
            return
        if part.first_ts_us < self.last_ts_us:
            earlier = max(
                (p for p in self.captures if p is not part and p.last_ts_us is not None),
                key=lambda p: p.last_ts_us or 0,
            )
            self.overlaps.append((earlier.source, part.source, self.last_ts_us - part.first_ts_us))

    def absorb(self, part: CaptureStats) -> None:
        """Add one file's read and decode counts to the totals of the set, noting an overlap
        with the files before it."""
        self._note_overlap(part)
        self._absorbed = True
        self.packets += part.packets
        self.bytes_read += part.bytes_read
        for reason, count in part.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.read.absorb(part.read)
        if part.first_ts_us is not None:
            self.first_ts_us = min(self.first_ts_us or part.first_ts_us, part.first_ts_us)
        if part.last_ts_us is not None:
            self.last_ts_us = max(self.last_ts_us or 0, part.last_ts_us)
        self.source = f"{len(self.captures) + len(self.empty)} captures"

    @property
    def decoded(self) -> int:
        return self.packets - sum(self.skipped.values())

    @property
    def problems(self) -> dict[str, int]:
        """Non-zero counts of everything that could not be read or decoded."""
        out = {k: v for k, v in self.skipped.items() if v}
        for name in _FILE_PROBLEMS:
            value = getattr(self.read, name)
            if value:
                out[name] = value
        return out

    def damage(self) -> str | None:
        """One line saying how much of the file could not be read and where, None if all of
        it was read (a set: the most damaged file's line)."""
        if self.captures:
            worst = max(self.captures, key=lambda p: p.read.damaged_share)
            return worst.damage()
        r = self.read
        parts = []
        if r.ranges_total:
            ranges = "range" if r.ranges_total == 1 else "ranges"
            first = r.damaged_ranges[0][0]
            parts.append(f"{r.ranges_total:,} damaged {ranges}, first at byte {first:,}")
        if r.unreadable_packets:
            parts.append(f"{r.unreadable_packets:,} packets of unreadable interfaces")
        if not parts:
            return None
        share = _percent(r.damaged_share)
        return f"{self.source}: {share} of the file could not be read ({'; '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "packets": self.packets,
            "decoded": self.decoded,
            "skipped": {k: v for k, v in self.skipped.items() if v},
            "file": {
                "truncated_records": self.read.truncated_records,
                "corrupt_records": self.read.corrupt_records,
                "bytes_skipped": self.read.bytes_skipped,
                "damaged_ranges": [list(r) for r in self.read.damaged_ranges],
                "damaged_ranges_total": self.read.ranges_total,
                "unreadable_packets": self.read.unreadable_packets,
                "unreadable_bytes": self.read.unreadable_bytes,
                "damaged_share": round(self.read.damaged_share, 6),
                "bytes": self.read.bytes_total,
                "non_packet_blocks": self.read.unknown_blocks,
                "unknown_block_types": self.read.unknown_block_types,
                "link_types": {
                    f"{k} ({LINK_NAMES.get(k, 'unsupported')})": v
                    for k, v in self.read.link_types.items()
                },
            },
            "flows": self.flows,
            "flow_packets": self.flow_packets,
            "flow_ends": self.meter,
            **({"captures": [_file_dict(p) for p in self.captures]} if self.captures else {}),
            **({"overlaps": _overlap_dicts(self.overlaps)} if self.overlaps else {}),
            **({"empty_captures": self.empty} if self.empty else {}),
        }


def _overlap_dicts(overlaps: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    return [{"earlier": a, "later": b, "overlap_s": us / 1e6} for a, b, us in overlaps]


def _file_dict(part: CaptureStats) -> dict[str, Any]:
    """One file of a set: what was read from it, and when its packets start and end."""
    return {
        "source": part.source,
        "packets": part.packets,
        "decoded": part.decoded,
        "first_packet_us": part.first_ts_us,
        "last_packet_us": part.last_ts_us,
        "damaged_share": round(part.read.damaged_share, 6),
        "problems": part.problems,
    }


_FILE_PROBLEMS = (
    "truncated_records",
    "corrupt_records",
    "bytes_skipped",
    "unreadable_packets",
    "unknown_block_types",
)


def _percent(share: float) -> str:
    pct = 100 * share
    return f"{pct:.1f} %" if pct >= 0.1 or pct == 0 else f"{pct:.2g} %"


def check_damage(
    stats: CaptureStats,
    *,
    allow_damaged: bool = False,
    max_share: float = MAX_DAMAGED_SHARE,
    hint: str = ALLOW_HINT,
) -> str | None:
    """After a capture has been read: raise :class:`DamagedCaptureError` (one line) if more
    than ``max_share`` of its bytes could not be read and ``allow_damaged`` is false; otherwise
    return the damage as one warning line (None when the whole file was read)."""
    line = stats.damage()
    worst = max([stats, *stats.captures], key=lambda p: p.read.damaged_share)
    if line is not None and worst.read.damaged_share > max_share and not allow_damaged:
        raise DamagedCaptureError(f"{line}; {hint}")
    return line


def _name(source: CaptureSource) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return getattr(source, "name", "<stream>")


def decoded_batches(
    source: CaptureSource,
    stats: CaptureStats,
    *,
    batch_packets: int = 65_536,
    on_progress: Callable[[int], None] | None = None,
    byte_range: tuple[int, int | None] | None = None,
) -> Iterator[Packets]:
    """Read and decode one capture batch by batch, counting what was read and skipped in
    ``stats`` (packets, bytes, first and last packet time, undecodable packets per reason);
    ``byte_range``: the records of one part of a cut pcap (:func:`~flowsentinel.capture.pcap.
    iter_records`)."""
    stats.source = _name(source)
    counters = new_counters()
    records = iter_records(source, stats.read, batch_packets=batch_packets, byte_range=byte_range)
    for batch in records:
        pk = decode(batch, counters)
        stats.packets += len(batch)
        stats.bytes_read = batch.file_pos
        if len(batch):
            if stats.first_ts_us is None:
                stats.first_ts_us = int(batch.ts_us[0])
            stats.last_ts_us = max(stats.last_ts_us or 0, int(batch.ts_us.max()))
        stats.skipped = {r: int(c) for r, c in zip(REASONS[1:], counters[1:].tolist(), strict=True)}
        if on_progress is not None:
            on_progress(batch.file_pos)
        yield pk


def iter_flow_arrays(
    source: CaptureSource | Sequence[CaptureSource],
    *,
    config: MeterConfig | None = None,
    stats: CaptureStats | None = None,
    batch_packets: int = 65_536,
    on_progress: Callable[[int], None] | None = None,
    tap: PacketTap | None = None,
) -> Iterator[FlowArrays]:
    """Yield finished flows as arrays, batch by batch, as they end (the fastest form);
    ``tap`` sees every decoded batch once the meter has it.

    ``source`` may be a list of captures: they are one continuous capture, in the order of
    their first packet (see :func:`order_captures`), metered by one meter, so that a flow
    crossing from one file to the next is one flow. ``stats`` then holds the totals and, in
    ``stats.captures``, each file's own counts; overlapping files are listed in
    ``stats.overlaps``.
    """
    stats = stats if stats is not None else CaptureStats()
    sources = (
        order_captures(source, stats)
        if isinstance(source, list | tuple)
        else [cast("CaptureSource", source)]
    )
    meter = FlowMeter(config)
    done = 0  # bytes of the files already read (progress over a set)
    for src in sources:
        part = stats if len(sources) == 1 and not stats.captures else stats.begin(src)
        progress = None if on_progress is None else _offset(on_progress, done)
        for pk in decoded_batches(src, part, batch_packets=batch_packets, on_progress=progress):
            meter.add(pk)  # sweeps as packet time passes each second (meter.SWEEP_EVERY_US)
            if tap is not None:
                tap(pk)
            stats.meter = meter.counter_dict()
            out = meter.take()
            if len(out):
                count_flows(stats, out)
                yield out
        done += part.bytes_read
        if part is not stats:
            stats.absorb(part)
    meter.flush()
    stats.meter = meter.counter_dict()
    for out in meter.take_parts():
        if len(out):
            count_flows(stats, out)
            yield out


def _offset(on_progress: Callable[[int], None], done: int) -> Callable[[int], None]:
    return lambda pos: on_progress(done + pos)


def first_packet_time(source: CaptureSource) -> int | None:
    """The time (µs) of a capture's first packet, reading only its first chunk; None for a
    capture without packets or an empty file."""
    try:
        for batch in iter_records(source, ReadCounters(), batch_packets=1, chunk_bytes=1 << 16):
            if len(batch):
                return int(batch.ts_us[0])
    except EmptyCaptureError:
        return None
    return None


def order_captures(
    sources: Sequence[CaptureSource], stats: CaptureStats | None = None
) -> list[CaptureSource]:
    """A set of captures in the order of their first packet (captures without packets last,
    in the order given); files with no bytes at all are left out and listed in
    ``stats.empty``."""
    firsts = [first_packet_time(s) for s in sources]
    if stats is not None:
        stats.empty = [_name(s) for s, f in zip(sources, firsts, strict=True) if _no_bytes(s, f)]
    keyed = [
        (f is None, f or 0, k)
        for k, (s, f) in enumerate(zip(sources, firsts, strict=True))
        if not _no_bytes(s, f)
    ]
    return [sources[k] for _, _, k in sorted(keyed)]


def _no_bytes(source: CaptureSource, first: int | None) -> bool:
    if first is not None:
        return False
    if isinstance(source, bytes | bytearray | memoryview):
        return len(source) == 0
    if isinstance(source, str | Path) and "://" not in str(source):
        return Path(source).is_file() and Path(source).stat().st_size == 0
    return False


def count_flows(stats: CaptureStats, flows: FlowArrays) -> None:
    """Count emitted flows and the packets in them (forward + backward)."""
    stats.flows += len(flows)
    stats.flow_packets += int(flows.features[:, F_TOT_FWD : F_TOT_FWD + 2].sum())


def iter_flow_batches(
    source: CaptureSource | Sequence[CaptureSource],
    *,
    config: MeterConfig | None = None,
    stats: CaptureStats | None = None,
    batch_packets: int = 65_536,
    kind: Literal["pandas", "arrow"] = "pandas",
    tap: PacketTap | None = None,
) -> Iterator[pd.DataFrame | pa.Table]:
    """Yield DataFrames of finished flows (identifiers + 76 CIC features) as they end.

    ``source`` is a pcap/pcapng path, the capture's bytes (an upload) or a binary stream
    (``sys.stdin.buffer`` fed by ``tcpdump -w -``). Memory stays flat: flows are emitted when
    they end (FIN, flow timeout, end of capture) and the capture is read in chunks.
    """
    arrays = iter_flow_arrays(
        source, config=config, stats=stats, batch_packets=batch_packets, tap=tap
    )
    for flows in arrays:
        table = flows_to_arrow(flows)
        yield table if kind == "arrow" else table.to_pandas()


def extract_flows(
    source: CaptureSource | Sequence[CaptureSource], *, config: MeterConfig | None = None
) -> tuple[pd.DataFrame, CaptureStats]:
    """All flows of a capture in one DataFrame, with the decode statistics (small captures,
    uploads)."""
    stats = CaptureStats()
    tables = list(iter_flow_batches(source, config=config, stats=stats, kind="arrow"))
    if not tables:
        from flowsentinel.capture.frame import empty_table

        return empty_table().to_pandas(), stats
    return pa.concat_tables(tables).to_pandas(), stats
