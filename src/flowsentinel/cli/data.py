"""``flowsentinel data ...``: download, inspect, clean and prepare flow records."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowsentinel.cli._output import (
    cluster_option,
    console,
    friendly_errors,
    is_tty,
    stdout,
    table,
    workers_option,
)

if TYPE_CHECKING:  # polars, pandas and pyarrow: 0.4-0.6 s, paid by the commands that use them
    from flowsentinel.cleaning import CleaningReport

app = typer.Typer(help="Download, inspect, clean and prepare flow records.", no_args_is_help=True)


class Dataset(StrEnum):
    """The choices of ``--dataset``: the names of :data:`flowsentinel.core.schema.ALL`
    (a test keeps the two equal)."""

    cicids2017 = "cicids2017"
    unsw_nb15 = "unsw-nb15"


class TaskName(StrEnum):
    dos = "dos"
    attack = "attack"
    multiclass = "multiclass"


class NearConstant(StrEnum):
    constant = "constant"
    seed = "seed"
    none = "none"


class Mixed(StrEnum):
    error = "error"
    intersect = "intersect"


def print_cleaning_summary(report: CleaningReport, out: Path, cached: bool) -> None:
    rows = [
        [s.step + ("" if s.enabled else " (off)"), s.rows_in, s.rows_out, s.dropped]
        for s in report.steps
    ]
    console.print(
        table(
            f"Cleaning {report.dataset} for task {report.task}: {report.rows_in:,} rows read, "
            f"{report.rows_out:,} kept" + (" (from cache)" if cached else ""),
            ["step", "rows in", "rows out", "dropped"],
            rows,
        )
    )
    console.print(
        table("Classes kept", ["Target", "rows"], [[k, v] for k, v in report.target_counts.items()])
    )
    console.print(
        f"{len(report.features)} features kept, {len(report.columns_dropped)} columns dropped "
        f"(reasons in {out / 'cleaning_report.json'})"
    )


@app.command("clean")
@friendly_errors
def clean_cmd(
    sources: Annotated[
        list[str], typer.Argument(help="Files or folders (.csv, .csv.gz, .parquet).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    dataset: Annotated[Dataset | None, typer.Option(help="Data set (default: detected).")] = None,
    task: Annotated[TaskName, typer.Option(help="dos, attack or multiclass.")] = TaskName.dos,
    near_constant: Annotated[
        NearConstant,
        typer.Option(
            help="Near-constant column rule: constant (default), seed (similarity rule), none."
        ),
    ] = NearConstant.constant,
    similarity_threshold: Annotated[
        float, typer.Option(help="Threshold of the seed rule (%).")
    ] = 95.0,
    keep_identifiers: Annotated[
        bool, typer.Option(help="Keep addresses, ports, timestamps.")
    ] = False,
    keep_duplicates: Annotated[bool, typer.Option(help="Keep exact duplicate rows.")] = False,
    keep_nonfinite: Annotated[bool, typer.Option(help="Keep rows with inf/NaN values.")] = False,
    no_label_filter: Annotated[
        bool, typer.Option(help="Keep every label whatever the task.")
    ] = False,
    ddos_as_dos: Annotated[
        bool, typer.Option(help="Count DDoS as DoS (the seed's substring rule).")
    ] = False,
    mixed: Annotated[
        Mixed, typer.Option(help="Files with different columns: error or intersect.")
    ] = Mixed.error,
    no_cache: Annotated[bool, typer.Option(help="Do not use or fill the columnar cache.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
    workers: Annotated[int | None, workers_option()] = None,
    cluster: Annotated[str | None, cluster_option()] = None,
) -> None:
    """Clean flow records for a task: writes OUT/clean.parquet and OUT/cleaning_report.json.

    With --workers N or --cluster ADDRESS (or FLOWSENTINEL_DASK_SCHEDULER) each file is read
    and cleaned by a Dask task; the result is the same. OUT must then be on storage the workers
    can write."""
    from flowsentinel.cleaning import CleaningOptions, clean_to_dir
    from flowsentinel.core.cluster import Cluster
    from flowsentinel.core.settings import get_settings
    from flowsentinel.datasets.cache import ColumnarCache

    settings = get_settings()
    options = CleaningOptions(
        task=task.value,
        drop_identifiers=not keep_identifiers,
        filter_labels=not no_label_filter,
        drop_nonfinite=not keep_nonfinite,
        near_constant=near_constant.value,
        similarity_threshold=similarity_threshold,
        drop_duplicates=not keep_duplicates,
        ddos_as_dos=ddos_as_dos,
    )
    where = Cluster.from_options(workers=workers, address=cluster)
    use_cache = settings.use_cache and not no_cache
    cache = ColumnarCache(settings.resolved_cache_dir) if use_cache else None
    if where.local:
        report, cached = clean_to_dir(
            sources,
            out,
            dataset=dataset.value if dataset else None,
            options=options,
            cache=cache,
            mixed=mixed.value,
            progress=is_tty() and not as_json,
        )
    else:
        from flowsentinel.cleaning_cluster import clean_on_cluster

        with where.client() as client:
            assert client is not None  # a cluster was asked for
            report = clean_on_cluster(
                client,
                sources,
                out,
                dataset=dataset.value if dataset else None,
                options=options,
                mixed=mixed.value,
                cache_dir=cache.root if cache is not None else None,
            )
        cached = False
    for warning in report.warnings:  # one line each, on stderr (also in cleaning_report.json)
        console.print(
            f"[bold yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True
        )
    if as_json:
        stdout.print_json(report.model_dump_json())
    else:
        print_cleaning_summary(report, out, cached)


@app.command("prepare")
@friendly_errors
def prepare_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder written by `data clean`.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: DIRECTORY).")
    ] = None,
    test_size: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of rows held out.")
    ] = 0.2,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings).")] = None,
    undersample: Annotated[
        bool, typer.Option(help="Undersample the majority class (training rows).")
    ] = True,
    correlation_threshold: Annotated[
        float, typer.Option(help="Drop features with |r| above this; 1 keeps all.")
    ] = 0.9,
    heatmaps: Annotated[bool, typer.Option(help="Draw the three correlation heatmaps.")] = True,
) -> None:
    """Split, undersample (training rows only), drop correlated features, draw heatmaps."""
    from flowsentinel.core.settings import get_settings
    from flowsentinel.preparation import prepare  # sklearn is slow to import: only here

    summary = prepare(
        directory,
        out,
        test_size=test_size,
        seed=get_settings().seed if seed is None else seed,
        undersample=undersample,
        correlation_threshold=None if correlation_threshold >= 1 else correlation_threshold,
        heatmaps=heatmaps,
    )
    r = summary["rows"]
    console.print(
        table(
            "Preparation",
            ["part", "rows", "classes"],
            [
                ["clean", r["clean"], ""],
                ["train (after undersampling)", r["train"], summary["train_classes"]],
                ["test (natural ratio)", r["test"], summary["test_classes"]],
            ],
        )
    )
    console.print(
        f"{len(summary['features'])} features kept, {len(summary['correlated_dropped'])} dropped "
        f"as correlated; heatmaps: {', '.join(Path(p).name for p in summary['plots'].values())}"
    )


@app.command("download")
@friendly_errors
def download_cmd(
    dataset: Annotated[Dataset, typer.Argument(help="cicids2017 or unsw-nb15.")],
    force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False,
) -> None:
    """Download a data set from Kaggle through kagglehub (cached in FLOWSENTINEL_HOME)."""
    from flowsentinel.datasets.download import download_dataset
    from flowsentinel.datasets.sources import expand_sources

    folder = download_dataset(dataset.value, force=force)
    files = expand_sources([folder])
    console.print(f"{dataset.value}: {len(files)} files in {folder}")
    stdout.print(str(folder))


@app.command("info")
@friendly_errors
def info_cmd(
    sources: Annotated[list[str], typer.Argument(help="Files or folders.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Show the data set and dialect of each file (from its header, without reading it all)."""
    from flowsentinel.datasets.reader import sniff
    from flowsentinel.datasets.sources import expand_sources

    rows = []
    for path in expand_sources(sources):
        found = sniff(path)
        rows.append({"path": str(path), **found})
    if as_json:
        stdout.print_json(json.dumps(rows))
        return
    console.print(
        table(
            "Files",
            ["file", "data set", "dialect"],
            [[r["path"], r["dataset"] or "unknown", r["dialect"] or "-"] for r in rows],
        )
    )
