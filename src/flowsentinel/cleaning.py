"""Cleaning of flow records, as the first seed describes it, with its mistakes fixed.

Order of the steps (each switchable, each counted in the report):

1. columns: identifiers dropped by default (they leak: addresses, ports, timestamps, row ids);
   the duplicate ``Fwd Header Length.1`` and unknown columns were dropped when reading;
2. unlabelled rows dropped;
3. label filter for the task (``dos`` keeps BENIGN and DoS rows);
4. rows with an infinite or missing numeric value (the seed: inf → NaN → drop);
5. near-constant feature columns, judged on the rows left: ``constant`` (the default: a column
   with one distinct value carries no information), ``seed`` (the first seed's "similarity" rule
   ``(1 - nunique/len) * 100 > threshold``, which also drops informative low-cardinality
   columns such as flag counts), or ``none``;
6. exact duplicate rows (features and label), first kept.

Then ``Target`` is set for the task. All of it is vectorised polars; nothing loops over rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import xxhash
from pydantic import BaseModel, Field

from flowsentinel.core.errors import InputError
from flowsentinel.datasets import labels as lab
from flowsentinel.datasets import schema as sc
from flowsentinel.datasets.cache import READER_VERSION, ColumnarCache
from flowsentinel.datasets.sources import LoadedData, expand_sources, load_sources

NearConstantRule = Literal["constant", "seed", "none"]


class CleaningOptions(BaseModel):
    """Switches of the cleaning steps."""

    task: lab.Task = "dos"
    drop_identifiers: bool = True
    drop_unlabelled: bool = True
    filter_labels: bool = True
    drop_nonfinite: bool = True
    near_constant: NearConstantRule = "constant"
    similarity_threshold: float = Field(default=95.0, ge=0, le=100)
    drop_duplicates: bool = True
    ddos_as_dos: bool = Field(
        default=False,
        description="Count DDoS as DoS in the dos task (the seed's str.contains('DoS') did).",
    )


class StepReport(BaseModel):
    step: str
    enabled: bool
    rows_in: int
    rows_out: int
    dropped: int
    detail: dict[str, Any] = Field(default_factory=dict)


class ColumnDrop(BaseModel):
    column: str
    reason: str


class CleaningReport(BaseModel):
    """Everything cleaning did, as written to ``cleaning_report.json``."""

    dataset: str
    task: str
    options: CleaningOptions
    files: list[dict[str, Any]]
    rows_in: int
    rows_out: int
    steps: list[StepReport]
    columns_dropped: list[ColumnDrop]
    features: list[str]
    label_counts: dict[str, int]
    family_counts: dict[str, int]
    target_counts: dict[str, int]
    conflicting_feature_rows: int = 0
    seconds: float = 0.0


def feature_columns(frame: pl.DataFrame, dataset: str) -> list[str]:
    """The canonical feature columns present in a frame, in canonical order."""
    return [c for c in sc.features_of(dataset) if c in frame.columns]


def _numeric(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if frame.schema[c].is_numeric()]


def clean(
    data: LoadedData, options: CleaningOptions | None = None, *, consume: bool = False
) -> tuple[pl.DataFrame, CleaningReport]:
    """Clean loaded flows for a task; returns the frame and its report.

    With ``consume=True`` the rows of ``data`` are released as soon as they are filtered (lower
    peak memory); ``data.frame`` is then empty.
    """
    opts = options or CleaningOptions()
    started = time.perf_counter()
    df = data.parts[0]  # the columns; rows are filtered file by file below
    dataset = data.dataset
    steps: list[StepReport] = []
    dropped_cols: list[ColumnDrop] = []

    for rep in data.files:
        for col in rep.unknown_columns:
            dropped_cols.append(ColumnDrop(column=col, reason=f"unknown column in {rep.path}"))
        if rep.duplicate_column_mismatches is not None:
            dropped_cols.append(
                ColumnDrop(
                    column=sc.CIC_DUPLICATE_COLUMN,
                    reason=f"copy of {sc.CIC_DUPLICATE_OF} written twice by CICFlowMeter "
                    f"({rep.duplicate_column_mismatches} rows differ) in {rep.path}",
                )
            )
    malformed = sum(r.malformed_rows_skipped for r in data.files)
    steps.append(
        StepReport(
            step="read (malformed CSV rows)",
            enabled=True,
            rows_in=data.height + malformed,
            rows_out=data.height,
            dropped=malformed,
            detail={
                r.path: r.malformed_rows_skipped for r in data.files if r.malformed_rows_skipped
            },
        )
    )
    # 1. identifiers
    idents = [c for c in sc.identifiers_of(dataset) if c in df.columns]
    if opts.drop_identifiers and idents:
        dropped_cols += [ColumnDrop(column=c, reason="identifier (leaks)") for c in idents]

    # Steps 2-4 only choose rows: they run file by file (a file's rows are released as soon as
    # they are filtered when ``consume``), in one filter per file; counts follow the step order.
    rows_in = data.height
    counts = np.zeros(4, dtype=np.int64)  # rows alive before step 2, after 2, after 3, after 4
    by_family: dict[str, int] = {}
    finite_detail: dict[str, Any] = {"rows_with_inf": 0, "rows_with_nan_only": 0, "by_column": {}}
    features = feature_columns(df, dataset)
    numeric = _numeric(df, features)
    cats = [c for c in features if c not in numeric]
    all_families = df.get_column(sc.FAMILY).unique().drop_nulls().to_list()
    keep_families = [
        f for f in all_families if lab.keeps_family(f, opts.task, ddos_as_dos=opts.ddos_as_dos)
    ]
    del df
    parts = data.parts if consume else list(data.parts)
    kept_parts: list[pl.DataFrame] = []
    while parts:
        part = parts.pop(0)
        if opts.drop_identifiers and idents:
            part = part.drop(idents)
        family = part.get_column(sc.FAMILY)
        alive = np.ones(part.height, dtype=bool)
        counts[0] += part.height
        if opts.drop_unlabelled:
            alive &= family.is_not_null().to_numpy()
        counts[1] += int(np.count_nonzero(alive))
        if opts.filter_labels:
            in_task = family.is_in(keep_families).fill_null(False).to_numpy()
            for fam, cnt in family.filter(pl.Series(alive & ~in_task)).value_counts().iter_rows():
                if fam:
                    by_family[fam] = by_family.get(fam, 0) + int(cnt)
            alive &= in_task
        counts[2] += int(np.count_nonzero(alive))
        if opts.drop_nonfinite and features:
            finite, found = _finite_rows(part, numeric, alive)
            if cats:
                finite &= (
                    part.select(pl.all_horizontal(pl.col(cats).is_not_null()))
                    .to_series()
                    .to_numpy()
                )
            _merge_counts(finite_detail, found)
            alive &= finite
        counts[3] += int(np.count_nonzero(alive))
        kept_parts.append(part if alive.all() else part.filter(pl.Series(alive)))
        del part, family, alive
    steps.append(_count_step("unlabelled", opts.drop_unlabelled, counts[0], counts[1]))
    steps.append(
        _count_step(
            "label_filter",
            opts.filter_labels,
            counts[1],
            counts[2],
            {"dropped_by_family": by_family} if opts.filter_labels else {},
        )
    )
    steps.append(
        _count_step(
            "nonfinite",
            opts.drop_nonfinite,
            counts[2],
            counts[3],
            finite_detail if opts.drop_nonfinite else {},
        )
    )
    df = (
        kept_parts[0]
        if len(kept_parts) == 1
        else pl.concat(kept_parts, how="vertical", rechunk=False)
    )
    del kept_parts

    # 5. near-constant columns
    if opts.near_constant != "none" and features and df.height:
        if opts.near_constant == "constant":
            drop = {
                c: f"constant (1 distinct value in {df.height} rows)"
                for c in _constant_columns(df, features)
            }
        else:
            nunique = df.select(pl.col(features).n_unique()).row(0, named=True)
            drop = {}
            for c in features:
                similarity = (1 - nunique[c] / df.height) * 100
                if similarity > opts.similarity_threshold:
                    drop[c] = (
                        f"similarity {similarity:.2f}% > {opts.similarity_threshold}% "
                        f"({nunique[c]} distinct values)"
                    )
        df = df.drop(list(drop))
        dropped_cols += [ColumnDrop(column=c, reason=r) for c, r in drop.items()]
        features = [c for c in features if c not in drop]

    if not features:
        raise InputError(
            f"no feature column left after cleaning (the '{opts.near_constant}' near-constant "
            "rule dropped them all); try --near-constant constant"
        )

    # 6. duplicates
    n = df.height
    conflicting = 0
    if opts.drop_duplicates and df.height:
        keep, feature_hash = _first_occurrences(df, features, sc.LABEL)
        df = df.filter(pl.Series(keep))
        conflicting = int(feature_hash.filter(pl.Series(keep)).is_duplicated().sum())
    steps.append(
        StepReport(
            step="duplicates",
            enabled=opts.drop_duplicates,
            rows_in=n,
            rows_out=df.height,
            dropped=n - df.height,
            detail={"rows_sharing_features_with_another_label": conflicting},
        )
    )

    # Target for the task
    families = df.get_column(sc.FAMILY).unique().drop_nulls().to_list()
    if opts.task == "multiclass":
        target = pl.col(sc.FAMILY).alias(sc.TARGET)
    else:
        positive = [
            f for f in families if lab.is_positive(f, opts.task, ddos_as_dos=opts.ddos_as_dos)
        ]
        target = pl.col(sc.FAMILY).is_in(positive).cast(pl.Int8).alias(sc.TARGET)
    kept_ids = [c for c in idents if c in df.columns]  # only when --keep-identifiers
    df = df.with_columns(target).select(
        [*kept_ids, *features, sc.LABEL, sc.FAMILY, sc.TARGET, sc.SOURCE]
    )

    report = CleaningReport(
        dataset=dataset,
        task=opts.task,
        options=opts,
        files=[r.to_dict() for r in data.files],
        rows_in=rows_in,
        rows_out=df.height,
        steps=steps,
        columns_dropped=dropped_cols,
        features=features,
        label_counts=_counts(df, sc.LABEL),
        family_counts=_counts(df, sc.FAMILY),
        target_counts=_counts(df, sc.TARGET),
        conflicting_feature_rows=conflicting,
        seconds=round(time.perf_counter() - started, 3),
    )
    return df, report


def _count_step(
    step: str, enabled: bool, rows_in: int, rows_out: int, detail: dict[str, Any] | None = None
) -> StepReport:
    rows_in, rows_out = int(rows_in), int(rows_out)
    return StepReport(
        step=step,
        enabled=enabled,
        rows_in=rows_in,
        rows_out=rows_out,
        dropped=rows_in - rows_out,
        detail=detail or {},
    )


def _merge_counts(total: dict[str, Any], part: dict[str, Any]) -> None:
    total["rows_with_inf"] += part["rows_with_inf"]
    total["rows_with_nan_only"] += part["rows_with_nan_only"]
    for col, n in part["by_column"].items():
        total["by_column"][col] = total["by_column"].get(col, 0) + n


def _finite_rows(
    df: pl.DataFrame, numeric: list[str], within: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Mask of rows whose numeric features are all finite, and what was found among the rows
    ``within`` (numpy, one pass over each column buffer, no per-row work)."""
    keep = np.ones(df.height, dtype=bool)
    has_inf = np.zeros(df.height, dtype=bool)
    by_column: dict[str, int] = {}
    for name in numeric:
        values = df.get_column(name).to_numpy()
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(np.count_nonzero(~finite & within))
            if bad:
                by_column[name] = bad
            keep &= finite
            has_inf |= np.isinf(values)
    n_inf = int(np.count_nonzero(has_inf & within))
    n_bad = int(np.count_nonzero(~keep & within))
    detail = {
        "rows_with_inf": n_inf,
        "rows_with_nan_only": n_bad - n_inf,
        "by_column": by_column,
    }
    return keep, detail


