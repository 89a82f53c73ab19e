"""Batch scoring of a flow table: ``flowsentinel score DATASET --model URI -o OUT``.

DATASET is a CSV/parquet file, a folder of them or a partitioned parquet dataset, local or any
fsspec URL. Each file is a partition: read in the model's data set
(:func:`flowsentinel.scanning.read_flows`, as ``scan`` reads a flow file), scored by the
:class:`~flowsentinel.scoring.Detector` and turned into the verdict columns ``scan`` writes
(``row``, the flow's identity, the verdict, ``true_label`` when the flows carry labels). ``row``
counts the flows of the whole input in file order. Partitions are Dask tasks on the workers of a
cluster, or run one after the other in this process; the verdicts are the same.

The output is never presented half-written: it is written under a temporary name beside OUT
and renamed to OUT once every partition is in. A worker lost during the job: Dask recomputes its
partitions on the remaining workers; when none remain, one :class:`ClusterError` line and no
output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flowsentinel.core.cluster import Cluster, ClusterError
from flowsentinel.core.errors import FlowsentinelError, InputError
from flowsentinel.scanning import (
    IDENTITY,
    flow_identity,
    json_lines,
    read_flows,
    true_labels,
    verdict_columns,
)
from flowsentinel.scoring import Detector

if TYPE_CHECKING:
    from distributed import Client

#: file names a flow table is made of
FLOW_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".pq")
#: one-file outputs by suffix; any other OUT is a folder (a partitioned parquet dataset)
FILE_FORMATS: dict[str, str] = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


def input_files(dataset: str) -> list[str]:
    """The flow files of DATASET (a file, or every flow file under a folder, in name order),
    as URLs of their filesystem; none is one line naming DATASET."""
    fs, root = fsspec.core.url_to_fs(dataset)
    try:
        if fs.isfile(root):
            return [dataset]
        if not fs.isdir(root):
            raise InputError("no such file or folder", path=dataset)
        found = sorted(p for p in fs.find(root) if p.lower().endswith(FLOW_SUFFIXES))
    except OSError as exc:
        raise InputError(f"cannot list: {exc}", path=dataset) from None
    if not found:
        raise InputError("holds no CSV or parquet flow files", path=dataset)
    return [fs.unstrip_protocol(p) if "://" in dataset else p for p in found]


def output_format(out: str) -> str:
    """``parquet``, ``csv`` or ``jsonl`` for a one-file OUT; ``folder`` otherwise."""
    for suffix, fmt in FILE_FORMATS.items():
        if out.lower().endswith(suffix):
            return fmt
    return "folder"


@contextlib.contextmanager
def _local_copy(url: str) -> Iterator[Path]:
    """A local path of ``url``: itself when local, else a temporary copy (same suffix)."""
    fs, path = fsspec.core.url_to_fs(url)
    if "file" in fs.protocol or fs.protocol == "local":
        yield Path(path)
        return
    name = Path(path).name
    with tempfile.TemporaryDirectory(prefix="flowsentinel-score-") as tmp:
        local = Path(tmp) / name
        fs.get(path, str(local))
        yield local


def score_file(url: str, det: Detector) -> pd.DataFrame:
    """The verdict columns of one file's flows (``row`` counted from 0 in the file)."""
    with _local_copy(url) as path:
        try:
            frame = read_flows(path, "csv", det).frame
        except InputError as exc:
            raise InputError(str(exc).replace(str(path), url)) from None
    return verdict_table(frame, det)


def verdict_table(frame: pd.DataFrame, det: Detector) -> pd.DataFrame:
    """``scan``'s record columns for the flows of ``frame``, as a table: ``row``, the
    :data:`~flowsentinel.scanning.IDENTITY` fields, the verdict, ``true_label`` if labelled."""
    verdicts = det.predict(frame)
    identity = flow_identity(frame, det.dataset)
    columns: dict[str, Any] = {"row": np.arange(len(frame), dtype=np.int64)}
    columns.update({name: identity[name].array for name in IDENTITY})
    columns.update(verdict_columns(verdicts))
    truth = true_labels(frame)
    if truth is not None:
        columns["true_label"] = truth.array
    return pd.DataFrame(columns)


def shifted(table: pd.DataFrame, first_row: int) -> pd.DataFrame:
    """``table`` with its rows numbered from ``first_row`` (its place in the whole input)."""
    out = table.copy()
    out["row"] = out["row"].to_numpy() + first_row
    return out


def write_part(table: pd.DataFrame, first_row: int, url: str) -> int:
    """Write one partition's verdicts (rows from ``first_row``) as a parquet file at ``url``."""
    with fsspec.open(url, "wb") as fh:
        pq.write_table(pa.Table.from_pandas(shifted(table, first_row), preserve_index=False), fh)
    return len(table)


@dataclasses.dataclass
class _Sink:
    """A one-file output being written under a temporary name, partition after partition."""

    url: str
    fmt: str
    writer: pq.ParquetWriter | None = None
    fh: Any = None
    header: bool = True

    def add(self, table: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.fh, arrow.schema)
            self.writer.write_table(arrow.cast(self.writer.schema))
        elif self.fmt == "csv":
            self.fh.write(table.to_csv(index=False, header=self.header).encode())
            self.header = False
        else:
            plain = table.astype(object).where(table.notna(), None)
            records: list[dict[str, Any]] = plain.to_dict("records")  # type: ignore[assignment]  # column names are str
            self.fh.write(json_lines(records).encode())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclasses.dataclass
