"""Turn the sources a user names (files, folders) into one canonical frame, with progress."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets.cache import ColumnarCache, Mapping
from flowsentinel.datasets.reader import (
    FACT_COMPLETE,
    FACT_HASH,
    FileReport,
    RowFacts,
    is_supported,
    read_file_with_facts,
)


@dataclass
class LoadedData:
    """The rows of every source file, in canonical columns, and what reading found.

    ``parts`` holds one frame per file (same columns and types), so that row filters can run
    file by file; ``frame`` is all of them as one frame. Frames loaded from the columnar cache
    are memory-mapped. ``facts`` holds the :class:`RowFacts` of each part (None where unknown).
    """

    parts: list[pl.DataFrame]
    dataset: str
    files: list[FileReport]
    hashes: list[str]
    columns_not_in_all_files: list[str] = field(default_factory=list)
    facts: list[RowFacts | None] = field(default_factory=list)
    mappings: list[Mapping | None] = field(default_factory=list)

    def release(self, index: int | None = None) -> None:
        """Drop the pages of memory-mapped parts (all, or one) from the process: they are read
        again from the page cache when next needed. Bounds the resident memory of passes that
        read every part."""
        chosen = self.mappings if index is None else self.mappings[index : index + 1]
        for mapping in chosen:
            if mapping is not None:
                mapping.release()

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
    facts: list[RowFacts | None] = []
    mappings: list[Mapping | None] = []
    # While a file is finished (facts, cache entry), the next one is parsed in a second thread
    # (once the data set is known): the two cores stay busy through the single-threaded steps.
    ahead: dict[int, Future[tuple[pl.DataFrame, FileReport, RowFacts | None]]] = {}
    with _progress(progress) as bar, ThreadPoolExecutor(max_workers=1) as pool:
        task = bar.add_task("reading", total=len(paths))
        for i, path in enumerate(paths):
            nxt = i + 1
            if (
                dataset is not None
                and nxt < len(paths)
                and nxt not in ahead
                and _needs_reading(paths[nxt], dataset, require_label, cache)
            ):
                ahead[nxt] = pool.submit(
                    read_file_with_facts, paths[nxt], dataset, require_label=require_label
                )
            frame, report, digest, fact, mapping = _read_one(
                path, dataset, require_label, cache, ahead.pop(i, None)
            )
            if dataset is None:
                dataset = report.dataset
            elif report.dataset != dataset:
                raise InputError(f"a {report.dataset} file among {dataset} files", path=path)
            frames.append(frame)
            reports.append(report)
            hashes.append(digest)
            facts.append(fact)
            mappings.append(mapping)
            bar.advance(task)
    assert dataset is not None
    not_in_all = _check_columns(frames, reports, mixed)
    names = [str(p) for p in paths]
    source_type = pl.Enum(list(dict.fromkeys(names)))
    common = [c for c in frames[0].columns if all(c in f.columns for f in frames)]
    if mixed == "intersect":
        frames = [f.select(common) for f in frames]
    dtypes = common_dtypes([f.schema for f in frames])
    tagged: list[pl.DataFrame] = []
    while frames:
        frame, name = frames.pop(0), names[len(tagged)]
        tagged.append(conform_part(frame, name, dtypes, source_type))
    return LoadedData(tagged, dataset, reports, hashes, not_in_all, facts, mappings)


def common_dtypes(schemas: Iterable[dict[str, pl.DataType]]) -> dict[str, pl.DataType]:
    """One dtype per column over the files' schemas, in the order columns first appear
    (float32 only where every file stored it exactly), so that the concatenation copies
    nothing but the columns that must widen."""
    dtypes: dict[str, pl.DataType] = {}
    for schema in schemas:
        for col, dtype in schema.items():
            seen = dtypes.get(col)
            dtypes[col] = dtype if seen is None or seen == dtype else _wider(seen, dtype)
    return dtypes


def conform_part(
    frame: pl.DataFrame, name: str, dtypes: dict[str, pl.DataType], source_type: pl.Enum
) -> pl.DataFrame:
    """One file's frame in the columns and dtypes of all files (``common_dtypes``), missing
    columns as nulls, tagged with its file name in ``source_file``."""
    casts = [pl.col(c).cast(dtypes[c]) for c, t in frame.schema.items() if t != dtypes[c]]
    missing = [pl.lit(None, dtypes[c]).alias(c) for c in dtypes if c not in frame.columns]
    frame = frame.with_columns(*casts, *missing, pl.lit(name, dtype=source_type).alias(sc.SOURCE))
    return frame.select([*dtypes, sc.SOURCE])


def _wider(a: pl.DataType, b: pl.DataType) -> pl.DataType:
    if a.is_numeric() and b.is_numeric():
        return pl.Float64()
    return pl.String()


def _needs_reading(
    path: Path, dataset: str, require_label: bool, cache: ColumnarCache | None
) -> bool:
    return cache is None or not cache.has(_key(cache.file_hash(path), dataset, require_label))


def _key(digest: str, dataset: str | None, require_label: bool) -> str:
    return f"{digest}-{dataset or 'auto'}-{int(require_label)}"


def _read_one(
    path: Path,
    dataset: str | None,
    require_label: bool,
    cache: ColumnarCache | None,
    parsing: Future[tuple[pl.DataFrame, FileReport, RowFacts | None]] | None = None,
) -> tuple[pl.DataFrame, FileReport, str, RowFacts | None, Mapping | None]:
    """One file's frame, report, content hash and row facts: from the cache when it holds the
    file, else read (and stored, then memory-mapped back so that its rows leave the heap).
    ``parsing``: the file already being read in another thread."""
    digest = cache.file_hash(path) if cache is not None else ""
    key = _key(digest, dataset, require_label)
    if cache is not None and parsing is None:
        hit = _from_cache(cache, key, path)
        if hit is not None:
            return hit[0], hit[1], digest, hit[2], hit[3]
    if parsing is not None:
        frame, report, fact = parsing.result()
    else:
        frame, report, fact = read_file_with_facts(path, dataset, require_label=require_label)
    if cache is not None and fact is not None:
        stored = frame.with_columns(pl.Series(FACT_COMPLETE, fact.complete))
        if fact.row_hash is not None:
            stored = stored.with_columns(pl.Series(FACT_HASH, fact.row_hash, dtype=pl.UInt64))
        meta: dict[str, object] = {"report": report.to_dict(), "facts": fact.meta()}
        try:
            cache.put(key, stored, meta)
        except OSError:
            return frame, report, digest, fact, None  # a full or read-only disk: uncached
        del stored
        hit = _from_cache(cache, key, path)
        if hit is not None:
            return hit[0], report, digest, hit[2], hit[3]
    return frame, report, digest, fact, None


def _from_cache(
    cache: ColumnarCache, key: str, path: Path
) -> tuple[pl.DataFrame, FileReport, RowFacts | None, Mapping] | None:
    hit = cache.get_mapped(key)
    if hit is None:
        return None
    stored, meta, mapping = hit
    try:
        report_meta = meta["report"]
        assert isinstance(report_meta, dict)
        info = dict(report_meta)
        info["path"] = str(path)
        report = FileReport(**info)
        fact_meta = meta["facts"]
        assert isinstance(fact_meta, dict)
        complete = stored.get_column(FACT_COMPLETE).to_numpy()
        row_hash = stored.get_column(FACT_HASH).to_numpy() if FACT_HASH in stored.columns else None
        fact = RowFacts(
            features=tuple(fact_meta["features"]),
            complete=np.asarray(complete, dtype=bool),
            row_hash=row_hash,
            hash_version=str(fact_meta["hash_version"]),
            hash_dtypes=tuple(fact_meta["hash_dtypes"]),
        )
    except (KeyError, TypeError, AssertionError, pl.exceptions.PolarsError):
        return None  # an entry of another layout: read the file again
    frame = stored.drop([c for c in (FACT_COMPLETE, FACT_HASH) if c in stored.columns])
    return frame, report, fact, mapping


def _check_columns(frames: list[pl.DataFrame], reports: list[FileReport], mixed: str) -> list[str]:
    idents = set(sc.dataset(reports[0].dataset).identifiers)
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
