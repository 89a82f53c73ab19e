"""Cleaning on a Dask cluster: the same steps as :func:`flowsentinel.cleaning.clean_to_dir`,
as tasks per input file, with the global decisions taken in the client from small per-file
facts.

Each file is read by a task and stays on its worker (a Dask future); the client never holds a
table. The rounds:

1. read: each file as a one-file :class:`LoadedData`; its schema, report and families come back;
   the client checks the columns and picks one dtype per column over all files
   (``sources.common_dtypes``), and each file is conformed to them on its worker;
2. steps 2-4 (unlabelled, label filter, non-finite): the same step functions on each file;
   the row masks (one byte a row) and the step counts come back and are summed;
3. identical rows: each file's row hashes (features, label) come back; rows whose key occurs
   more than once are fetched (their features and label only) and settled by
   ``cleaning._first_occurrences``, the in-process function, on those rows alone;
4. near-constant columns: each file's distinct value kinds per column (at most a few values)
   come back and are united (``seed`` rule: each file's distinct values, or only their count
   where it already proves the column informative, and the client counts their union);
5. duplicates on the features left (only when step 5 changed the key): round 3 again on them;
6. output: each worker writes its file's kept rows as one part; the client appends the parts
   to ``clean.parquet`` in file order, a batch of rows at a time, and sums the class counts.

The result (rows, their order, columns, report) is the in-process one.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from flowsentinel.cleaning import (
    _MIX,
    CLEAN_FILE,
    REPORT_FILE,
    CleaningOptions,
    CleaningReport,
    CleaningWarning,
    ColumnDrop,
    StepReport,
    _add_counts,
    _columns_dropped_when_read,
    _constant_drops,
    _count_step,
    _first_occurrences,
    _identifier_columns,
    _label_filter,
    _nonfinite_rows,
    _one_class_warning,
    _ParquetParts,
    _Plan,
    _read_step,
    _similarity_drops,
    _single,
    _sorted_counts,
    _split_over,
    _tally,
    _unlabelled_rows,
    _value_kinds,
    duplicates_step,
    feature_columns,
    require_features,
    require_two_classes,
)
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets import labels as lab
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.datasets.reader import FileReport, sniff
from flowsentinel.datasets.sources import (
    LoadedData,
    _check_columns,
    common_dtypes,
    conform_part,
    expand_sources,
    load_sources,
)

if TYPE_CHECKING:  # Dask is imported only when a cluster is used
    from distributed import Client, Future

#: rows of one batch appended to ``clean.parquet`` by the client
APPEND_ROWS = 1 << 16


@dataclasses.dataclass
class _FileShape:
    """What the client learns of a file once it is read: small."""

    schema: dict[str, pl.DataType]
    report: FileReport
    dataset: str
    families: list[str]
    height: int


@dataclasses.dataclass
class _AliveFacts:
    """A file's rows left after steps 2-4, and what the report and the warning need."""

    alive: np.ndarray
    steps: list[StepReport]
    kept_by_family: dict[str, int]
    labels: list[str]


# ------------------------------------------------------------------------------------------
# tasks (run on the workers, each on one file)


def _read(
    path: str, dataset: str | None, mixed: str, cache_dir: str | None
) -> LoadedData | InputError:
    """A file read (through the columnar cache at ``cache_dir``, when given, as in-process);
    a file that cannot be read is a value (the worker logs no traceback), raised in the
    client."""
    cache = ColumnarCache(Path(cache_dir)) if cache_dir is not None else None
    try:
        data = load_sources([path], dataset, mixed=mixed, cache=cache)
    except InputError as exc:
        return exc
    # no memory map object in a result Dask may pickle (to move or spill it)
    return dataclasses.replace(data, mappings=[None])


def _shape(data: LoadedData | InputError) -> _FileShape | InputError:
    if isinstance(data, InputError):
        return data
    part = data.parts[0]
    families = part.get_column(sc.FAMILY).unique().drop_nulls().to_list()
    schema = {c: t for c, t in part.schema.items() if c != sc.SOURCE}
    return _FileShape(schema, data.files[0], data.dataset, families, part.height)


