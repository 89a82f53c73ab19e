"""``flowsentinel train``, ``evaluate`` and ``models list|promote``."""

from __future__ import annotations

import contextlib
import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from flowsentinel.cli._output import (
    cluster_option,
    console,
    friendly_errors,
    stdout,
    table,
    workers_option,
)
from flowsentinel.cli.data import Dataset, Mixed, NearConstant, TaskName


class Decorrelate(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


app = typer.Typer(help="Registered models: list and promote.", no_args_is_help=True)

_COLUMNS = [
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "pr_auc",
    "balanced_accuracy",
    "fpr",
    "brier",
    "ece",
]


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def print_comparison(result: dict[str, Any]) -> None:
    rows = []
    champ = result["champion"]["name"]
    for m in result["models"]:
        mt = m["metrics"]
        fit = mt.get("fit_seconds")
        rows.append(
            [m["name"] + (" *" if m["name"] == champ else "")]
            + [_fmt(mt.get(c)) for c in _COLUMNS]
            + ["" if fit is None else f"{fit:.1f}", f"{mt['predict_seconds']:.2f}"]
        )
    title = (
        f"{result['dataset']} / {result['task']}, protocol {result['protocol']}: "
        f"{result['n_train']:,} training rows, {result['n_test']:,} test rows"
    )
    heads = ["f1", "prec", "recall", "roc_auc", "pr_auc", "bal_acc", "fpr", "brier", "ece"]
    console.print(table(title, ["model", *heads, "fit s", "pred s"], rows))
    for m in result["models"]:
        _print_operating_point(m)
    c = result["champion"]
    if c.get("registered_model") and result["protocol"] != "evaluate":
        console.print(
            f"champion [bold]{c['name']}[/] registered as {c['registered_model']} "
            f"version {c['version']} (alias champion)"
        )


def _print_operating_point(model: dict[str, Any]) -> None:
    """One line per model trained with ``--max-fpr`` or ``--calibrate``."""
    point, method = model.get("operating_point"), model.get("calibration")
    if point is None and method is None:
        return
    parts = [] if method is None else [f"calibrated ({method})"]
    if point is not None:
        allows = point["allowed_flags"]
        parts.append(
            f"threshold {point['threshold']:.6g} on P(attack) for FPR ≤ {point['max_fpr']:g}: "
            f"{point['flagged']} of {point['benign_rows']:,} benign training rows flagged out "
            f"of fold (OOF FPR {point['oof_fpr']:.4%}; the rate allows {allows} "
            f"flag{'' if allows == 1 else 's'})"
        )
    console.print(f"{model['name']}: " + "; ".join(parts), highlight=False)


def _parse_list(values: list[str] | None) -> list[str]:
    return [v for item in values or [] for v in item.split(",") if v]


def train_command(
    sources: Annotated[list[str], typer.Argument(help="Files or folders of labelled flows.")],
    dataset: Annotated[Dataset | None, typer.Option(help="Data set (default: detected).")] = None,
    task: Annotated[TaskName, typer.Option(help="dos, attack or multiclass.")] = TaskName.dos,
    models: Annotated[
        str,
        typer.Option(help="Comma-separated: lr,rf,knn,dt,xgb,seed-b,hgb,lgbm or all."),
    ] = "lr,rf,knn,dt,xgb,seed-b,lgbm",
    protocol: Annotated[
        str, typer.Option(help="holdout (default), seed, files or official.")
    ] = "holdout",
    test: Annotated[
        list[str] | None, typer.Option("--test", help="Test files (protocols files/official).")
    ] = None,
    features: Annotated[
        str, typer.Option(help="all, seed-a, seed-b, or a file listing column names.")
    ] = "all",
    n_iter: Annotated[
        int, typer.Option("--n-iter", min=0, help="Random-search candidates (0: defaults).")
    ] = 10,
    metric: Annotated[str, typer.Option(help="Metric that picks the champion.")] = "f1",
    test_size: Annotated[float, typer.Option(min=0.05, max=0.9, help="holdout test share.")] = 0.2,
    n_jobs: Annotated[int | None, typer.Option(help="Parallel jobs (default: settings).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings).")] = None,
    undersample: Annotated[
        bool, typer.Option(help="Undersample the majority class of training folds.")
    ] = True,
    near_constant: Annotated[
        NearConstant, typer.Option(help="Near-constant column rule of cleaning.")
    ] = NearConstant.constant,
    ddos_as_dos: Annotated[bool, typer.Option(help="Count DDoS as DoS (the seed).")] = False,
    mixed: Annotated[
        Mixed, typer.Option(help="Files of different dialects: error, or intersect columns.")
    ] = Mixed.error,
    decorrelate: Annotated[
        Decorrelate, typer.Option(help="Seed's |r|>0.9 feature drop: auto (lr/knn only), on, off.")
    ] = Decorrelate.auto,
    max_fpr: Annotated[
        float | None,
        typer.Option(
            "--max-fpr",
            help="Decision threshold keeping the out-of-fold false-positive rate of the "
            "training rows at most this (0 < rate < 1); default: most probable class.",
        ),
    ] = None,
    calibrate: Annotated[
        str | None,
        typer.Option(help="Calibrate probabilities: isotonic or sigmoid (3 stratified folds)."),
    ] = None,
    novel_share: Annotated[
        float,
        typer.Option(
            "--novel-share",
            help="Share of held-out training rows the novelty threshold marks novel "
            "(0 < share < 1).",
        ),
    ] = 0.02,
    register: Annotated[bool, typer.Option(help="Register the champion in MLflow.")] = True,
    name: Annotated[
        str | None, typer.Option(help="Registered model name (default flowsentinel-DATASET-TASK).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    workers: Annotated[int | None, workers_option()] = None,
    cluster: Annotated[str | None, cluster_option()] = None,
) -> None:
    """Train and compare models, track them in MLflow and register the best.

    With --workers N (a local Dask cluster) or --cluster ADDRESS (an existing scheduler; the
    FLOWSENTINEL_DASK_SCHEDULER environment variable when neither is given) the parameter
    searches run on the Dask workers and xgb/lgbm are fitted by xgboost.dask/lightgbm.dask on
    row blocks held by the workers.

    Interrupted (Ctrl-C, SIGTERM, an error) its MLflow runs end KILLED or FAILED, its worker
    processes stop, and no new version is registered; after SIGKILL the next command marks the
    runs KILLED and `flowsentinel models list` shows an unfinished version as incomplete.
    """
    from flowsentinel.core.cluster import Cluster
    from flowsentinel.models.processes import Terminated
    from flowsentinel.models.training import TrainConfig, train
    from flowsentinel.models.zoo import parse_models

    cfg = TrainConfig(
        sources=sources,
        dataset=dataset.value if dataset else None,
        task=task.value,
        models=parse_models(models),
        protocol=protocol,
        test_sources=_parse_list(test) or None,
        features=features,
        n_iter=n_iter,
        metric=metric,
        test_size=test_size,
        n_jobs=n_jobs,
        seed=seed,
        undersample=undersample,
        near_constant=near_constant.value,
        ddos_as_dos=ddos_as_dos,
        mixed=mixed.value,
        decorrelate={"auto": None, "on": True, "off": False}[decorrelate.value],
        register=register,
        registered_name=name,
        max_fpr=max_fpr,
        calibrate=calibrate,
        novel_share=novel_share,
        cluster=Cluster.from_options(workers=workers, address=cluster),
    )
    try:
        with console.status("training") as status, contextlib.redirect_stdout(sys.stderr):
            result = train(cfg, progress=lambda text: status.update(text))
    except Terminated:
        console.print("[bold red]terminated[/]")
        raise typer.Exit(143) from None
    _emit(result, as_json)


def _emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        stdout.print_json(json.dumps(result, default=str))
    else:
        print_comparison(result)


def evaluate_command(
    model_uri: Annotated[str, typer.Argument(help="models:/NAME@champion, a name, or a folder.")],
    sources: Annotated[list[str], typer.Argument(help="Labelled flows to score.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a registered model on new labelled data (data set and task come from the model)."""
    from flowsentinel.evaluation import evaluate

    with console.status("evaluating"), contextlib.redirect_stdout(sys.stderr):
        result = evaluate(model_uri, sources)
    _emit(result, as_json)


@app.command("list")
@friendly_errors
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="First delete the incomplete versions (left by a train killed while "
            "registering; never one whose train still runs).",
        ),
    ] = False,
) -> None:
    """Registered models: versions, state, aliases and test metrics.

    State: ready; incomplete (its train was killed while registering it: never the champion,
    `promote` refuses it, `--repair` deletes it); registering (its train is still running).
    Runs left RUNNING by a killed train of this host are marked KILLED when any command opens
    the store.
    """
    from flowsentinel.models import registry, tracking

    removed = registry.repair() if repair else []
    rows = registry.list_versions()
    ended = tracking.swept_runs()
    if ended:
        console.print(f"marked {len(ended)} runs of trains that no longer run as KILLED")
    for r in removed:
        console.print(f"removed incomplete version {r['version']} of {r['name']}")
    if as_json:
        stdout.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        console.print("no registered model yet: run `flowsentinel train` or `flowsentinel demo`")
        return
    console.print(
        table(
            "Registered models",
            ["name", "version", "state", "aliases", "model", "features", "protocol", "f1", "fpr"],
            [
                [
                    r["name"],
                    str(r["version"]),
                    r["state"],
                    ",".join(r["aliases"]),
                    r["tags"].get("model", ""),
                    r["tags"].get("feature_set", ""),
                    r["tags"].get("protocol", ""),
                    _fmt(r["metrics"].get("f1")),
                    _fmt(r["metrics"].get("fpr")),
                ]
                for r in rows
            ],
        )
    )
    if any(r["state"] == "incomplete" for r in rows):
        console.print("incomplete versions: `flowsentinel models list --repair` removes them")


@app.command("promote")
@friendly_errors
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    alias: Annotated[str, typer.Option(help="Alias to set.")] = "champion",
) -> None:
    """Point an alias (default ``champion``) at a version."""
    from flowsentinel.models.registry import set_alias

    set_alias(name, version, alias)
    console.print(f"{name}@{alias} → version {version}")


def register(main: typer.Typer) -> None:
    main.command("train")(friendly_errors(train_command))
    main.command("evaluate")(friendly_errors(evaluate_command))
    main.add_typer(app, name="models")


__all__ = ["register"]
