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

import contextlib
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from pydantic import BaseModel, Field

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets import labels as lab
from flowsentinel.datasets.cache import READER_VERSION, ColumnarCache
from flowsentinel.datasets.reader import FileReport, RowFacts, complete_rows
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


class CleaningWarning(BaseModel):
    """Something the user should know of a result that was written all the same.

    ``one_class``: the rows left hold one class of the task (or none): no model can be trained
    on them, and the message names the labels found and the task that fits them."""

    kind: Literal["one_class"]
    message: str


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
    warnings: list[CleaningWarning] = Field(default_factory=list)
    seconds: float = 0.0


def feature_columns(frame: pl.DataFrame, dataset: str) -> list[str]:
    """The canonical feature columns present in a frame, in canonical order."""
    return [c for c in sc.dataset(dataset).features if c in frame.columns]


def _numeric(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    schema = frame.schema
    return [c for c in columns if schema[c].is_numeric()]


@dataclass
class _Plan:
    """What cleaning decided, before any output row is built: which rows of each part stay
    (``keep``, one mask per part, None for all), which columns, and the report's counts."""

    opts: CleaningOptions
    dataset: str
    rows_in: int
    steps: list[StepReport]
    dropped_cols: list[ColumnDrop]
    features: list[str]
    kept_ids: list[str]
    keep: list[np.ndarray | None]
    positive: list[str]
    conflicting: int
    started: float
    first_rows: np.ndarray | None  # over all rows of all parts: first of identical rows
    warnings: list[CleaningWarning]

    def output(self, part: pl.DataFrame, index: int) -> pl.DataFrame:
        """The cleaned rows of one part, in the output columns."""
        columns = [*self.kept_ids, *self.features, sc.LABEL, sc.FAMILY, sc.SOURCE]
        frame = part.select(columns)
        mask = self.keep[index]
        if mask is not None:
            frame = frame.filter(pl.Series(mask))
        if self.opts.task == "multiclass":
            target = pl.col(sc.FAMILY).alias(sc.TARGET)
        else:
            target = pl.col(sc.FAMILY).is_in(self.positive).cast(pl.Int8).alias(sc.TARGET)
        return frame.with_columns(target).select(
            [*self.kept_ids, *self.features, sc.LABEL, sc.FAMILY, sc.TARGET, sc.SOURCE]
        )

    def report(self, data: LoadedData, counts: dict[str, dict[str, int]]) -> CleaningReport:
        warnings = list(self.warnings)
        if not warnings and len(counts[sc.TARGET]) == 1:  # the last steps left one class
            (target, rows), *_ = counts[sc.TARGET].items()
            warnings.append(
                CleaningWarning(
                    kind="one_class",
                    message=f"{_where(data)}: cleaning for the task '{self.opts.task}' leaves "
                    f"one class (Target {target}: {rows:,} rows) after the non-finite and "
                    "duplicate steps",
                )
            )
        return CleaningReport(
            dataset=self.dataset,
            task=self.opts.task,
            options=self.opts,
            files=[r.to_dict() for r in data.files],
            rows_in=self.rows_in,
            rows_out=sum(counts[sc.TARGET].values()),
            steps=self.steps,
            columns_dropped=self.dropped_cols,
            features=self.features,
            label_counts=counts[sc.LABEL],
            family_counts=counts[sc.FAMILY],
            target_counts=counts[sc.TARGET],
            conflicting_feature_rows=self.conflicting,
            warnings=warnings,
            seconds=round(time.perf_counter() - self.started, 3),
        )


def clean(
    data: LoadedData, options: CleaningOptions | None = None, *, consume: bool = False
) -> tuple[pl.DataFrame, CleaningReport]:
    """Clean loaded flows for a task; returns the frame and its report.

    With ``consume=True`` the rows of ``data`` are released as soon as they are output (lower
    peak memory); ``data.frame`` is then empty.
    """
    plan = _plan(data, options or CleaningOptions())
    outputs: list[pl.DataFrame] = []
    tally: dict[str, dict[str, int]] = {sc.LABEL: {}, sc.FAMILY: {}, sc.TARGET: {}}
    for i in range(len(data.parts)):
        out = plan.output(data.parts[i], i)
        if consume:
            data.parts[i] = data.parts[i].clear()
        _tally(tally, out)
        outputs.append(out)
    frame = outputs[0] if len(outputs) == 1 else pl.concat(outputs, how="vertical", rechunk=False)
    return frame, plan.report(data, _sorted_counts(tally))


def _plan(data: LoadedData, opts: CleaningOptions, first_rows: np.ndarray | None = None) -> _Plan:
    """Every decision of the cleaning steps, computed file by file on the loaded parts (no
    concatenation of the rows): row masks, dropped columns, duplicates, counts.

    ``first_rows`` (over all rows of all parts, in order): which rows are the first of their
    identical rows (all features and label), when known from an earlier run on the same files.
    """
    started = time.perf_counter()
    parts = data.parts
    first = parts[0]  # the columns (all parts share them)
    facts: list[RowFacts | None] = list(data.facts) or [None] * len(parts)
    dropped_cols = _columns_dropped_when_read(data)
    steps = [_read_step(data.files, data.height)]
    idents, dropped = _identifier_columns(first, data.dataset, opts)
    dropped_cols += dropped
    features = feature_columns(first, data.dataset)
    families = sorted(
        {f for part in parts for f in part.get_column(sc.FAMILY).unique().drop_nulls().to_list()}
    )
    # Steps 2-4 only choose rows: one mask per part (narrowed in place), counts in step order.
    alive = [np.ones(part.height, dtype=bool) for part in parts]
    steps.append(_unlabelled_rows(parts, alive, opts))
    step, warnings = _label_filter(data, alive, families, opts)
    steps.append(step)
    steps.append(_nonfinite_rows(data, alive, facts, features, opts))
    height = steps[-1].rows_out

    all_features = list(features)
    hashes = _stored_hashes(facts, all_features)
    if first_rows is None and opts.drop_duplicates and height and all_features:
        first_rows, hashes = _first_of_identical_rows(data, all_features, hashes)
    first_parts = _split(first_rows, parts) if first_rows is not None else None
    # alive rows that are the first of their identical rows: same distinct values as all alive
    candidates = (
        [a & f for a, f in zip(alive, first_parts, strict=True)]
        if first_parts is not None
        else alive
    )
    features, dropped, same_key = _near_constant_columns(data, candidates, features, height, opts)
    dropped_cols += dropped
    require_features(features, opts)
    keep, conflicting, step = _duplicate_rows(
        data, alive, candidates, features, all_features, hashes, height, same_key, opts
    )
    steps.append(step)
    positive = [f for f in families if lab.is_positive(f, opts.task, ddos_as_dos=opts.ddos_as_dos)]
    return _Plan(
        opts=opts,
        dataset=data.dataset,
        rows_in=data.height,
        steps=steps,
        dropped_cols=dropped_cols,
        features=features,
        kept_ids=[] if opts.drop_identifiers else idents,
        keep=keep,
        positive=positive,
        conflicting=conflicting,
        started=started,
        first_rows=first_rows,
        warnings=warnings,
    )


def require_features(features: list[str], opts: CleaningOptions) -> None:
    """One line when the near-constant rule left no feature column."""
    if not features:
        raise InputError(
            f"no feature column left after cleaning (the '{opts.near_constant}' near-constant "
            "rule dropped them all); try --near-constant constant"
        )


def _columns_dropped_when_read(data: LoadedData) -> list[ColumnDrop]:
    """The columns the reader left out: unknown ones, and CICFlowMeter's duplicate column."""
    dropped: list[ColumnDrop] = []
    for rep in data.files:
        for col in rep.unknown_columns:
            dropped.append(ColumnDrop(column=col, reason=f"unknown column in {rep.path}"))
        if rep.duplicate_column_mismatches is not None:
            dropped.append(
                ColumnDrop(
                    column=sc.CIC_DUPLICATE_COLUMN,
                    reason=f"copy of {sc.CIC_DUPLICATE_OF} written twice by CICFlowMeter "
                    f"({rep.duplicate_column_mismatches} rows differ) in {rep.path}",
                )
            )
    return dropped


def _read_step(files: list[FileReport], rows_in: int) -> StepReport:
    """The malformed CSV rows the reader skipped (``rows_in``: the rows read)."""
    malformed = sum(r.malformed_rows_skipped for r in files)
    return StepReport(
        step="read (malformed CSV rows)",
        enabled=True,
        rows_in=rows_in + malformed,
        rows_out=rows_in,
        dropped=malformed,
        detail={r.path: r.malformed_rows_skipped for r in files if r.malformed_rows_skipped},
    )


def _identifier_columns(
    first: pl.DataFrame, dataset: str, opts: CleaningOptions
) -> tuple[list[str], list[ColumnDrop]]:
    """Step 1: the identifier columns present, and those dropped (they leak)."""
    idents = [c for c in sc.dataset(dataset).identifiers if c in first.columns]
    if not (opts.drop_identifiers and idents):
        return idents, []
    return idents, [ColumnDrop(column=c, reason="identifier (leaks)") for c in idents]


def _alive_count(alive: list[np.ndarray]) -> int:
    return sum(int(np.count_nonzero(a)) for a in alive)


def _unlabelled_rows(
    parts: list[pl.DataFrame], alive: list[np.ndarray], opts: CleaningOptions
) -> StepReport:
    """Step 2: rows without a label leave ``alive``."""
    rows_in = _alive_count(alive)
    if opts.drop_unlabelled:
        for part, mask in zip(parts, alive, strict=True):
            mask &= part.get_column(sc.FAMILY).is_not_null().to_numpy()
    return _count_step("unlabelled", opts.drop_unlabelled, rows_in, _alive_count(alive))


def _label_filter(
    data: LoadedData, alive: list[np.ndarray], families: list[str], opts: CleaningOptions
) -> tuple[StepReport, list[CleaningWarning]]:
    """Step 3: rows of families outside the task leave ``alive`` (counted by family); the
    one-class warning when the task's classes in these families are fewer than two."""
    rows_in = _alive_count(alive)
    by_family: dict[str, int] = {}
    if opts.filter_labels:
        keep_families = [
            f for f in families if lab.keeps_family(f, opts.task, ddos_as_dos=opts.ddos_as_dos)
        ]
        for part, mask in zip(data.parts, alive, strict=True):
            family = part.get_column(sc.FAMILY)
            in_task = family.is_in(keep_families).fill_null(False).to_numpy()
            for fam, cnt in family.filter(pl.Series(mask & ~in_task)).value_counts().iter_rows():
                if fam:
                    by_family[fam] = by_family.get(fam, 0) + int(cnt)
            mask &= in_task
    step = _count_step(
        "label_filter",
        opts.filter_labels,
        rows_in,
        _alive_count(alive),
        {"dropped_by_family": by_family} if opts.filter_labels else {},
    )
    classes = lab.task_classes(
        families, opts.task, ddos_as_dos=opts.ddos_as_dos, filter_labels=opts.filter_labels
    )
    if len(classes) >= 2:
        return step, []
    kept_by_family: dict[str, int] = {}  # rows per family after the label filter
    labels_found: set[str] = set()
    for part, mask in zip(data.parts, alive, strict=True):
        _add_counts(kept_by_family, part.get_column(sc.FAMILY).filter(pl.Series(mask)))
        labels_found.update(part.get_column(sc.LABEL).unique().drop_nulls().to_list())
    return step, [_one_class_warning(data, opts, families, kept_by_family, labels_found)]


def _nonfinite_rows(
    data: LoadedData,
    alive: list[np.ndarray],
    facts: list[RowFacts | None],
    features: list[str],
    opts: CleaningOptions,
) -> StepReport:
    """Step 4: rows with an infinite or missing feature leave ``alive``; what was wrong in them
    (by column) is gathered from those rows only."""
    rows_in = _alive_count(alive)
    detail: dict[str, Any] = {"rows_with_inf": 0, "rows_with_nan_only": 0, "by_column": {}}
    if opts.drop_nonfinite and features:
        numeric = _numeric(data.parts[0], features)
        for index, (part, fact, mask) in enumerate(zip(data.parts, facts, alive, strict=True)):
            if fact is not None and fact.features == tuple(features):
                complete = fact.complete
            else:
                complete = complete_rows(part, features)
            bad = np.flatnonzero(mask & ~complete)
            if bad.size:  # what is wrong in the rows dropped here (few rows: gathered)
                rows = part.select(numeric)[bad]
                data.release(index)
                _, found = _finite_rows(rows, numeric, np.ones(rows.height, dtype=bool))
                _merge_counts(detail, found)
                mask &= complete
    return _count_step(
        "nonfinite",
        opts.drop_nonfinite,
        rows_in,
        _alive_count(alive),
        detail if opts.drop_nonfinite else {},
    )


def _first_of_identical_rows(
    data: LoadedData, features: list[str], hashes: list[np.ndarray] | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Over all rows of all parts: which rows are the first of their identical rows (all
    features and label), and the row hashes of the features (``hashes`` when stored).

    Whatever the options, a row identical to an earlier one shares its label, hence its fate in
    steps 2-3, and its values, hence its fate in step 4 and its distinct values, with the earlier
    one; it goes with any duplicate rule. The mask is option-free, so it is kept beside the parsed
    files (``first_rows``)."""
    parts = data.parts
    hashes = hashes or _row_hashes(parts, features, data.release)
    every = [np.ones(part.height, dtype=bool) for part in parts]
    first_rows, _ = _first_occurrences(parts, every, features, hashes, data.release)
    return first_rows, hashes


def _near_constant_columns(
    data: LoadedData,
    candidates: list[np.ndarray],
    features: list[str],
    height: int,
    opts: CleaningOptions,
) -> tuple[list[str], list[ColumnDrop], bool]:
    """Step 5: the feature columns left after the near-constant rule, judged on the rows left
    (``candidates``: alive, first of their identical rows), the columns dropped, and whether
    duplicates on the features left are duplicates on all features."""
    if opts.near_constant == "none" or not features or not height:
        return features, [], True
    if opts.near_constant == "constant":
        constant, neutral = _constant_columns(data.parts, candidates, features)
        data.release()
        return _constant_drops(features, constant, neutral, height)
    nunique = _distinct_counts(
        data.parts, candidates, features, height, opts.similarity_threshold, data.release
    )
    return _similarity_drops(features, nunique, height, opts.similarity_threshold)


def _similarity_drops(
    features: list[str], nunique: dict[str, int], height: int, threshold: float
) -> tuple[list[str], list[ColumnDrop], bool]:
    """Step 5 under the ``seed`` rule, from the distinct counts (``_distinct_counts``): the
    columns left, those dropped, and whether duplicates on the columns left are duplicates on
    all."""
    drop = {}
    for c in features:
        similarity = (1 - nunique[c] / height) * 100
        if similarity > threshold:
            drop[c] = f"similarity {similarity:.2f}% > {threshold}% ({nunique[c]} distinct values)"
    dropped = [ColumnDrop(column=c, reason=r) for c, r in drop.items()]
    return [c for c in features if c not in drop], dropped, not drop


def _constant_drops(
    features: list[str], constant: list[str], neutral: bool, height: int
) -> tuple[list[str], list[ColumnDrop], bool]:
    """Step 5 under the ``constant`` rule, once the constant columns are known: the columns
    left, those dropped, and whether duplicates on the columns left are duplicates on all."""
    dropped = [
        ColumnDrop(column=c, reason=f"constant (1 distinct value in {height} rows)")
        for c in constant
    ]
    return [c for c in features if c not in constant], dropped, neutral


def _duplicate_rows(
    data: LoadedData,
    alive: list[np.ndarray],
    candidates: list[np.ndarray],
    features: list[str],
    all_features: list[str],
    hashes: list[np.ndarray] | None,
    height: int,
    same_key: bool,
    opts: CleaningOptions,
) -> tuple[list[np.ndarray | None], int, StepReport]:
    """Step 6: the rows kept (one mask per part, None for all), the rows sharing their features
    with a row of another label, and the step's report."""
    parts = data.parts
    keep: list[np.ndarray | None] = [None if a.all() else a for a in alive]
    conflicting = 0
    if opts.drop_duplicates and height:
        if same_key:
            kept = candidates
            hashes = hashes or _row_hashes(parts, all_features, data.release)
            feature_hash = np.concatenate([h[m] for h, m in zip(hashes, kept, strict=True)])
            conflicting = int(pl.Series(feature_hash).is_duplicated().sum())
        else:  # rows distinct on all features may be equal on the features left
            sub_hashes = _row_hashes(parts, features, data.release)
            firsts, feature_hash = _first_occurrences(
                parts, candidates, features, sub_hashes, data.release
            )
            kept = [c.copy() for c in candidates]
            for mask, sub in zip(kept, _split_over(firsts, candidates), strict=True):
                mask[mask] = sub
            conflicting = int(pl.Series(feature_hash[firsts]).is_duplicated().sum())
        keep = [None if m.all() else m for m in kept]
    rows_out = sum(
        part.height if mask is None else int(np.count_nonzero(mask))
        for part, mask in zip(parts, keep, strict=True)
    )
    return keep, conflicting, duplicates_step(opts, height, rows_out, conflicting)


def duplicates_step(
    opts: CleaningOptions, height: int, rows_out: int, conflicting: int
) -> StepReport:
    """The report of the duplicate-rows step (in-process and on a cluster)."""
    return StepReport(
        step="duplicates",
        enabled=opts.drop_duplicates,
        rows_in=height,
        rows_out=rows_out,
        dropped=height - rows_out,
        detail={"rows_sharing_features_with_another_label": conflicting},
    )


def _add_counts(total: dict[str, int], values: pl.Series) -> None:
    for value, n in values.value_counts().iter_rows():
        if value is not None:
            total[value] = total.get(value, 0) + int(n)


def _where(data: LoadedData) -> str:
    paths = [r.path for r in data.files]
    return paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more files"


def _one_class_warning(
    data: LoadedData,
    opts: CleaningOptions,
    families: list[str],
    kept: dict[str, int],
    labels: set[str],
) -> CleaningWarning:
    """The label filter (or the task's classes) leaves one class: which one, the labels found,
    and the task that fits them."""
    ranked = sorted(kept.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked:
        head = f"no rows left for the task '{opts.task}'"
    elif len(ranked) == 1:
        head = f"the task '{opts.task}' leaves one class ({ranked[0][0]}: {ranked[0][1]:,})"
    else:
        shown = ", ".join(f"{f} {n:,}" for f, n in ranked)
        head = f"the task '{opts.task}' leaves one class (all of {shown} in one Target)"
    fits = [t for t in lab.fitting_tasks(families, ddos_as_dos=opts.ddos_as_dos) if t != opts.task]
    advice = f"use --task {fits[0]}" if fits else "no task has two classes in these labels"
    found = lab.describe_labels(labels)
    return CleaningWarning(
        kind="one_class",
        message=f"{_where(data)}: {head}; the labels found are {found}: {advice}",
    )


def require_two_classes(found: CleaningReport | list[CleaningWarning]) -> None:
    """Stop with the one-class warning's message, if there is one (training needs two
    classes)."""
    warnings = found.warnings if isinstance(found, CleaningReport) else found
    for warning in warnings:
        if warning.kind == "one_class":
            raise InputError(warning.message)


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


def _stored_hashes(facts: list[RowFacts | None], features: list[str]) -> list[np.ndarray] | None:
    """The row hashes stored with the parts, when every part has them for these features,
    hashed from columns of the same types (else they cannot be compared across parts)."""
    out = []
    for f in facts:
        if (
            f is None
            or f.row_hash is None
            or f.hash_version != pl.__version__
            or f.features != tuple(features)
            or f.hash_dtypes != facts[0].hash_dtypes  # type: ignore[union-attr]  # facts[0] is f on the first pass
        ):
            return None
        out.append(f.row_hash)
    return out


def _row_hashes(
    parts: list[pl.DataFrame], features: list[str], release: Callable[[int], None]
) -> list[np.ndarray]:
    out = []
    for i, part in enumerate(parts):
        out.append(part.select(features).hash_rows().to_numpy())
        release(i)
    return out


def _split(mask: np.ndarray, parts: list[pl.DataFrame]) -> list[np.ndarray]:
    """A mask over all rows of all parts, cut into one mask per part."""
    bounds = np.cumsum([0, *(p.height for p in parts)])
    return [mask[a:b] for a, b in itertools.pairwise(bounds)]


def _split_over(values: np.ndarray, masks: list[np.ndarray]) -> list[np.ndarray]:
    """Values over the selected rows of all parts, cut into one array per part."""
    bounds = np.cumsum([0, *(int(np.count_nonzero(m)) for m in masks)])
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


# ------------------------------------------------------------------------------------------
# near-constant columns

_PREFIX = 256  # alive values looked at first: most columns show two values among them


def _constant_columns(
    parts: list[pl.DataFrame], alive: list[np.ndarray], features: list[str]
) -> tuple[list[str], bool]:
    """Columns holding one distinct value over the alive rows of all parts (missing values,
    null or NaN, count as one value, as pandas' ``nunique(dropna=False)``), and whether each of
    them holds it in one form only (then row hashes that include it still tell rows apart
    exactly as hashes without it would)."""
    out: list[str] = []
    neutral = True
    for c in features:
        kinds: set[object] = set()  # a value, "null" or "nan"
        for part, mask in zip(parts, alive, strict=True):
            n_alive = int(np.count_nonzero(mask))
            if n_alive:
                kinds |= _value_kinds(part, c, mask, n_alive)
            if not _single(kinds):
                break
        if _single(kinds):
            out.append(c)
            neutral = neutral and len(kinds) <= 1
    return out, neutral


def _single(kinds: set[object]) -> bool:
    """One distinct value: one number, or missing values only."""
    values = kinds - {"null", "nan"}
    return len(values) <= 1 and not (values and len(values) < len(kinds))


def _value_kinds(part: pl.DataFrame, column: str, mask: np.ndarray, n_alive: int) -> set[object]:
    """The distinct values of a column over a part's alive rows, as far as the constant test
    needs them (it stops at two; missing values as "null" / "nan"). Looks at the first alive
    rows, then at all rows, and filters the alive ones only when the column varies there."""
    series = part.get_column(column)
    if not series.dtype.is_numeric():
        values = series.filter(pl.Series(mask)).unique().head(3).to_list()
        return {("null" if v is None else v) for v in values}
    head = np.flatnonzero(mask[: _PREFIX * 4])[:_PREFIX]
    if head.size < n_alive:
        kinds = _numeric_kinds(series.gather(head))
        if not _single(kinds):
            return kinds
        kinds = _numeric_kinds(series)  # all rows (no copy): often one value throughout
        if _single(kinds):
            return kinds
    return _numeric_kinds(series.filter(pl.Series(mask)))


def _numeric_kinds(values: pl.Series) -> set[object]:
    kinds: set[object] = set()
    nulls = values.null_count()
    if nulls:
        kinds.add("null")
    if values.dtype.is_float():
        nans = int(values.is_nan().sum())
        if nans:
            kinds.add("nan")
    else:
        nans = 0
    if nulls + nans < values.len():
        lo, hi = values.min(), values.max()
        kinds.add(float(lo))  # type: ignore[arg-type]  # numeric column, not all missing: a number
        if hi != lo:
            kinds.add(float(hi))  # type: ignore[arg-type]  # numeric column, not all missing: a number
    return kinds


def _distinct_counts(
    parts: list[pl.DataFrame],
    alive: list[np.ndarray],
    features: list[str],
    height: int,
    threshold: float,
    release: Callable[[], None],
) -> dict[str, int]:
    """Distinct values (polars ``n_unique``: null and NaN each count as a value) of each column
    over the alive rows, exact where the seed rule drops the column; for a column it keeps, the
    count may stop early at the first value that already proves it informative (the distinct
    values are gathered part by part). Columns run in parallel threads."""
    masks = [pl.Series(m) for m in alive]

    def count(column: str) -> int:
        seen: pl.Series | None = None
        for part, mask in zip(parts, masks, strict=True):
            values = part.get_column(column).filter(mask).unique()
            seen = values if seen is None else pl.concat([seen, values]).unique()
            if (1 - seen.len() / height) * 100 <= threshold:
                break  # enough distinct values: kept whatever the other parts hold
        return 0 if seen is None else seen.len()

    workers = max(1, min(len(features), os.cpu_count() or 1))
    counts: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(features), 4 * workers):  # then their pages are dropped
            batch = features[start : start + 4 * workers]
            counts.update(zip(batch, pool.map(count, batch), strict=True))
            release()
    return counts


# ------------------------------------------------------------------------------------------
# duplicates

_MIX = np.uint64(0x9E3779B97F4A7C15)
_VERIFY_BATCH = 1 << 16


def _first_occurrences(
    parts: list[pl.DataFrame],
    alive: list[np.ndarray],
    features: list[str],
    row_hashes: Sequence[np.ndarray | None],
    release: Callable[[], None],
) -> tuple[np.ndarray, np.ndarray]:
    """Over the alive rows of all parts in order: the mask keeping the first of each group of
    identical rows (features and label), and the hash of each row's features.

    Rows are keyed by a 64-bit hash of their features (stored with the parsed file, or computed
    here) mixed with a hash of their label; a row whose key was seen before is dropped only
    after its values are compared with the first row of that key, so a hash collision can never
    drop a distinct row (the rows of a colliding key are then deduplicated by value): the result
    is exactly pandas' ``drop_duplicates``.
    """
    feature_hash: list[np.ndarray] = []
    label_hash: list[np.ndarray] = []
    for part, mask, stored in zip(parts, alive, row_hashes, strict=True):
        every = bool(mask.all())
        h = stored if stored is not None else part.select(features).hash_rows().to_numpy()
        feature_hash.append(h if every else h[mask])
        y = part.get_column(sc.LABEL).hash(seed=7).to_numpy()
        label_hash.append(y if every else y[mask])
    fh = np.concatenate(feature_hash) if len(feature_hash) > 1 else feature_hash[0]
    keys = fh ^ (np.concatenate(label_hash) * _MIX)
    key_series = pl.Series("k", keys)
    keep = key_series.is_first_distinct().to_numpy().copy()
    repeats = np.flatnonzero(~keep)
    if repeats.size == 0:
        return keep, fh
    repeated = pl.Series("k", keys[repeats])
    firsts = pl.DataFrame({"k": keys, "i": np.arange(keys.size, dtype=np.int64)}).filter(
        pl.Series(keep) & pl.col("k").is_in(repeated.unique().implode())
    )
    partner = (
        repeated.to_frame()
        .join(firsts, on="k", how="left", maintain_order="left")
        .get_column("i")
        .to_numpy()
    )
    # where each alive row lives: part number and row within the part
    sizes = [int(np.count_nonzero(m)) for m in alive]
    part_of = np.repeat(np.arange(len(parts), dtype=np.int32), sizes)
    row_of = np.concatenate([np.flatnonzero(m) for m in alive])
    columns = [*features, sc.LABEL]
    first_of = _Rows(part_of[partner], row_of[partner], len(parts))
    repeat_of = _Rows(part_of[repeats], row_of[repeats], len(parts))
    dtypes = parts[0].schema

    def compare(column: str) -> np.ndarray:
        numeric = dtypes[column].is_numeric()
        a, b = repeat_of.gather(parts, column, numeric), first_of.gather(parts, column, numeric)
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return (a == b) | ((a != a) & (b != b))  # NaN equals NaN
        return pl.Series(a).eq_missing(pl.Series(b)).to_numpy()

    same = np.ones(repeats.size, dtype=bool)
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # a few columns at a time, then their pages are dropped (bounded resident memory)
        for start in range(0, len(columns), 2 * workers):
            for equal in pool.map(compare, columns[start : start + 2 * workers]):
                same &= equal
            release()
    if not same.all():  # hash collisions: settle the rows of those keys by their values
        colliding = np.unique(keys[repeats[~same]])
        rows = np.flatnonzero(np.isin(keys, colliding))
        values = _gather_rows(parts, columns, part_of[rows], row_of[rows])
        exact = values.select(pl.struct(columns).is_first_distinct()).to_series().to_numpy()
        keep[rows] = exact
    return keep, fh


class _Rows:
    """Rows given as (part number, row in part), gathered one column at a time (part by part,
    in row order within a part: the reads go forward through each column)."""

    def __init__(self, part_of: np.ndarray, row_of: np.ndarray, n_parts: int) -> None:
        self.order = np.lexsort((row_of, part_of))
        self.rows = row_of[self.order]
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(part_of, minlength=n_parts))])

    def gather(
        self, parts: list[pl.DataFrame], column: str, numeric: bool
    ) -> np.ndarray | pl.Series:
        """The column's values at the rows, in the given order (numpy for numbers)."""
        pieces = []
        for j, (a, b) in enumerate(itertools.pairwise(self.bounds)):
            if a == b:
                continue
            series = parts[j].get_column(column)
            if numeric:
                pieces.append(series.to_numpy()[self.rows[a:b]])
            else:
                pieces.append(series.gather(self.rows[a:b]))
        if numeric:
            out = np.empty(self.rows.size, dtype=pieces[0].dtype)
            out[self.order] = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
            return out
        joined = pieces[0] if len(pieces) == 1 else pl.concat(pieces, rechunk=True)
        inverse = np.empty(self.order.size, dtype=np.int64)
        inverse[self.order] = np.arange(self.order.size)
        return joined.gather(inverse)


