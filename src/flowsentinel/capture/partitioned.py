"""Metering a set of captures on a Dask cluster, exactly as one meter would.

The split that keeps the flows exact:

1. **read** — the captures, in the order of their first packet, are cut into parts (whole files,
   and large classic pcaps into byte ranges at equal offsets, which nothing reads before the
   tasks do), grouped into tasks of a few tens of MB. Each task reads and decodes its parts (a
   range from its first plausible chain of records up to the first record at or after its end,
   :func:`~flowsentinel.capture.pcap.iter_records`) and splits the packets by a hash of the flow
   key (both directions of a 5-tuple land in the same partition), keeping capture order inside
   each partition. A partition's share of a batch travels in narrow types
   (:class:`PacketShare`: 44 bytes an IPv4 packet instead of 74), since half of it crosses to
   another worker.
2. **meter** — one task per key partition takes its packets of every read task, batch by batch
   in capture order, and meters them with one :class:`~flowsentinel.capture.meter.FlowMeter`.

Before metering, each metering task checks that every range of a cut file begins where the
reader of the range before it found the next record (:func:`check_cuts`): then the ranges hold
exactly the records of one reader of the whole file. When they do not (a chain of plausible
records inside a packet's payload, damage at a cut), every metering task fails alike before any
flow is out, and the job runs again with that file read whole.

Every packet of a flow key is in one partition, in the order of the merged capture, and the
meter's rows depend on a flow's own packets only (its sweeps follow packet time, see
``meter.SWEEP_EVERY_US``), so the flows are those of one meter over the merged capture,
including flows that cross file boundaries, timeouts and FIN cuts. Only their order differs
(each partition emits its own flows in the order they end).

Both phases use all workers: one large capture is read by several tasks, and metering is
spread over ``PARTITIONS_PER_THREAD ×`` the cluster's threads partitions.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from flowsentinel.capture.decode import Packets
from flowsentinel.capture.frame import flows_to_arrow
from flowsentinel.capture.meter import FlowMeter, MeterConfig
from flowsentinel.capture.pcap import (
    PCAP_HEADER,
    UnalignedCut,
    file_head,
    is_classic_pcap_magic,
)
from flowsentinel.capture.records import ReadCounters
from flowsentinel.capture.stream import (
    CaptureStats,
    count_flows,
    decoded_batches,
    order_captures,
)
from flowsentinel.core.cluster import ClusterError

if TYPE_CHECKING:  # the aggregate detector (polars, 0.12 s per worker) only for its own task
    from distributed import Client, Future

    from flowsentinel.capture.windows import Thresholds, WindowHit

TASK_BYTES = 128 << 20  # a read task takes consecutive parts up to about this many bytes
READS_PER_THREAD = 1  # read tasks per thread when the set is smaller than TASK_BYTES per task
PARTITIONS_PER_THREAD = 2  # key partitions (metering tasks) per thread
_PACKET_FIELDS = tuple(f.name for f in fields(Packets))


@dataclass(frozen=True)
class Part:
    """One piece of a capture set: a whole file, or the records of a classic pcap that start
    in the byte range ``[start, stop)`` (``stop`` None: to the end of the file)."""

    source: str
    start: int | None = None
    stop: int | None = None
    size: int = 0  # bytes, for grouping parts into read tasks

    @property
    def byte_range(self) -> tuple[int, int | None] | None:
        return None if self.start is None else (self.start, self.stop)


def plan_parts(
    sources: Sequence[str],
    threads: int,
    stats: CaptureStats,
    *,
    min_range_bytes: int = 16 << 20,
    whole: frozenset[str] = frozenset(),
) -> list[Part]:
    """The parts of a capture set in metering order: files by first packet, and each classic
    pcap (local or at a URL) cut at equal byte offsets into ranges of at least
    ``min_range_bytes``: about ``READS_PER_THREAD × threads`` over the set when it has fewer
    files than that, and none above :data:`TASK_BYTES` (a read task holds its part's decoded
    packets). The cuts are guesses that nothing reads here: each range's reader finds its
    first record, and the metering tasks check that every range begins where the one before
    it ended (:func:`check_cuts`); the files in ``whole`` are not cut."""
    ordered = [str(s) for s in order_captures(list(sources), stats)]
    want = max(1, READS_PER_THREAD * threads)
    share = -(-want // len(ordered)) if len(ordered) < want else 1
    parts: list[Part] = []
    for src in ordered:
        size = _size(src)
        if size is None:  # not cut: read whole, by one task
            parts.append(Part(src, size=TASK_BYTES))
            continue
        cuts = min(max(share, -(-size // TASK_BYTES)), size // max(1, min_range_bytes))
        if cuts < 2 or src in whole or not is_classic_pcap_magic(file_head(src)):
            parts.append(Part(src, size=size))
            continue
        starts = [PCAP_HEADER, *(size * k // cuts for k in range(1, cuts))]
        stops: list[int | None] = [*starts[1:], None]
        parts += [
            Part(src, a, b, (size if b is None else b) - a)
            for a, b in zip(starts, stops, strict=True)
        ]
    return parts


def _size(source: str) -> int | None:
    """The file's bytes (None: a store that does not tell, such as HTTP without a length)."""
    if "://" not in source:
        return Path(source).stat().st_size
    import fsspec

    fs, path = fsspec.core.url_to_fs(source)
    size = fs.size(path)
    return None if size is None else int(size)


