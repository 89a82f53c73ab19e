"""Metering a set of captures on a Dask cluster, exactly as one meter would.

The split that keeps the flows exact:

1. **read** — the captures, in the order of their first packet, are cut into parts (whole files,
   and large classic pcaps into record-aligned byte ranges, :func:`~flowsentinel.capture.pcap.
   split_ranges`), grouped into tasks of a few tens of MB. Each task reads and decodes its parts
   and splits the packets by a hash of the flow key (both directions of a 5-tuple land in the same
   partition), keeping capture order inside each partition.
2. **meter** — one task per key partition concatenates its packets of every read task, in
   capture order, and meters them with one :class:`~flowsentinel.capture.meter.FlowMeter`.

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
from typing import TYPE_CHECKING, BinaryIO, cast

import numpy as np
import pyarrow as pa

from flowsentinel.capture.decode import Packets
from flowsentinel.capture.frame import flows_to_arrow
from flowsentinel.capture.meter import FlowMeter, MeterConfig
from flowsentinel.capture.pcap import RangeReader, split_ranges
from flowsentinel.capture.stream import (
    CaptureSource,
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
    """One piece of a capture set: a whole file, or a byte range of a classic pcap."""

    source: str
    start: int | None = None
    stop: int | None = None

    @property
    def size(self) -> int:
        if self.start is not None and self.stop is not None:
            return self.stop - self.start
        if "://" in self.source:
            return TASK_BYTES  # remote sizes are not looked up
        return Path(self.source).stat().st_size

    def open(self) -> CaptureSource:
        if self.start is None or self.stop is None:
            return self.source
        return cast(BinaryIO, RangeReader(self.source, self.start, self.stop))


def plan_parts(
    sources: Sequence[str], threads: int, stats: CaptureStats, *, min_range_bytes: int = 16 << 20
) -> list[Part]:
    """The parts of a capture set in metering order: files by first packet, and each local
    pcap cut into ranges (of at least ``min_range_bytes``): about ``READS_PER_THREAD ×
    threads`` over the set when it has fewer files than that, and none above
    :data:`TASK_BYTES` (a read task holds its part's decoded packets)."""
    ordered = [str(s) for s in order_captures(list(sources), stats)]
    want = max(1, READS_PER_THREAD * threads)
    share = -(-want // len(ordered)) if len(ordered) < want else 1
    parts: list[Part] = []
    for src in ordered:
        if "://" in src:
            parts.append(Part(src))
            continue
        cuts = max(share, -(-Path(src).stat().st_size // TASK_BYTES))
        ranges = split_ranges(src, cuts, min_bytes=min_range_bytes) if cuts > 1 else []
        if len(ranges) < 2:
            parts.append(Part(src))
        else:
            parts += [Part(src, a, b) for a, b in ranges]
    return parts


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


ReadResult = tuple[list[list[Packets]], list[CaptureStats]]


def read_task(parts: list[Part], partitions: int) -> ReadResult:
    """Read and decode consecutive parts; their packets by key partition (batches in capture
    order, not concatenated: the meter takes them one by one), and each part's counts."""
    chunks: list[list[Packets]] = [[] for _ in range(partitions)]
    stats = []
    for part in parts:
        st = CaptureStats()
        source = part.open()
        try:
            for pk in decoded_batches(source, st):
                for p, sub in enumerate(split_packets(pk, partitions)):
                    if len(sub):
                        chunks[p].append(sub)
        finally:
            if isinstance(source, RangeReader):
                source.close()
        st.source = part.source
        stats.append(st)
    return chunks, stats


def pick(result: ReadResult, p: int) -> ReadResult:
    """Partition ``p`` of a read task's result, with the read counts for partition 0 (they go
    back with its flows: no task of their own)."""
    return [result[0][p]], result[1] if p == 0 else []


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
    meter = FlowMeter(config)
    read: list[CaptureStats] = []
    for batches, counts in picked:
        for chunk in itertools.chain.from_iterable(batches):
            meter.add(chunk)
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
    whole set (one more task, run beside the others)."""
    from distributed import as_completed

    config = config or MeterConfig()
    stats = stats if stats is not None else CaptureStats()
    nthreads = client.nthreads()
    threads = max(1, sum(nthreads.values()))
    partitions = PARTITIONS_PER_THREAD * threads
    parts = plan_parts(sources, threads, stats, min_range_bytes=min_range_bytes)
    groups = group_parts(parts, threads)
    slots = [w for w, n in nthreads.items() for _ in range(n)] or [None]
    reads, picks = [], []
    for k, g in enumerate(groups):
        # a read task and its picks on one worker (a preference, not a rule: another worker
        # takes them if it is lost): a pick run elsewhere would move the whole read result
        where = slots[k % len(slots)]
        near = {"workers": [where], "allow_other_workers": True} if where else {}
        read = client.submit(read_task, g, partitions, pure=False, **near)
        reads.append(read)
        picks.append([client.submit(pick, read, p, **near) for p in range(partitions)])
    meters = [
        client.submit(meter_task, config, out_dir, p, *[row[p] for row in picks], pure=False)
        for p in range(partitions)
    ]
    ordered = list(dict.fromkeys(p.source for p in parts))
    extra = (
        [] if windows is None else [client.submit(windows_task, ordered, thresholds, pure=False)]
    )
    total = len(meters) + len(extra)
    done = 0
    try:
        for future in as_completed([*meters, *extra]):
            done += 1
            if on_done is not None:
                on_done(done, total)
            if extra and future is extra[0]:
                assert windows is not None
                windows(future.result())
                continue
            result = future.result()
            if result.read:
                _file_totals(stats, result.read)
            _meter_totals(stats, result.stats)
            yield result
    except Exception as exc:
        _cancel([*reads, *meters, *extra], client)
        raise _cluster_error(exc) from None


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
    """One byte range of a file into the file's counts (each range re-read the file header)."""
    header = 24 if file.packets or file.read.bytes_total else 0
    file.packets += part.packets
    file.bytes_read += part.bytes_read - header
    for reason, count in part.skipped.items():
        file.skipped[reason] = file.skipped.get(reason, 0) + count
    file.read.absorb(part.read)
    file.read.bytes_total -= header
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
