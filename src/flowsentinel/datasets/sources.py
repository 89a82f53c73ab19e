"""Turn the sources a user names (files, folders) into one canonical frame, with progress."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from flowsentinel.core.errors import InputError
from flowsentinel.datasets import schema as sc
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.datasets.reader import FileReport, is_supported, read_file


@dataclass
class LoadedData:
    """The rows of every source file, in canonical columns, and what reading found.

    ``parts`` holds one frame per file (same columns and types), so that row filters can run
    file by file; ``frame`` is all of them as one frame.
    """

    parts: list[pl.DataFrame]
    dataset: str
    files: list[FileReport]
    hashes: list[str]
    columns_not_in_all_files: list[str] = field(default_factory=list)

    @property
    def frame(self) -> pl.DataFrame:
        if len(self.parts) == 1:
            return self.parts[0]
        return pl.concat(self.parts, how="vertical", rechunk=False)

    @property
    def height(self) -> int:
        return sum(p.height for p in self.parts)


# Files of the official downloads that describe the data rather than hold flows: skipped when
# found in a folder (named directly, they are read and rejected like any other file).
METADATA_FILES = frozenset(
    {"nusw-nb15_features.csv", "unsw-nb15_list_events.csv", "nusw-nb15_gt.csv"}
)


def expand_sources(sources: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every .csv / .csv.gz / .parquet below named folders
    (the data sets' description files, :data:`METADATA_FILES`, are skipped there)."""
    files: list[Path] = []
    for src in sources:
        path = Path(src).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and is_supported(p) and p.name.lower() not in METADATA_FILES
            )
            if not found:
                raise InputError("folder holds no .csv, .csv.gz or .parquet file", path=path)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError("no such file or folder", path=path)
    if not files:
        raise InputError("no input files given")
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} files"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=True,
    )


def load_sources(
    sources: Sequence[str | Path],
    dataset: str | None = None,
    *,
    require_label: bool = True,
    cache: ColumnarCache | None = None,
    mixed: str = "error",
    progress: bool = False,
) -> LoadedData:
    """Read every source file into one frame of canonical columns plus ``Label``, ``Family``
    and ``source_file``.

    ``mixed="error"`` (default) refuses files whose feature columns differ (dialects or data
    sets mixed in one folder); ``mixed="intersect"`` keeps the columns common to all files.
    """
    paths = expand_sources(sources)
    frames: list[pl.DataFrame] = []
    reports: list[FileReport] = []
    hashes: list[str] = []
    # cache files are written by a background thread while the next file is parsed
    with _progress(progress) as bar, ThreadPoolExecutor(max_workers=1) as writer:
        task = bar.add_task("reading", total=len(paths))
        pending = []
        for path in paths:
            frame, report, digest = _read_one(path, dataset, require_label, cache, writer, pending)
            if dataset is None:
                dataset = report.dataset
            elif report.dataset != dataset:
                raise InputError(f"a {report.dataset} file among {dataset} files", path=path)
            frames.append(frame)
            reports.append(report)
            hashes.append(digest)
            bar.advance(task)
        for job in pending:
            job.result()
    assert dataset is not None
    not_in_all = _check_columns(frames, reports, mixed)
    names = [str(p) for p in paths]
    source_type = pl.Enum(list(dict.fromkeys(names)))
    common = [c for c in frames[0].columns if all(c in f.columns for f in frames)]
    if mixed == "intersect":
        frames = [f.select(common) for f in frames]
    # one dtype per column over all files (float32 only where every file stored it exactly),
    # so that the concatenation copies nothing but the columns that must widen
    dtypes: dict[str, pl.DataType] = {}
    for frame in frames:
        for col, dtype in frame.schema.items():
            seen = dtypes.get(col)
            dtypes[col] = dtype if seen is None or seen == dtype else _wider(seen, dtype)
    order = list(dtypes)
    tagged = []
    while frames:
        frame, name = frames.pop(0), names[len(tagged)]
        casts = [pl.col(c).cast(dtypes[c]) for c, t in frame.schema.items() if t != dtypes[c]]
        missing = [pl.lit(None, dtypes[c]).alias(c) for c in order if c not in frame.columns]
        frame = frame.with_columns(
            *casts, *missing, pl.lit(name, dtype=source_type).alias(sc.SOURCE)
        )
        tagged.append(frame.select([*order, sc.SOURCE]))
    return LoadedData(tagged, dataset, reports, hashes, not_in_all)


def _wider(a: pl.DataType, b: pl.DataType) -> pl.DataType:
    if a.is_numeric() and b.is_numeric():
        return pl.Float64
    return pl.String


def _read_one(
    path: Path,
    dataset: str | None,
    require_label: bool,
    cache: ColumnarCache | None,
    writer: ThreadPoolExecutor,
    pending: list[Future[None]],
) -> tuple[pl.DataFrame, FileReport, str]:
    digest = cache.file_hash(path) if cache is not None else ""
    key = f"{digest}-{dataset or 'auto'}-{int(require_label)}"
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            frame, meta = hit
            meta = dict(meta)
            meta["path"] = str(path)
            return frame, FileReport(**meta), digest  # type: ignore[arg-type]
    frame, report = read_file(path, dataset, require_label=require_label)
    if cache is not None:
        pending.append(writer.submit(cache.put, key, frame, report.to_dict()))
    return frame, report, digest


def _check_columns(frames: list[pl.DataFrame], reports: list[FileReport], mixed: str) -> list[str]:
    idents = set(sc.identifiers_of(reports[0].dataset))
    first = set(frames[0].columns) - idents
    differing: set[str] = set()
    for frame, report in zip(frames[1:], reports[1:], strict=True):
        cols = set(frame.columns) - idents
        if cols != first:
            if mixed != "intersect":
                missing = sorted(first - cols)[:4]
                extra = sorted(cols - first)[:4]
                raise InputError(
                    f"its columns differ from {reports[0].path} ({report.dialect} vs "
                    f"{reports[0].dialect}; missing {missing}, extra {extra}): mixed dialects "
                    "or data sets; clean them separately or pass --mixed intersect",
                    path=report.path,
                )
            differing |= cols ^ first
    return sorted(differing)
