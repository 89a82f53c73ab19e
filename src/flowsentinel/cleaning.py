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
    data: LoadedData, options: CleaningOptions | None = None
) -> tuple[pl.DataFrame, CleaningReport]:
    """Clean loaded flows for a task; returns the frame and its report."""
    opts = options or CleaningOptions()
    started = time.perf_counter()
    df = data.frame
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
            rows_in=df.height + malformed,
            rows_out=df.height,
            dropped=malformed,
            detail={
                r.path: r.malformed_rows_skipped for r in data.files if r.malformed_rows_skipped
            },
        )
    )
    # 1. identifiers
    idents = [c for c in sc.identifiers_of(dataset) if c in df.columns]
    if opts.drop_identifiers and idents:
        df = df.drop(idents)
        dropped_cols += [ColumnDrop(column=c, reason="identifier (leaks)") for c in idents]

    # 2. unlabelled rows
    n = df.height
    if opts.drop_unlabelled:
        df = df.filter(pl.col(sc.FAMILY).is_not_null())
    steps.append(
        StepReport(
            step="unlabelled",
            enabled=opts.drop_unlabelled,
            rows_in=n,
            rows_out=df.height,
            dropped=n - df.height,
        )
    )

    # 3. label filter for the task
    n = df.height
    detail: dict[str, Any] = {}
    if opts.filter_labels:
        families = df.get_column(sc.FAMILY).unique().drop_nulls().to_list()
        keep = [f for f in families if lab.keeps_family(f, opts.task, ddos_as_dos=opts.ddos_as_dos)]
        removed = df.filter(~pl.col(sc.FAMILY).is_in(keep)).get_column(sc.FAMILY).value_counts()
        detail["dropped_by_family"] = {r[0]: int(r[1]) for r in removed.iter_rows() if r[0]}
        df = df.filter(pl.col(sc.FAMILY).is_in(keep))
    steps.append(
        StepReport(
            step="label_filter",
            enabled=opts.filter_labels,
            rows_in=n,
            rows_out=df.height,
            dropped=n - df.height,
            detail=detail,
        )
    )

    # 4. infinite / missing values
    features = feature_columns(df, dataset)
    numeric = _numeric(df, features)
    n = df.height
    detail = {}
    if opts.drop_nonfinite and numeric:
        keep_rows, detail = _finite_rows(df, numeric)
        df = df.filter(pl.Series(keep_rows))
        cats = [c for c in features if c not in numeric]
        if cats:
            df = df.filter(pl.all_horizontal(pl.col(cats).is_not_null()))
    steps.append(
        StepReport(
            step="nonfinite",
            enabled=opts.drop_nonfinite,
            rows_in=n,
            rows_out=df.height,
            dropped=n - df.height,
            detail=detail,
        )
    )

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
        df = df.unique(subset=[*features, sc.LABEL], keep="first", maintain_order=True)
        conflicting = int(df.select(pl.struct(features).is_duplicated().sum()).item())
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
    df = df.with_columns(target).select([*features, sc.LABEL, sc.FAMILY, sc.TARGET, sc.SOURCE])

    report = CleaningReport(
        dataset=dataset,
        task=opts.task,
        options=opts,
        files=[r.to_dict() for r in data.files],
        rows_in=data.frame.height,
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


def _finite_rows(df: pl.DataFrame, numeric: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Mask of rows whose numeric features are all finite, and what was found (numpy, per
    column: one pass over each buffer, no per-row work)."""
    keep = np.ones(df.height, dtype=bool)
    has_inf = np.zeros(df.height, dtype=bool)
    by_column: dict[str, int] = {}
    for name in numeric:
        values = df.get_column(name).to_numpy()
        finite = np.isfinite(values)
        bad = int(df.height - np.count_nonzero(finite))
        if bad:
            by_column[name] = bad
            keep &= finite
            has_inf |= np.isinf(values)
    n_inf = int(np.count_nonzero(has_inf))
    n_bad = int(df.height - np.count_nonzero(keep))
    detail = {
        "rows_with_inf": n_inf,
        "rows_with_nan_only": n_bad - n_inf,
        "by_column": by_column,
    }
    return keep, detail


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
        blob = json.dumps(
            [digests, dataset, mixed, opts.model_dump(), CLEANING_VERSION, READER_VERSION]
        )
        result_key = xxhash.xxh3_128_hexdigest(blob.encode())
        if cache.fetch_result(result_key, [CLEAN_FILE, REPORT_FILE], out):
            report = CleaningReport.model_validate_json((out / REPORT_FILE).read_text())
            return report, True
    data = load_sources(sources, dataset, cache=cache, mixed=mixed, progress=progress)
    frame, report = clean(data, opts)
    if frame.height == 0:
        raise InputError("no rows left after cleaning; see the step counts with --json")
    out.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out / CLEAN_FILE, compression="lz4", statistics=False)
    (out / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    if cache is not None and result_key is not None:
        cache.store_result(result_key, [CLEAN_FILE, REPORT_FILE], out)
    return report, False