def group_parts(parts: list[Part], threads: int) -> list[list[Part]]:
    """Consecutive parts grouped into read tasks of about :data:`TASK_BYTES`, or of an equal
    share per thread when the set is smaller than that (as few tasks as keep every thread
    busy: each task costs the scheduler and its partitions' transfers)."""
    total = sum(p.size for p in parts)
    target = max(1, min(TASK_BYTES, -(-total // max(1, READS_PER_THREAD * threads))))
    groups: list[list[Part]] = [[]]
    size = 0
    for part in parts:
        if groups[-1] and size + part.size > target + target // 8:  # ranges: about equal
            groups.append([])
            size = 0
        groups[-1].append(part)
        size += part.size
    return [g for g in groups if g]


# ---------------------------------------------------------------------------------------------
# the tasks (run on the workers)


MAX_PARTITIONS = 1 << 14  # key partitions fit an int16 (split_packets sorts them as such)


def key_partition(pk: Packets, partitions: int) -> np.ndarray:
    """The partition of every packet's flow key (the same for both directions of a 5-tuple);
    -1 for packets the meter skips."""
    with np.errstate(over="ignore"):
        a = _mix(pk.src_hi * np.uint64(0x9E3779B97F4A7C15) ^ pk.src_lo) ^ _mix(
            pk.sport.astype(np.uint64)
        )
        b = _mix(pk.dst_hi * np.uint64(0x9E3779B97F4A7C15) ^ pk.dst_lo) ^ _mix(
            pk.dport.astype(np.uint64)
        )
        h = _mix((_mix(a) + _mix(b)) ^ pk.proto.astype(np.uint64))
    part = (h % np.uint64(partitions)).astype(np.int64)
    part[pk.reason != 0] = -1
    return part


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (wrapping uint64 arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def split_packets(pk: Packets, partitions: int) -> list[Packets]:
    """The metered packets of ``pk`` by key partition, each in capture order."""
    part = key_partition(pk, partitions)
    order = np.argsort(part.astype(np.int16), kind="stable")  # a radix sort: O(n)
    counts = np.bincount(part + 1, minlength=partitions + 1)
    bounds = np.cumsum(counts)  # [skipped | p0 | p1 | ...]
    cols = {name: getattr(pk, name)[order] for name in _PACKET_FIELDS}
    return [
        Packets(**{name: col[bounds[p] : bounds[p + 1]] for name, col in cols.items()})
        for p in range(partitions)
    ]


@dataclass(frozen=True)
class Span:
    """What the reader of a byte range read: the file bytes from its first record to the
    record after its last (``start`` -1: no record found), and whether its damage counts are
    its own (the reader walks on past its end in the same call: damage it met there is the
    next range's to count)."""

    source: str
    start: int
    end: int
    own_counts: bool

    @classmethod
    def of(cls, source: str, counters: ReadCounters) -> Span:
        assert counters.span is not None
        start, end = counters.span
        listed = counters.damaged_ranges
        own = counters.ranges_total == len(listed) and all(at < end for at, _ in listed)
        return cls(source, start, end, own)


class CutMismatch(Exception):  # noqa: N818 - a signal to read files whole, not an error
    """Byte ranges of cut files that do not join up: those files are to be read whole."""

    def __init__(self, sources: tuple[str, ...]) -> None:
        super().__init__(sources)
        self.sources = sources


#: the narrow types a metered packet's fields fit by definition (16-bit ports, 8-bit protocol
#: and flags, a transport header of at most 60 bytes); the meter takes them back as int32
_NARROW: dict[str, type[np.generic]] = {
    "sport": np.uint16, "dport": np.uint16, "proto": np.uint8, "hdr": np.uint8,
    "flags": np.uint8,
}  # fmt: skip
_HIGH_WORDS = ("src_hi", "dst_hi")  # zero for IPv4: not sent when no packet is IPv6
_SHARE_FIELDS = tuple(name for name in _PACKET_FIELDS if name != "reason")


@dataclass(frozen=True)
class PacketShare:
    """One key partition's packets of one decoded batch, as they travel to its metering task:
    metered packets only (their ``reason`` is 0), fields in their narrowest exact types, the
    addresses' high words left out when every packet is IPv4 (44 bytes a packet, not 74)."""

    n: int
    columns: dict[str, np.ndarray]

    @classmethod
    def of(cls, pk: Packets) -> PacketShare:
        columns = {name: getattr(pk, name) for name in _SHARE_FIELDS}
        for name, narrow in _NARROW.items():
            columns[name] = columns[name].astype(narrow)
        if not pk.v6.any():
            for name in _HIGH_WORDS:
                del columns[name]
        return cls(len(pk), columns)

    def packets(self) -> Packets:
        cols = dict(self.columns)
        for name in _NARROW:
            cols[name] = cols[name].astype(np.int32)
        for name in _HIGH_WORDS:
            if name not in cols:
                cols[name] = np.zeros(self.n, np.uint64)
        return Packets(reason=np.zeros(self.n, np.int8), **cols)


ReadResult = tuple[list[list[PacketShare]], list[CaptureStats], list[Span]]


def read_task(parts: list[Part], partitions: int) -> ReadResult:
    """Read and decode consecutive parts; their packets by key partition (each batch's share,
    in capture order), each part's counts, and the spans of the byte ranges read."""
    chunks: list[list[PacketShare]] = [[] for _ in range(partitions)]
    stats, spans = [], []
    for part in parts:
        st = CaptureStats()
        try:
            for pk in decoded_batches(part.source, st, byte_range=part.byte_range):
                for p, sub in enumerate(split_packets(pk, partitions)):
                    if len(sub):
                        chunks[p].append(PacketShare.of(sub))
        except UnalignedCut:
            spans.append(Span(part.source, -1, -1, own_counts=False))
            continue
        st.source = part.source
        stats.append(st)
        if st.read.span is not None:
            st.bytes_read = st.read.bytes_total
            spans.append(Span.of(part.source, st.read))
    return chunks, stats, spans


def pick(result: ReadResult, p: int) -> ReadResult:
    """Partition ``p`` of a read task's result, with the read counts for partition 0 (they go
    back with its flows: no task of their own) and the spans for every partition (each
    metering task checks them)."""
    return [result[0][p]], result[1] if p == 0 else [], result[2]


def check_cuts(spans: list[Span]) -> None:
    """Raise :class:`CutMismatch` naming the files whose byte ranges (in order) do not join
    up: a range must begin where the reader of the range before it found the next record, and
    hold the damage counts of its own bytes only. The first range begins at the first record;
    each next one then begins at a record the reader of the whole file reaches, and reads on
    from there as that reader does (the reader's decisions depend on the bytes, not on where
    its reads begin): the ranges hold exactly the records and counts of one reader of the
    whole file."""
    bad: list[str] = []
    for source, group in itertools.groupby(spans, key=lambda s: s.source):
        ranges = list(group)
        if any(s.start < 0 for s in ranges) or any(
            a.end != b.start or not a.own_counts for a, b in itertools.pairwise(ranges)
        ):
            bad.append(source)
    if bad:
        raise CutMismatch(tuple(bad))


def windows_task(sources: list[str], thresholds: Thresholds | None = None) -> list[WindowHit]:
    """The aggregate detector over a whole set of captures, in order (one task: its windows
    need every packet to a destination host, which the key partitions spread out)."""
    from flowsentinel.capture.windows import WindowDetector

    detector = WindowDetector(thresholds)
    hits: list[WindowHit] = []
    for source in sources:
        for pk in decoded_batches(source, CaptureStats()):
            detector.add(pk)
            hits += detector.take()
    detector.flush()
    return hits + detector.take()


@dataclass
class MeterResult:
    """What one key partition's meter produced."""

    table: pa.Table | None  # the flows (None when written to ``path``)
    path: str | None
    stats: CaptureStats  # flows, flow packets and flow ends of the partition
    read: list[CaptureStats] = field(default_factory=list)  # every part's read counts (p 0)


def meter_task(
    config: MeterConfig, out: str | None, index: int, *picked: ReadResult
) -> MeterResult:
    """Meter one key partition's packets (every read task's batches, in capture order); the
    flows as one Arrow table, or written as parquet to ``out/part-INDEX.parquet`` when ``out``
    is given."""
    check_cuts([span for _, _, spans in picked for span in spans])
    meter = FlowMeter(config)
    read: list[CaptureStats] = []
    for shares, counts, _ in picked:
        for share in itertools.chain.from_iterable(shares):
            meter.add(share.packets())
        read += counts
    meter.flush()
    stats = CaptureStats()
    tables = []
    for flows in meter.take_parts():
        count_flows(stats, flows)
        tables.append(flows_to_arrow(flows))
    stats.meter = meter.counter_dict()
    table = pa.concat_tables(tables) if tables else flows_to_arrow(meter.take())
    if out is None:
        return MeterResult(table, None, stats, read)
    return MeterResult(None, write_part(table, out, index), stats, read)


def write_part(table: pa.Table, out: str, index: int) -> str:
    """Write one partition of a parquet dataset (any fsspec URL)."""
    import fsspec
    import pyarrow.parquet as pq

    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    path = f"{root.rstrip('/')}/part-{index:05d}.parquet"
    with fs.open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
    return path


# ---------------------------------------------------------------------------------------------
# the client side


def meter_on_cluster(
    client: Client,
    sources: Sequence[str],
    *,
    config: MeterConfig | None = None,
    stats: CaptureStats | None = None,
    out_dir: str | None = None,
    on_done: Callable[[int, int], None] | None = None,
    min_range_bytes: int = 16 << 20,
    windows: Callable[[list[WindowHit]], None] | None = None,
    thresholds: Thresholds | None = None,
) -> Iterator[MeterResult]:
    """Meter a set of captures on the cluster; yields each key partition's result (flows, or
    the parquet part written under ``out_dir``) as it finishes. ``stats`` gets the totals and
    the per-file counts once everything is done; ``on_done(finished, total)`` follows the
    tasks; ``windows``, when given, receives the aggregate detector's flagged windows of the
    whole set (one more task, run beside the others).

    When the byte ranges of a cut file do not join up (:func:`check_cuts`), every metering
    task fails alike before any flow is yielded; the job is submitted again with that file
    read whole."""
    from distributed import as_completed

    config = config or MeterConfig()
    stats = stats if stats is not None else CaptureStats()
    job = _Job(client, config, out_dir, stats, min_range_bytes)
    parts = job.submit(sources, frozenset())
    ordered = list(dict.fromkeys(p.source for p in parts))
    extra = (
        [] if windows is None else [client.submit(windows_task, ordered, thresholds, pure=False)]
    )
    total = len(job.meters) + len(extra)
    pending = as_completed([*job.meters, *extra])
    try:
        for future in pending:
            if extra and future is extra[0]:
                assert windows is not None
                windows(future.result())
            elif future not in job.meters:
                continue  # a job given up for a file read whole
            else:
                try:
                    result = future.result()
                except CutMismatch as exc:
                    pending.update(job.again(sources, exc.sources))
                    continue
                if result.read:
                    _file_totals(stats, result.read)
                _meter_totals(stats, result.stats)
                yield result
            if on_done is not None:
                on_done(len(job.finished(extra)), total)
    except Exception as exc:
        _cancel([*job.reads, *job.meters, *extra], client)
        raise _cluster_error(exc) from None


@dataclass
class _Job:
    """The read and metering tasks of one submission of a capture set."""

    client: Client
    config: MeterConfig
    out_dir: str | None
    stats: CaptureStats
    min_range_bytes: int
    whole: frozenset[str] = frozenset()
    reads: list[Future] = field(default_factory=list)
    meters: list[Future] = field(default_factory=list)

    def submit(self, sources: Sequence[str], whole: frozenset[str]) -> list[Part]:
        nthreads = self.client.nthreads()
        threads = max(1, sum(nthreads.values()))
        partitions = PARTITIONS_PER_THREAD * threads
        self.whole = whole
        parts = plan_parts(
            sources, threads, self.stats, min_range_bytes=self.min_range_bytes, whole=whole
        )
        slots = [w for w, n in nthreads.items() for _ in range(n)] or [None]
        self.reads, picks = [], []
        for k, g in enumerate(group_parts(parts, threads)):
            # a read task and its picks on one worker (a preference, not a rule: another
            # worker takes them if it is lost): a pick run elsewhere would move the whole
            # read result
            where = slots[k % len(slots)]
            near = {"workers": [where], "allow_other_workers": True} if where else {}
            read = self.client.submit(read_task, g, partitions, pure=False, **near)
            self.reads.append(read)
            picks.append([self.client.submit(pick, read, p, **near) for p in range(partitions)])
        self.meters = [
            self.client.submit(
                meter_task, self.config, self.out_dir, p, *[row[p] for row in picks], pure=False
            )
            for p in range(partitions)
        ]
        return parts

    def again(self, sources: Sequence[str], unjoined: tuple[str, ...]) -> list[Future]:
        """Give up this submission and submit the set again with ``unjoined`` read whole."""
        if set(unjoined) <= self.whole:  # cannot happen: whole files have no byte ranges
            raise RuntimeError(f"byte ranges of {unjoined} do not join up")
        _cancel([*self.reads, *self.meters], self.client)
        self.submit(sources, self.whole | set(unjoined))
        return self.meters

    def finished(self, extra: list[Future]) -> list[Future]:
        return [f for f in [*self.meters, *extra] if f.done()]


def _file_totals(stats: CaptureStats, parts: list[CaptureStats]) -> None:
    """Per-file counts (byte ranges of one file added up) into the set's totals, in metering
    order."""
    files: dict[str, CaptureStats] = {}
    for part in parts:
        if part.source not in files:
            files[part.source] = stats.begin(part.source)
        _add_range(files[part.source], part)
    for file in files.values():
        stats.absorb(file)
    if len(files) == 1 and not stats.empty:
        only = stats.captures.pop()
        stats.source = only.source
        stats.read = only.read


def _add_range(file: CaptureStats, part: CaptureStats) -> None:
    """One byte range of a file into the file's counts (a range's bytes are those of its span,
    the file header with the first)."""
    file.packets += part.packets
    file.bytes_read += part.bytes_read
    for reason, count in part.skipped.items():
        file.skipped[reason] = file.skipped.get(reason, 0) + count
    file.read.absorb(part.read)
    file.read.damaged_ranges += part.read.damaged_ranges
    if part.first_ts_us is not None:
        file.first_ts_us = part.first_ts_us if file.first_ts_us is None else file.first_ts_us
    if part.last_ts_us is not None:
        file.last_ts_us = max(file.last_ts_us or 0, part.last_ts_us)


def _meter_totals(stats: CaptureStats, part: CaptureStats) -> None:
    stats.flows += part.flows
    stats.flow_packets += part.flow_packets
    for name, count in part.meter.items():
        stats.meter[name] = stats.meter.get(name, 0) + count


def _cancel(futures: list[Future], client: Client) -> None:
    with contextlib.suppress(Exception):  # the job's own error is what the user needs
        client.cancel(futures)


def _cluster_error(exc: BaseException) -> Exception:
    """A job the cluster could not finish as one line (input errors keep their own line)."""
    from flowsentinel.core.errors import FlowsentinelError

    if isinstance(exc, FlowsentinelError):
        return exc
    name = type(exc).__name__
    first = str(exc).splitlines()[0] if str(exc) else ""
    if name == "KilledWorker":
        return ClusterError(
            f"the cluster lost the workers running a task ({first}); nothing was written"
        )
    return ClusterError(
        f"the cluster could not finish the job ({name}: {first}); nothing was written"
    )


def write_flows_on_cluster(
    client: Client,
    sources: Sequence[str],
    out: Path | str,
    *,
    config: MeterConfig | None = None,
    stats: CaptureStats | None = None,
    check: Callable[[CaptureStats], object] | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> CaptureStats:
    """:func:`~flowsentinel.capture.output.write_flows` on a cluster: a parquet dataset is
    written by the workers (one part per key partition), one file by this process as the
    partitions finish. Nothing is left under ``out`` unless the whole job succeeded."""
    from flowsentinel.capture.output import DatasetWriter, open_writer

    stats = stats if stats is not None else CaptureStats()
    writer = open_writer(out)
    into = writer.tmp if isinstance(writer, DatasetWriter) else None
    try:
        for result in meter_on_cluster(
            client, sources, config=config, stats=stats, out_dir=_url(writer, into), on_done=on_done
        ):
            if result.table is not None:
                writer.write(result.table)
            else:
                assert isinstance(writer, DatasetWriter)
                writer.add_written(result.stats.flows)
        if check is not None:
            check(stats)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return stats


def _url(writer: object, path: str | None) -> str | None:
    """The URL the workers write parts to (the writer's filesystem and temporary folder)."""
    if path is None:
        return None
    fs = getattr(writer, "fs")  # noqa: B009 - the dataset writer's fsspec filesystem
    return fs.unstrip_protocol(path) if hasattr(fs, "unstrip_protocol") else path