def _gather_rows(
    parts: list[pl.DataFrame], columns: list[str], part_of: np.ndarray, row_of: np.ndarray
) -> pl.DataFrame:
    """The given rows (part number, row in part), in the given order."""
    pieces: list[pl.DataFrame] = []
    order: list[np.ndarray] = []
    for j in np.unique(part_of):
        sel = np.flatnonzero(part_of == j)
        pieces.append(parts[int(j)].select(columns)[row_of[sel]])
        order.append(sel)
    frame = pieces[0] if len(pieces) == 1 else pl.concat(pieces, how="vertical", rechunk=False)
    if len(pieces) > 1:
        position = np.empty(part_of.size, dtype=np.int64)
        position[np.concatenate(order)] = np.arange(part_of.size)
        frame = frame[position]
    return frame


def _tally(total: dict[str, dict[str, int]], frame: pl.DataFrame) -> None:
    """Add a frame's counts of labels, families and targets (one group-by: the three go
    together)."""
    groups = frame.group_by(sc.LABEL, sc.FAMILY, sc.TARGET).len()
    for *keys, n in groups.iter_rows():
        for column, key in zip((sc.LABEL, sc.FAMILY, sc.TARGET), keys, strict=True):
            name = str(key)
            total[column][name] = total[column].get(name, 0) + int(n)