def _first_occurrences(
    df: pl.DataFrame, features: list[str], label: str
) -> tuple[np.ndarray, pl.Series]:
    """Mask keeping the first of each group of identical rows (features and label), in order,
    and the hash of each row's features.

    Rows are hashed (8 bytes each, instead of a row encoding of the whole frame, which costs as
    much memory as the data); a row whose (hash, label) was seen before is dropped only after its
    values are compared with the first row of that key, so a hash collision can never drop a
    distinct row: the result is exactly pandas' ``drop_duplicates``.
    """
    keys = pl.DataFrame({"h": df.select(features).hash_rows(), "y": df.get_column(label)})
    keep = keys.select(pl.struct("h", "y").is_first_distinct()).to_series().to_numpy()
    repeats = np.flatnonzero(~keep)
    if repeats.size == 0:
        return keep, keys.get_column("h")
    index = keys.with_columns(pl.int_range(df.height, dtype=pl.UInt32).alias("i"))
    partner = (
        index[repeats]
        .join(index.filter(pl.Series(keep)), on=["h", "y"], how="left", suffix="_first")
        .get_column("i_first")
        .to_numpy()
    )
    same = np.ones(repeats.size, dtype=bool)
    for name in features:  # one column at a time, with numpy fancy indexing
        col = df.get_column(name)
        if col.dtype.is_numeric():
            values = col.to_numpy()
            a, b = values[repeats], values[partner]
            equal = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
        else:
            equal = col.gather(repeats).eq_missing(col.gather(partner)).fill_null(False).to_numpy()
        same &= equal
    keep[repeats[~same]] = True  # hash collisions: distinct rows, kept
    return keep, keys.get_column("h")


