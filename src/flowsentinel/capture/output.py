"""Write the flows of a capture to CSV or parquet, streaming (one batch at a time)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from flowsentinel.capture.frame import empty_table, flows_to_arrow
from flowsentinel.capture.meter import FlowArrays, MeterConfig
from flowsentinel.capture.stream import CaptureSource, CaptureStats, iter_flow_arrays
from flowsentinel.core.errors import InputError

if TYPE_CHECKING:  # pyarrow.parquet loads Arrow's filesystems and ssl: 25-40 ms of a CSV run
    import pyarrow.parquet as pq

OUTPUT_SUFFIXES = (".csv", ".parquet")
Labeller = Callable[[FlowArrays, pa.Table], pa.Table]


def output_format(path: Path | str) -> str:
    """``csv`` or ``parquet`` (one file), or ``dataset``: a folder (a name without a suffix,
    or ending in ``/``) that receives a partitioned parquet dataset."""
    text = str(path)
    suffix = Path(text).suffix.lower()
    if text.endswith("/") or not suffix:
        return "dataset"
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError("the output must end in .csv or .parquet, or be a folder", path=path)
    return suffix[1:]


class DatasetWriter:
    """Append Arrow tables of flows to a partitioned parquet dataset (``part-NNNNN.parquet``
    files in a folder, local or any fsspec URL), written under ``NAME.partial`` and renamed
    when closed: a failed run never leaves a dataset that looks complete."""

    def __init__(self, url: Path | str, *, rows_per_part: int = 1_000_000) -> None:
        import fsspec  # 150 ms of imports: only for datasets (the CLI's start-up budget)

        self.fs, root = fsspec.core.url_to_fs(str(url))
        self.root = root.rstrip("/")
        self.tmp = f"{self.root}.partial"
        if self.fs.exists(self.root):
            raise InputError("the output folder exists already; remove it or name another",
                             path=url)  # fmt: skip
        if self.fs.exists(self.tmp):
            self.fs.rm(self.tmp, recursive=True)
        self.fs.makedirs(self.tmp, exist_ok=True)
        self.rows_per_part = rows_per_part
        self.rows = 0
        self.parts = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def part_path(self, index: int) -> str:
        return f"{self.tmp}/part-{index:05d}.parquet"

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= self.rows_per_part:
            self._spill()

    def add_written(self, rows: int) -> None:
        """Count a part written straight into :attr:`tmp` (by a cluster worker)."""
        self.rows += rows
        self.parts += 1

    def _spill(self) -> None:
        if not self._pending:
            return
        import pyarrow.parquet as pq

        with self.fs.open(self.part_path(self.parts), "wb") as fh:
            pq.write_table(pa.concat_tables(self._pending), fh, compression="zstd")
        self.parts += 1
        self._pending, self._pending_rows = [], 0

    def close(self, schema_if_empty: pa.Schema | None = None) -> None:
        if self.parts == 0 and not self._pending:
            self._pending = [
                empty_table() if schema_if_empty is None else schema_if_empty.empty_table()
            ]
        self._spill()
        self.fs.mv(self.tmp, self.root, recursive=True)

    def abort(self) -> None:
        self._pending = []
        if self.fs.exists(self.tmp):
            self.fs.rm(self.tmp, recursive=True)


def open_writer(out: Path | str) -> FlowWriter | DatasetWriter:
    """The writer of ``out``'s kind: one CSV/parquet file, or a parquet dataset folder."""
    return DatasetWriter(out) if output_format(out) == "dataset" else FlowWriter(Path(out))


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
                import pyarrow.parquet as pq

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
    source: CaptureSource | Sequence[CaptureSource],
    out: Path | str,
    *,
    config: MeterConfig | None = None,
    labeller: Labeller | None = None,
    on_progress: Callable[[int], None] | None = None,
    stats: CaptureStats | None = None,
    check: Callable[[CaptureStats], object] | None = None,
) -> CaptureStats:
    """Meter a capture (or a set of captures, one continuous capture) and write its flows to
    ``out`` (.csv or .parquet, or a folder: a parquet dataset); returns the stats.

    ``labeller(flows, table)`` may return the table with a ``Label`` column added. ``check``
    is called with the stats once the whole capture has been read, before the file gets its
    final name: if it raises (e.g. :func:`~flowsentinel.capture.stream.check_damage`), no
    output is left behind and ``stats`` (when passed) still holds what was read.
    """
    stats = stats if stats is not None else CaptureStats()
    writer = open_writer(out)
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
