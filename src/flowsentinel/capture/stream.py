"""The streaming pipeline: capture → record batches → decoded packets → meter → flow batches.

This is the API the scan/watch commands and the service call. Every function takes a capture
as a path, raw bytes or a binary stream, and reports what could not be decoded in a
:class:`CaptureStats` the caller passes in (filled while the iterator runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pandas as pd
import pyarrow as pa

from flowsentinel.capture.decode import LINK_NAMES, REASONS, decode, new_counters
from flowsentinel.capture.frame import flows_to_arrow
from flowsentinel.capture.meter import FlowArrays, FlowMeter, MeterConfig
from flowsentinel.capture.pcap import ReadCounters, iter_records

CaptureSource = str | Path | bytes | bytearray | memoryview | BinaryIO


@dataclass
class CaptureStats:
    """What a run read, decoded, skipped and emitted (filled while the flows stream)."""

    source: str = ""
    packets: int = 0  # records read from the capture
    bytes_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # undecodable packets per reason
    read: ReadCounters = field(default_factory=ReadCounters)
    flows: int = 0
    meter: dict[str, int] = field(default_factory=dict)
    first_ts_us: int | None = None
    last_ts_us: int | None = None

    @property
    def decoded(self) -> int:
        return self.packets - sum(self.skipped.values())

    @property
    def problems(self) -> dict[str, int]:
        """Non-zero counts of everything that could not be read or decoded."""
        out = {k: v for k, v in self.skipped.items() if v}
        for name in ("truncated_records", "corrupt_records", "bytes_skipped"):
            value = getattr(self.read, name)
            if value:
                out[name] = value
        return out

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
                "non_packet_blocks": self.read.unknown_blocks,
                "link_types": {
                    f"{k} ({LINK_NAMES.get(k, 'unsupported')})": v
                    for k, v in self.read.link_types.items()
                },
            },
            "flows": self.flows,
            "flow_ends": self.meter,
        }


def _name(source: CaptureSource) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return getattr(source, "name", "<stream>")


def iter_flow_arrays(
    source: CaptureSource,
    *,
    config: MeterConfig | None = None,
    stats: CaptureStats | None = None,
    batch_packets: int = 65_536,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[FlowArrays]:
    """Yield finished flows as arrays, batch by batch, as they end (the fastest form)."""
    stats = stats if stats is not None else CaptureStats()
    stats.source = _name(source)
    meter = FlowMeter(config)
    counters = new_counters()

    def sync() -> None:
        stats.skipped = {r: int(c) for r, c in zip(REASONS[1:], counters[1:].tolist(), strict=True)}
        stats.meter = meter.counter_dict()

    for batch in iter_records(source, stats.read, batch_packets=batch_packets):
        pk = decode(batch, counters)
        stats.packets += len(batch)
        stats.bytes_read = batch.file_pos
        if stats.first_ts_us is None and len(batch):
            stats.first_ts_us = int(batch.ts_us[0])
        if len(batch):
            stats.last_ts_us = int(batch.ts_us[-1])
        meter.add(pk)
        meter.expire()
        sync()
        if on_progress is not None:
            on_progress(batch.file_pos)
        out = meter.take()
        if len(out):
            stats.flows += len(out)
            yield out
    meter.flush()
    sync()
    for out in meter.take_parts():
        if len(out):
            stats.flows += len(out)
            yield out


def iter_flow_batches(
    source: CaptureSource,
    *,
    config: MeterConfig | None = None,
    stats: CaptureStats | None = None,
    batch_packets: int = 65_536,
    kind: Literal["pandas", "arrow"] = "pandas",
) -> Iterator[pd.DataFrame | pa.Table]:
    """Yield DataFrames of finished flows (identifiers + 76 CIC features) as they end.

    ``source`` is a pcap/pcapng path, the capture's bytes (an upload) or a binary stream
    (``sys.stdin.buffer`` fed by ``tcpdump -w -``). Memory stays flat: flows are emitted when
    they end (FIN, flow timeout, end of capture) and the capture is read in chunks.
    """
    for flows in iter_flow_arrays(source, config=config, stats=stats, batch_packets=batch_packets):
        table = flows_to_arrow(flows)
        yield table if kind == "arrow" else table.to_pandas()


def extract_flows(
    source: CaptureSource, *, config: MeterConfig | None = None
) -> tuple[pd.DataFrame, CaptureStats]:
    """All flows of a capture in one DataFrame, with the decode statistics (small captures,
    uploads)."""
    stats = CaptureStats()
    tables = list(iter_flow_batches(source, config=config, stats=stats, kind="arrow"))
    if not tables:
        from flowsentinel.capture.frame import empty_table

        return empty_table().to_pandas(), stats
    return pa.concat_tables(tables).to_pandas(), stats  # type: ignore[arg-type]