class ScoreResult:
    """What a ``score`` job did."""

    out: str
    format: str
    files: int
    flows: int
    by_label: dict[str, int]
    cluster: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def score(dataset: str, det: Detector, out: str, cluster: Cluster | None = None) -> ScoreResult:
    """Score every flow of DATASET with ``det`` and write the verdicts to ``out`` (one file by
    its suffix, else a folder of parquet parts), on ``cluster``'s workers or in this process."""
    files = input_files(dataset)
    fmt = output_format(out)
    fs, final = fsspec.core.url_to_fs(out)
    if fs.exists(final) and (fmt != "folder" or fs.ls(final)):
        raise InputError("already exists; choose a new output name", path=out)
    cluster = cluster or Cluster()
    temp = f"{final.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
    counts: dict[str, int] = {}
    try:
        with cluster.client() as client:
            if fmt == "folder":
                fs.makedirs(temp, exist_ok=True)
                flows = _score_to_folder(files, det, fs, temp, client, counts)
            else:
                flows = _score_to_file(files, det, fs, temp, fmt, client, counts)
        if fmt == "folder" and fs.exists(final):
            fs.rm(final, recursive=True)  # an empty folder named as the output
        fs.mv(temp, final, recursive=fmt == "folder")
    except BaseException as exc:
        with contextlib.suppress(OSError):
            if fs.exists(temp):
                fs.rm(temp, recursive=True)
        if isinstance(exc, Exception) and not isinstance(exc, FlowsentinelError):
            raise _cluster_failure(exc) from None
        raise
    where = cluster.describe()
    return ScoreResult(out, fmt, len(files), flows, counts, where)


def _cluster_failure(exc: Exception) -> Exception:
    """A failure of the job as one line; an error of ours (bad input) keeps its type."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "KilledWorker" in type(exc).__name__ or "CancelledError" in type(exc).__name__:
        return ClusterError(f"the cluster lost the workers of the job, no output written: {text}")
    return ClusterError(f"the scoring job failed, no output written: {type(exc).__name__}: {text}")


def label_counts(table: pd.DataFrame) -> dict[str, int]:
    """Flows per verdict label of one partition."""
    labels, n = np.unique(table["label"].to_numpy(dtype=str), return_counts=True)
    return dict(zip(labels.tolist(), n.tolist(), strict=True))


def _count(counts: dict[str, int], found: dict[str, int]) -> None:
    for label, k in found.items():
        counts[label] = counts.get(label, 0) + k


def _part_name(root: str, k: int) -> str:
    return f"{root}/part-{k:05d}.parquet"


def _score_to_folder(
    files: list[str],
    det: Detector,
    fs: Any,
    temp: str,
    client: Client | None,
    counts: dict[str, int],
) -> int:
    """Every partition written as ``part-NNNNN.parquet`` under ``temp``; returns the flows."""
    urls = [fs.unstrip_protocol(_part_name(temp, k)) for k in range(len(files))]
    if client is None:
        first = 0
        for url, target in zip(files, urls, strict=True):
            table = score_file(url, det)
            _count(counts, label_counts(table))
            first += write_part(table, first, target)
        return first
    tables = _submit_scores(client, files, det)
    offsets = _offsets(client, tables)
    written = client.map(write_part, tables, offsets[:-1], urls, pure=False)
    for found in client.gather(client.map(label_counts, tables, pure=False)):
        _count(counts, found)
    client.gather(written)
    return offsets[-1]


def _score_to_file(
    files: list[str],
    det: Detector,
    fs: Any,
    temp: str,
    fmt: str,
    client: Client | None,
    counts: dict[str, int],
) -> int:
    """Every partition appended in order to the one file ``temp``; returns the flows."""
    with fs.open(temp, "wb") as fh:
        sink = _Sink(temp, fmt, fh=fh)
        try:
            if client is None:
                first = 0
                for url in files:
                    table = score_file(url, det)
                    _count(counts, label_counts(table))
                    sink.add(shifted(table, first))
                    first += len(table)
                return first
            tables = _submit_scores(client, files, det)
            offsets = _offsets(client, tables)
            for table, first in zip(tables, offsets, strict=False):
                part = table.result()  # one partition at a time in this process
                _count(counts, label_counts(part))
                sink.add(shifted(part, first))
            return offsets[-1]
        finally:
            sink.close()


def _submit_scores(client: Client, files: list[str], det: Detector) -> list[Any]:
    """One task per file on the workers. The detector (without its compiled form, rebuilt
    where it is used) reaches them as the result of a task unpickling it, not as scattered
    data: a task's result lost with its worker is computed again, scattered data is not."""
    payload = pickle.dumps(dataclasses.replace(det))
    remote = client.submit(pickle.loads, payload, pure=False)
    return list(client.map(score_file, files, det=remote, pure=False))


def _offsets(client: Client, tables: list[Any]) -> list[int]:
    """Each partition's first row in the whole input, and the total at the end."""
    lengths = client.gather(client.map(len, tables, pure=False))
    return [0, *np.cumsum(lengths).astype(int).tolist()]