def _constant_columns(df: pl.DataFrame, features: list[str]) -> list[str]:
    """Columns holding one distinct value (min == max and no missing, or all missing)."""
    numeric = [c for c in features if df.schema[c].is_numeric()]
    others = [c for c in features if c not in numeric]
    out: list[str] = []
    if numeric:
        row = df.select(
            *[pl.col(c).min().alias(f"{c}\x00min") for c in numeric],
            *[pl.col(c).max().alias(f"{c}\x00max") for c in numeric],
            *[pl.col(c).null_count().alias(f"{c}\x00nulls") for c in numeric],
        ).row(0, named=True)
        for c in numeric:
            nulls = row[f"{c}\x00nulls"]
            if nulls == df.height or (nulls == 0 and row[f"{c}\x00min"] == row[f"{c}\x00max"]):
                out.append(c)
    if others:
        nunique = df.select(pl.col(others).n_unique()).row(0, named=True)
        out += [c for c in others if nunique[c] <= 1]
    return [c for c in features if c in out]


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Plain-encoded parquet (fast to write and read; dictionaries only for text columns).

    The old file is unlinked first: the result cache may hold a hard link to it.
    """
    import pyarrow.parquet as pq

    path.unlink(missing_ok=True)
    text = [c for c, t in frame.schema.items() if not t.is_numeric()]
    pq.write_table(
        frame.to_arrow(), path, compression="none", use_dictionary=text, write_statistics=False
    )


def _counts(df: pl.DataFrame, column: str) -> dict[str, int]:
    counts = df.get_column(column).value_counts(sort=True)
    return {str(k): int(v) for k, v in counts.iter_rows()}


CLEANING_VERSION = "1"
CLEAN_FILE = "clean.parquet"
REPORT_FILE = "cleaning_report.json"


def clean_to_dir(
    sources: list[str],
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    options: CleaningOptions | None = None,
    cache: ColumnarCache | None = None,
    mixed: str = "error",
    progress: bool = False,
) -> tuple[CleaningReport, bool]:
    """Read, clean and write ``clean.parquet`` + ``cleaning_report.json`` into ``out_dir``.

    With a cache, a run on files of the same content with the same options copies the stored
    result (returns ``True`` as the second value); other options reuse the parsed columns.
    """
    opts = options or CleaningOptions()
    out = Path(out_dir)
    result_key = None
    if cache is not None:
        paths = expand_sources(sources)
        digests = [cache.file_hash(p) for p in paths]
        names = [str(p) for p in paths]  # the rows carry their file names
        blob = json.dumps(
            [digests, names, dataset, mixed, opts.model_dump(), CLEANING_VERSION, READER_VERSION]
        )
        result_key = xxhash.xxh3_128_hexdigest(blob.encode())
        if cache.fetch_result(result_key, [CLEAN_FILE, REPORT_FILE], out):
            report = CleaningReport.model_validate_json((out / REPORT_FILE).read_text())
            return report, True
    data = load_sources(sources, dataset, cache=cache, mixed=mixed, progress=progress)
    frame, report = clean(data, opts, consume=True)
    del data
    if frame.height == 0:
        raise InputError("no rows left after cleaning; see the step counts with --json")
    out.mkdir(parents=True, exist_ok=True)
    _write_parquet(frame, out / CLEAN_FILE)
    (out / REPORT_FILE).unlink(missing_ok=True)  # may be a hard link into the cache
    (out / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    if cache is not None and result_key is not None:
        cache.store_result(result_key, [CLEAN_FILE, REPORT_FILE], out)
    return report, False