def _sorted_counts(total: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {
        column: dict(sorted(counts.items(), key=lambda kv: -kv[1]))
        for column, counts in total.items()
    }


class _ParquetParts:
    """``clean.parquet`` written part by part (one row group or more per input file): plain
    encoding, no compression, no statistics, dictionaries for text columns only; columns that
    cannot hold a missing value after cleaning are declared required (no definition levels to
    write or read).

    The old file is unlinked first: the result cache may hold a hard link to it.
    """

    def __init__(self, path: Path, required: set[str]) -> None:
        self.path = path
        self.required = required
        self.writer: Any = None
        self.schema: Any = None
        path.unlink(missing_ok=True)

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self.writer is None:
            self.schema = pa.schema(
                [f.with_nullable(f.name not in self.required) for f in table.schema],
                metadata=table.schema.metadata,
            )
            text = [c for c, t in frame.schema.items() if not t.is_numeric()]
            self.writer = pq.ParquetWriter(
                self.path,
                self.schema,
                compression="none",
                use_dictionary=text,
                write_statistics=False,
            )
        if frame.height:  # same columns, fields marked required (no conversion, no copy)
            self.writer.write_table(pa.Table.from_arrays(table.columns, schema=self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


CLEANING_VERSION = "3"
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
    two_classes: bool = False,
) -> tuple[CleaningReport, bool]:
    """Read, clean and write ``clean.parquet`` + ``cleaning_report.json`` into ``out_dir``.

    ``two_classes`` (training): stop with the one-class warning's message (an
    :class:`InputError`) when the rows left hold one class of the task; without it, that
    warning is in the report.

    With a cache, a run on files of the same content with the same options copies the stored
    result (returns ``True`` as the second value); other options reuse the parsed columns.
    """
    opts = options or CleaningOptions()
    out = Path(out_dir)
    result_key = None
    if cache is not None:
        result_key = _result_key(cache, sources, dataset, mixed, opts)
        if cache.fetch_result(result_key, [CLEAN_FILE, REPORT_FILE], out):
            report = CleaningReport.model_validate_json((out / REPORT_FILE).read_text())
            if two_classes:
                require_two_classes(report)
            return report, True
    data = load_sources(sources, dataset, cache=cache, mixed=mixed, progress=progress)
    first_rows, rows_key = None, None
    if cache is not None:
        rows_key = _first_rows_key(data, mixed)
        first_rows = cache.get_mask(rows_key)
        if first_rows is not None and first_rows.size != data.height:
            first_rows = None
    plan = _plan(data, opts, first_rows)
    if cache is not None and rows_key and first_rows is None and plan.first_rows is not None:
        with contextlib.suppress(OSError):
            cache.put_mask(rows_key, plan.first_rows)
    if two_classes or plan.steps[-1].rows_out == 0:  # no class left: say which task fits
        require_two_classes(plan.warnings)
    if plan.steps[-1].rows_out == 0:
        raise InputError("no rows left after cleaning; see the step counts with --json")
    out.mkdir(parents=True, exist_ok=True)
    tally = _write_clean_parts(data, plan, out / CLEAN_FILE, opts)
    report = plan.report(data, _sorted_counts(tally))
    del data
    (out / REPORT_FILE).unlink(missing_ok=True)  # may be a hard link into the cache
    (out / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    if cache is not None and result_key is not None:
        cache.store_result(result_key, [CLEAN_FILE, REPORT_FILE], out)
    if two_classes:
        require_two_classes(report)
    return report, False


def _result_key(
    cache: ColumnarCache, sources: list[str], dataset: str | None, mixed: str, opts: CleaningOptions
) -> str:
    """The key of a stored result: the files' contents and names, the options, the versions."""
    paths = expand_sources(sources)
    digests = [cache.file_hash(p) for p in paths]
    names = [str(p) for p in paths]  # the rows carry their file names
    blob = json.dumps(
        [digests, names, dataset, mixed, opts.model_dump(), CLEANING_VERSION, READER_VERSION]
    )
    return xxhash.xxh3_128_hexdigest(blob.encode())


def _first_rows_key(data: LoadedData, mixed: str) -> str:
    """The key of the stored first-of-identical-rows mask (it depends on no cleaning option)."""
    blob = json.dumps(
        [
            data.hashes,
            data.dataset,
            mixed,
            feature_columns(data.parts[0], data.dataset),
            CLEANING_VERSION,
            READER_VERSION,
        ]
    )
    return "first-rows-" + xxhash.xxh3_128_hexdigest(blob.encode())


def _write_clean_parts(
    data: LoadedData, plan: _Plan, path: Path, opts: CleaningOptions
) -> dict[str, dict[str, int]]:
    """Write the kept rows part by part (one part is written in one thread while the next is
    filtered in the other; each part's pages are released once filtered); the class counts."""
    # a feature of a row kept by the non-finite step is never missing
    required = {sc.SOURCE, *(plan.features if opts.drop_nonfinite else [])}
    tally: dict[str, dict[str, int]] = {sc.LABEL: {}, sc.FAMILY: {}, sc.TARGET: {}}
    writer = _ParquetParts(path, required)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            writing = None
            for i in range(len(data.parts)):
                frame = plan.output(data.parts[i], i)
                data.parts[i] = data.parts[i].clear()
                data.release(i)
                _tally(tally, frame)
                if writing is not None:
                    writing.result()
                writing = pool.submit(writer.write, frame)
                del frame
            if writing is not None:
                writing.result()
    finally:
        writer.close()
    return tally