def _conform(
    data: LoadedData,
    name: str,
    dtypes: dict[str, pl.DataType],
    source_type: pl.Enum,
    common: list[str] | None,
) -> LoadedData:
    frame = data.parts[0].drop(sc.SOURCE)
    if common is not None:  # --mixed intersect
        frame = frame.select(common)
    part = conform_part(frame, name, dtypes, source_type)
    return LoadedData([part], data.dataset, data.files, data.hashes, [], data.facts, [None])


def _alive_rows(data: LoadedData, families: list[str], opts: CleaningOptions) -> _AliveFacts:
    """Steps 2-4 on one file, by the in-process step functions."""
    part = data.parts[0]
    alive = [np.ones(part.height, dtype=bool)]
    features = feature_columns(part, data.dataset)
    steps = [_unlabelled_rows(data.parts, alive, opts)]
    steps.append(_label_filter(data, alive, families, opts)[0])
    kept: dict[str, int] = {}
    _add_counts(kept, part.get_column(sc.FAMILY).filter(pl.Series(alive[0])))
    labels = part.get_column(sc.LABEL).unique().drop_nulls().to_list()
    facts = list(data.facts) or [None]
    steps.append(_nonfinite_rows(data, alive, facts, features, opts))
    return _AliveFacts(alive[0], steps, kept, labels)


