"""Write the flows of a capture to CSV or parquet, streaming (one batch at a time)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from flowsentinel.capture.frame import empty_table, flows_to_arrow
from flowsentinel.capture.meter import FlowArrays, MeterConfig
from flowsentinel.capture.stream import CaptureSource, CaptureStats, iter_flow_arrays
from flowsentinel.core.errors import InputError

OUTPUT_SUFFIXES = (".csv", ".parquet")
Labeller = Callable[[FlowArrays, pa.Table], pa.Table]


def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError("the output must end in .csv or .parquet", path=path)
    return suffix[1:]


class FlowWriter:
    """Append Arrow tables of flows to one CSV or parquet file (written to a temporary name
    and renamed when closed, so a failed run never leaves half a file under the final name)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fmt = output_format(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.partial")
        self._writer: pacsv.CSVWriter | pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.fmt == "csv":
                self._writer = pacsv.CSVWriter(
                    str(self.tmp),
                    table.schema,
                    write_options=pacsv.WriteOptions(quoting_style="needed"),
                )
            else:
                self._writer = pq.ParquetWriter(str(self.tmp), table.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self, schema_if_empty: pa.Schema | None = None) -> None:
        if self._writer is None:
            self.write(empty_table() if schema_if_empty is None else schema_if_empty.empty_table())
        assert self._writer is not None
        self._writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)


def write_flows(
    source: CaptureSource,
    out: Path,
    *,
    config: MeterConfig | None = None,
    labeller: Labeller | None = None,
    on_progress: Callable[[int], None] | None = None,
    stats: CaptureStats | None = None,
    check: Callable[[CaptureStats], object] | None = None,
) -> CaptureStats:
    """Meter a capture and write its flows to ``out`` (.csv or .parquet); returns the stats.

    ``labeller(flows, table)`` may return the table with a ``Label`` column added. ``check``
    is called with the stats once the whole capture has been read, before the file gets its
    final name: if it raises (e.g. :func:`~flowsentinel.capture.stream.check_damage`), no
    output is left behind and ``stats`` (when passed) still holds what was read.
    """
    stats = stats if stats is not None else CaptureStats()
    writer = FlowWriter(out)
    try:
        for flows in iter_flow_arrays(source, config=config, stats=stats, on_progress=on_progress):
            table = flows_to_arrow(flows)
            if labeller is not None:
                table = labeller(flows, table)
            writer.write(table)
        schema = None
        if labeller is not None and writer.rows == 0:
            schema = labeller(FlowArrays(*_empty_arrays()), empty_table()).schema
        if check is not None:
            check(stats)
        writer.close(schema)
    except BaseException:
        writer.abort()
        raise
    return stats


def _empty_arrays() -> tuple:
    import numpy as np

    from flowsentinel.capture.meter import N_FEATURES, N_OI

    return (np.empty((0, N_FEATURES)), np.empty((0, N_OI), np.int64), np.empty((0, 4), np.uint64))
