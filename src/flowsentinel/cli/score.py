"""``flowsentinel score``: verdicts for a whole flow table, partition by partition, in this
process or on a Dask cluster."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Annotated

import typer

from flowsentinel.cli._output import (
    cluster_option,
    console,
    friendly_errors,
    stdout,
    workers_option,
)


def score_cmd(
    dataset: Annotated[
        str,
        typer.Argument(
            help="Flows: a CSV/parquet file, a folder of them or a partitioned parquet "
            "dataset (local path or fsspec URL)."
        ),
    ],
    model: Annotated[
        str | None, typer.Option(help="Model URI or registered name (default: settings).")
    ] = None,
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Verdicts: FILE.parquet, FILE.csv or FILE.jsonl, else a folder of parquet parts.",
        ),
    ] = "",
    workers: Annotated[int | None, workers_option()] = None,
    cluster: Annotated[str | None, cluster_option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score every flow of a flow table with a registered model; writes one verdict per flow
    with the columns `scan` writes (row, identity, label, probabilities, novelty, true_label)."""
    from flowsentinel.batch import score
    from flowsentinel.core.cluster import Cluster
    from flowsentinel.core.errors import InputError
    from flowsentinel.scoring import Detector

    if not out:
        raise InputError("--out is required: FILE.parquet, FILE.csv, FILE.jsonl or a folder")
    where = Cluster.from_options(workers=workers, address=cluster)
    with contextlib.redirect_stdout(sys.stderr):
        det = Detector.load(model)
    started = time.perf_counter()
    status = console.status(f"scoring {dataset} with {det.name} on {where.describe()}")
    with status, contextlib.redirect_stdout(sys.stderr):
        result = score(dataset, det, out, where)
    seconds = time.perf_counter() - started
    if as_json:
        stdout.print_json(json.dumps({**result.to_dict(), "seconds": seconds}))
        return
    console.print(
        f"scored {result.flows:,} flows of {result.files} file(s) in {seconds:.1f} s on "
        f"{result.cluster}: {result.by_label}; verdicts in {result.out}",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("score")(friendly_errors(score_cmd))