def _hashes(
    data: LoadedData, mask: np.ndarray | None, features: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The feature and label hashes of a file's chosen rows (as ``_first_occurrences``)."""
    part = data.parts[0]
    h = part.select(features).hash_rows().to_numpy()
    y = part.get_column(sc.LABEL).hash(seed=7).to_numpy()
    return (h, y) if mask is None else (h[mask], y[mask])


def _rows(
    data: LoadedData, mask: np.ndarray | None, chosen: np.ndarray, columns: list[str]
) -> pl.DataFrame:
    """The columns at ``chosen`` among a file's rows selected by ``mask``."""
    frame = data.parts[0].select(columns)
    if mask is not None:
        frame = frame.filter(pl.Series(mask))
    return frame.filter(pl.Series(chosen))


def _settle(
    data: LoadedData,
    mask: np.ndarray | None,
    chosen: np.ndarray,
    feature_hash: np.ndarray,
    columns: list[str],
) -> np.ndarray:
    """Which of a file's ``chosen`` rows (keys found in this file only) are the first of their
    identical rows: ``_first_occurrences`` on them."""
    if not chosen.any():
        return np.ones(0, dtype=bool)
    rows = _rows(data, mask, chosen, columns)
    every = [np.ones(rows.height, dtype=bool)]
    return _first_occurrences([rows], every, columns[:-1], [feature_hash], _keep_pages)[0]


def _distinct(
    data: LoadedData, mask: np.ndarray, features: list[str], height: int, threshold: float
) -> dict[str, pl.Series | int]:
    """Each column's distinct values over a file's rows ``mask`` (null and NaN each a value),
    or only their count where it alone proves the column kept by the seed rule (as
    ``cleaning._distinct_counts`` stops)."""
    keep = pl.Series(mask)
    out: dict[str, pl.Series | int] = {}
    for c in features:
        values = data.parts[0].get_column(c).filter(keep).unique()
        informative = (1 - values.len() / height) * 100 <= threshold
        out[c] = values.len() if informative else values
    return out


def _kinds(data: LoadedData, mask: np.ndarray, features: list[str]) -> dict[str, set[object]]:
    """The distinct value kinds of each feature over a file's rows ``mask`` (the constant
    test needs two at most)."""
    n = int(np.count_nonzero(mask))
    if not n:
        return {}
    return {c: _value_kinds(data.parts[0], c, mask, n) for c in features}


def _write_part(
    data: LoadedData, plan: _Plan, keep: np.ndarray | None, path: str, required: set[str]
) -> dict[str, dict[str, int]]:
    """A file's cleaned rows written to ``path``; their class counts."""
    frame = dataclasses.replace(plan, keep=[keep]).output(data.parts[0], 0)
    tally: dict[str, dict[str, int]] = {sc.LABEL: {}, sc.FAMILY: {}, sc.TARGET: {}}
    _tally(tally, frame)
    writer = _ParquetParts(Path(path), required)
    try:
        writer.write(frame)
    finally:
        writer.close()
    return tally


# ------------------------------------------------------------------------------------------
# the client


def workers_reach(client: Client, folder: str | Path) -> bool:
    """True when every worker of ``client`` sees ``folder`` as a folder (shared storage: the
    workers of a local cluster, or a mount every machine has), so they can write parts there."""
    workers = list(client.scheduler_info().get("workers", {}))
    if not workers:
        return False
    seen = client.run(Path.is_dir, Path(folder), workers=workers)
    return bool(seen) and all(seen.values())


def clean_on_cluster(
    client: Client,
    sources: list[str],
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    options: CleaningOptions | None = None,
    mixed: str = "error",
    two_classes: bool = False,
    cache_dir: str | Path | None = None,
) -> CleaningReport:
    """:func:`flowsentinel.cleaning.clean_to_dir` as Dask tasks per file (same outputs).

    ``out_dir`` must be on storage that the workers and this process share: the workers write
    the parts there. ``cache_dir``: the columnar cache the workers read the files through (a
    worker that cannot reach it makes its own at that path); the result cache is not used.
    """
    opts = options or CleaningOptions()
    out = Path(out_dir)
    paths = [str(p) for p in expand_sources(sources)]
    cache = None if cache_dir is None else str(cache_dir)
    files = _read_all(client, paths, dataset, mixed, cache)
    data, shapes = files.skeleton, files.shapes
    plan, masks = _plan_on_cluster(client, files.futures, data, shapes, opts)
    if two_classes or plan.steps[-1].rows_out == 0:
        require_two_classes(plan.warnings)
    if plan.steps[-1].rows_out == 0:
        raise InputError("no rows left after cleaning; see the step counts with --json")
    out.mkdir(parents=True, exist_ok=True)
    tally = _write_on_cluster(client, files.futures, plan, masks, out / CLEAN_FILE, opts)
    report = plan.report(data, _sorted_counts(tally))
    (out / REPORT_FILE).unlink(missing_ok=True)
    (out / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    if two_classes:
        require_two_classes(report)
    return report


@dataclasses.dataclass
class _Files:
    futures: list[Future]  # one conformed LoadedData per file, on the workers
    shapes: list[_FileShape]
    skeleton: LoadedData  # no rows: the file reports and an empty frame of the columns


def _read_all(
    client: Client, paths: list[str], dataset: str | None, mixed: str, cache_dir: str | None
) -> _Files:
    """Round 1: every file read on a worker and conformed to the columns of all files."""
    if dataset is None:  # as load_sources: the first file tells
        dataset = str(sniff(paths[0])["dataset"] or "") or None
    read = [client.submit(_read, p, dataset, mixed, cache_dir, pure=False) for p in paths]
    shapes: list[_FileShape] = []
    for shape in client.gather([client.submit(_shape, f) for f in read]):
        if isinstance(shape, InputError):
            raise shape
        shapes.append(shape)
    found = shapes[0].dataset
    for path, shape in zip(paths, shapes, strict=True):
        if shape.dataset != found:
            raise InputError(f"a {shape.dataset} file among {found} files", path=path)
    empties = [pl.DataFrame(schema=s.schema) for s in shapes]
    reports = [s.report for s in shapes]
    not_in_all = _check_columns(empties, reports, mixed)
    common = None
    if mixed == "intersect":
        common = [c for c in empties[0].columns if all(c in f.columns for f in empties)]
    schemas = [s.schema if common is None else {c: s.schema[c] for c in common} for s in shapes]
    dtypes = common_dtypes(schemas)
    source_type = pl.Enum(list(dict.fromkeys(paths)))
    futures = [
        client.submit(_conform, f, name, dtypes, source_type, common, pure=False)
        for f, name in zip(read, paths, strict=True)
    ]
    del read
    empty = pl.DataFrame(schema={**dtypes, sc.SOURCE: source_type})
    skeleton = LoadedData([empty], found, reports, [], not_in_all)
    return _Files(futures, shapes, skeleton)


def _plan_on_cluster(
    client: Client,
    futures: list[Future],
    data: LoadedData,
    shapes: list[_FileShape],
    opts: CleaningOptions,
) -> tuple[_Plan, list[np.ndarray | None]]:
    """Every decision of ``cleaning._plan``, from the files' facts; the plan and the rows
    kept of each file (None: all)."""
    started = time.perf_counter()
    first = data.parts[0]
    rows_in = sum(s.height for s in shapes)
    dropped_cols = _columns_dropped_when_read(data)
    steps = [_read_step(data.files, rows_in)]
    idents, dropped = _identifier_columns(first, data.dataset, opts)
    dropped_cols += dropped
    features = feature_columns(first, data.dataset)
    families = sorted({f for s in shapes for f in s.families})
    facts: list[_AliveFacts] = client.gather(
        [client.submit(_alive_rows, f, families, opts) for f in futures]
    )
    alive = [f.alive for f in facts]
    for k in range(3):
        steps.append(_merged_step([f.steps[k] for f in facts]))
    warnings = _warnings(data, opts, families, facts)
    height = steps[-1].rows_out
    all_features = list(features)
    first_parts, fh = None, None
    if opts.drop_duplicates and height and all_features:
        first_rows, fh = _first_rows(client, futures, [None] * len(futures), all_features)
        first_parts = _split_over(first_rows, [np.ones(s.height, dtype=bool) for s in shapes])
    candidates = (
        [a & f for a, f in zip(alive, first_parts, strict=True)]
        if first_parts is not None
        else alive
    )
    features, dropped, same_key = _near_constant(
        client, futures, candidates, features, height, opts
    )
    dropped_cols += dropped
    require_features(features, opts)
    keep, conflicting, step = _duplicates(
        client, futures, alive, candidates, features, fh, height, same_key, opts
    )
    steps.append(step)
    positive = [f for f in families if lab.is_positive(f, opts.task, ddos_as_dos=opts.ddos_as_dos)]
    plan = _Plan(
        opts=opts,
        dataset=data.dataset,
        rows_in=rows_in,
        steps=steps,
        dropped_cols=dropped_cols,
        features=features,
        kept_ids=[] if opts.drop_identifiers else idents,
        keep=[],
        positive=positive,
        conflicting=conflicting,
        started=started,
        first_rows=None,
        warnings=warnings,
    )
    return plan, keep


def _merged_step(per_file: list[StepReport]) -> StepReport:
    """One step's report over all files: the counts summed, the details added up."""
    detail: dict[str, Any] = {}
    for step in per_file:
        _add_detail(detail, step.detail)
    head = per_file[0]
    return _count_step(
        head.step,
        head.enabled,
        sum(s.rows_in for s in per_file),
        sum(s.rows_out for s in per_file),
        detail,
    )


def _add_detail(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add_detail(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def _warnings(
    data: LoadedData, opts: CleaningOptions, families: list[str], facts: list[_AliveFacts]
) -> list[CleaningWarning]:
    """The one-class warning of the label filter, from every file's counts."""
    classes = lab.task_classes(
        families, opts.task, ddos_as_dos=opts.ddos_as_dos, filter_labels=opts.filter_labels
    )
    if len(classes) >= 2:
        return []
    kept: dict[str, int] = {}
    for f in facts:
        for family, n in f.kept_by_family.items():
            kept[family] = kept.get(family, 0) + n
    labels = {label for f in facts for label in f.labels}
    return [_one_class_warning(data, opts, families, kept, labels)]


def _first_rows(
    client: Client, futures: list[Future], masks: list[np.ndarray | None], features: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``cleaning._first_occurrences`` over the files' chosen rows: which are the first of
    their identical rows (features and label), and their feature hashes.

    Only the hashes travel. A row whose key occurs once is a first. The rows of a key that
    occurs more than once, all in one file, are settled by ``_first_occurrences`` on that
    file's worker; the rows of a key found in several files (their features and label) are
    fetched and settled by it here. A key's rows are settled together either way, so the
    result is that of one ``_first_occurrences`` over all rows.
    """
    hashes = client.gather(
        [client.submit(_hashes, f, m, features) for f, m in zip(futures, masks, strict=True)]
    )
    feature_hash = [h for h, _ in hashes]
    fh = np.concatenate(feature_hash)
    keys = fh ^ (np.concatenate([y for _, y in hashes]) * _MIX)
    shared = pl.Series(keys).is_duplicated().to_numpy()
    keep = np.ones(keys.size, dtype=bool)
    if not shared.any():
        return keep, fh
    sizes = [h.size for h in feature_hash]
    file_of = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)[shared]
    spread = (
        pl.DataFrame({"k": keys[shared], "f": file_of})
        .select(pl.col("f").n_unique().over("k") > 1)
        .to_series()
        .to_numpy()
    )
    local, across = np.zeros_like(shared), np.zeros_like(shared)
    local[shared], across[shared] = ~spread, spread
    columns = [*features, sc.LABEL]
    by_file = [np.ones(n, dtype=bool) for n in sizes]
    settled = [
        client.submit(_settle, futures[k], masks[k], chosen, feature_hash[k][chosen], columns)
        for k, chosen in enumerate(_split_over(local, by_file))
    ]
    if across.any():
        chosen = _split_over(across, by_file)
        asked = [k for k, c in enumerate(chosen) if c.any()]
        rows: list[pl.DataFrame] = client.gather(
            [client.submit(_rows, futures[k], masks[k], chosen[k], columns) for k in asked]
        )
        sub_hashes = [feature_hash[k][chosen[k]] for k in asked]
        every = [np.ones(r.height, dtype=bool) for r in rows]
        keep[across], _ = _first_occurrences(rows, every, features, sub_hashes, _keep_pages)
    keep[local] = np.concatenate(client.gather(settled))
    return keep, fh


def _keep_pages(index: int | None = None) -> None:
    """The frames given to ``_first_occurrences`` here are in memory: nothing to release."""


def _near_constant(
    client: Client,
    futures: list[Future],
    candidates: list[np.ndarray],
    features: list[str],
    height: int,
    opts: CleaningOptions,
) -> tuple[list[str], list[ColumnDrop], bool]:
    """Step 5: under the ``constant`` rule each file's value kinds per column, united; under
    the ``seed`` rule each file's distinct values per column, united (``_distinct_on_cluster``)."""
    if opts.near_constant == "none" or not features or not height:
        return features, [], True
    if opts.near_constant == "seed":
        threshold = opts.similarity_threshold
        nunique = _distinct_on_cluster(client, futures, candidates, features, height, threshold)
        return _similarity_drops(features, nunique, height, threshold)
    per_file: list[dict[str, set[object]]] = client.gather(
        [client.submit(_kinds, f, c, features) for f, c in zip(futures, candidates, strict=True)]
    )
    constant, neutral = [], True
    for c in features:
        kinds: set[object] = set().union(*(k[c] for k in per_file if c in k))
        if _single(kinds):
            constant.append(c)
            neutral = neutral and len(kinds) <= 1
    return _constant_drops(features, constant, neutral, height)


def _distinct_on_cluster(
    client: Client,
    futures: list[Future],
    candidates: list[np.ndarray],
    features: list[str],
    height: int,
    threshold: float,
) -> dict[str, int]:
    """Distinct values of each column over the candidate rows of all files, as
    ``cleaning._distinct_counts`` counts them: exact where the seed rule drops the column; for
    a column it keeps, a count that already proves it informative. A file whose own distinct
    values prove a column kept sends their count only; else it sends the values, and the
    client counts their union."""
    per_file: list[dict[str, pl.Series | int]] = client.gather(
        [
            client.submit(_distinct, f, c, features, height, threshold)
            for f, c in zip(futures, candidates, strict=True)
        ]
    )
    counts: dict[str, int] = {}
    for c in features:
        pieces = [d[c] for d in per_file]
        proven = [n for n in pieces if isinstance(n, int)]
        series = [v for v in pieces if not isinstance(v, int)]
        counts[c] = max(proven) if proven else pl.concat(series).unique().len()
    return counts


def _duplicates(
    client: Client,
    futures: list[Future],
    alive: list[np.ndarray],
    candidates: list[np.ndarray],
    features: list[str],
    fh: np.ndarray | None,
    height: int,
    same_key: bool,
    opts: CleaningOptions,
) -> tuple[list[np.ndarray | None], int, StepReport]:
    """Step 6, as ``cleaning._duplicate_rows``: the rows kept of each file (None for all), the
    rows sharing their features with a row of another label, the step's report."""
    keep: list[np.ndarray | None] = [None if a.all() else a for a in alive]
    conflicting = 0
    if opts.drop_duplicates and height:
        if same_key:
            kept = candidates
            assert fh is not None  # the identical rows were found over all features
            conflicting = int(pl.Series(fh[np.concatenate(kept)]).is_duplicated().sum())
        else:  # rows distinct on all features may be equal on the features left
            masks: list[np.ndarray | None] = list(candidates)
            firsts, feature_hash = _first_rows(client, futures, masks, features)
            kept = [c.copy() for c in candidates]
            for mask, sub in zip(kept, _split_over(firsts, candidates), strict=True):
                mask[mask] = sub
            conflicting = int(pl.Series(feature_hash[firsts]).is_duplicated().sum())
        keep = [None if m.all() else m for m in kept]
    rows_out = sum(
        a.size if m is None else int(np.count_nonzero(m)) for a, m in zip(alive, keep, strict=True)
    )
    return keep, conflicting, duplicates_step(opts, height, rows_out, conflicting)


def _write_on_cluster(
    client: Client,
    futures: list[Future],
    plan: _Plan,
    keep: list[np.ndarray | None],
    path: Path,
    opts: CleaningOptions,
) -> dict[str, dict[str, int]]:
    """Round 6: each worker writes its file's kept rows as a part beside ``path``; each part
    is appended to ``path`` in file order as soon as it and those before it are written (while
    the workers write the next ones); the class counts summed."""
    required = {sc.SOURCE, *(plan.features if opts.drop_nonfinite else [])}
    tally: dict[str, dict[str, int]] = {sc.LABEL: {}, sc.FAMILY: {}, sc.TARGET: {}}
    with tempfile.TemporaryDirectory(prefix=".clean-parts-", dir=path.parent) as tmp:
        parts = [str(Path(tmp) / f"part-{k:05d}.parquet") for k in range(len(futures))]
        written = [
            client.submit(_write_part, f, plan, m, p, required, pure=False)
            for f, m, p in zip(futures, keep, parts, strict=True)
        ]
        path.unlink(missing_ok=True)  # the result cache may hold a hard link to it
        writer = None
        try:
            for future, part in zip(written, parts, strict=True):
                for column, counts in future.result().items():
                    for key, n in counts.items():
                        tally[column][key] = tally[column].get(key, 0) + n
                writer = _append_part(writer, part, path)
        finally:
            if writer is not None:
                writer.close()
    return tally


def _append_part(writer: pq.ParquetWriter | None, part: str, path: Path) -> pq.ParquetWriter:
    """A part's rows appended to ``path`` a batch at a time (the writer opened on the first)."""
    with pq.ParquetFile(part) as source:
        if writer is None:
            schema = source.schema_arrow
            text = [
                f.name
                for f in schema
                if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
            ]
            writer = pq.ParquetWriter(
                path, schema, compression="none", use_dictionary=text, write_statistics=False
            )
        for batch in source.iter_batches(batch_size=APPEND_ROWS):
            writer.write_batch(batch)
    return writer
