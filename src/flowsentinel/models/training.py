"""``train``: clean → split by protocol → tune, [calibrate,] fit each pipeline → [operating
point] → metrics and plots → MLflow runs (a parent per command, a nested run per model) →
register the champion.

``--calibrate`` wraps the tuned estimator in ``CalibratedClassifierCV``
(:func:`~flowsentinel.models.zoo.calibrated`); ``--max-fpr`` chooses the decision threshold on
out-of-fold probabilities of the training rows (:mod:`flowsentinel.models.operating`), stores it
in the model's metadata (so that every :class:`~flowsentinel.models.detector.Detector` of the
model applies it) and scores the test rows with it."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from sklearn.model_selection import (
    ParameterSampler,
    RandomizedSearchCV,
    StratifiedKFold,
    train_test_split,
)
from sklearn.neighbors import KNeighborsClassifier

from flowsentinel.cleaning import CLEAN_FILE, REPORT_FILE, CleaningOptions, clean_to_dir
from flowsentinel.cleaning_cluster import clean_on_cluster, workers_reach
from flowsentinel.core import schema as sc
from flowsentinel.core.cluster import Cluster
from flowsentinel.core.errors import InputError
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.models import processes, registry, tracking
from flowsentinel.models import protocols as pr
from flowsentinel.models.card import model_card
from flowsentinel.models.detector import Verdicts
from flowsentinel.models.feature_sets import resolve_features
from flowsentinel.models.metrics import METRIC_NAMES, compute_metrics
from flowsentinel.models.operating import (
    OperatingPoint,
    check_max_fpr,
    out_of_fold_proba,
    threshold_for_fpr,
)
from flowsentinel.models.plots import (
    confusion_heatmap,
    feature_importance,
    importance_bar,
    reliability_plot,
    roc_pr_curves,
)
from flowsentinel.models.profile import TrainingProfile
from flowsentinel.models.scaleout import DASK_MODELS, describe, fit_on_cluster, search_backend
from flowsentinel.models.zoo import (
    CALIBRATION_METHODS,
    SPECS,
    ModelSpec,
    build_pipeline,
    calibrated,
    search_space,
)

if TYPE_CHECKING:  # Dask is imported only when a cluster is used
    from distributed import Client

POSITIVE_NAMES = {"dos": "DoS", "attack": "Attack"}
LOWER_IS_BETTER = {"fpr", "brier", "ece", "fit_seconds", "predict_seconds"}


@dataclass
class TrainConfig:
    """Everything a ``train`` command decides."""

    sources: list[str]
    task: str = "dos"
    dataset: str | None = None
    models: list[str] = field(default_factory=lambda: ["rf"])
    protocol: str = "holdout"
    test_sources: list[str] | None = None
    features: str = "all"
    n_iter: int = 10
    cv: int = 3
    test_size: float = 0.2
    metric: str = "f1"
    register: bool = True
    registered_name: str | None = None
    undersample: bool = True
    near_constant: str = "constant"
    ddos_as_dos: bool = False
    mixed: str = "error"
    decorrelate: bool | None = None  # None: per model (on for lr/knn, off for trees)
    seed: int | None = None
    n_jobs: int | None = None
    #: the decision threshold keeps the out-of-fold false-positive rate of the training rows
    #: at most this (None: the most probable class decides)
    max_fpr: float | None = None
    calibrate: str | None = None  # None, "isotonic" or "sigmoid"
    #: the share of held-out training rows the novelty threshold marks novel
    novel_share: float = 0.02
    #: where the searches and the xgb/lgbm fits run (default: in this process)
    cluster: Cluster = field(default_factory=Cluster)


@dataclass
class LabelCoder:
    """Classes of a task and the mapping of cleaned rows to their integer codes."""

    classes: list[str]
    task: str

    @classmethod
    def for_frame(cls, frame: pl.DataFrame, task: str) -> LabelCoder:
        if task in POSITIVE_NAMES:
            return cls([sc.BENIGN, POSITIVE_NAMES[task]], task)
        fams = sorted(set(frame[sc.TARGET].cast(pl.String).to_list()) - {sc.BENIGN})
        return cls([sc.BENIGN, *fams], task)

    def __call__(self, frame: pl.DataFrame) -> np.ndarray:
        if self.task in POSITIVE_NAMES:
            return frame[sc.TARGET].cast(pl.Int64).to_numpy().astype(np.int64)
        index = {c: i for i, c in enumerate(self.classes)}
        codes = frame[sc.TARGET].cast(pl.String).replace_strict(index, default=-1)
        return codes.cast(pl.Int64).to_numpy()


def _clean(
    sources: list[str],
    out: Path,
    dataset: str | None,
    opts: CleaningOptions,
    settings: Settings,
    mixed: str = "error",
    *,
    training: bool = True,
    client: Client | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Clean ``sources`` into ``out``. Training rows must hold two classes (else one line names
    the task that fits the labels); test rows may hold one (a day of benign traffic). With a
    Dask ``client`` whose workers all reach ``out``'s folder the files are cleaned as tasks on
    the workers (:func:`flowsentinel.cleaning_cluster.clean_on_cluster`, the same rows); the
    report's ``cleaned_on`` says where."""
    cache_dir = settings.resolved_cache_dir if settings.use_cache else None
    out.parent.mkdir(parents=True, exist_ok=True)
    if client is not None and workers_reach(client, out.parent):
        clean_on_cluster(
            client, sources, out, dataset=dataset, options=opts, mixed=mixed,
            two_classes=training, cache_dir=cache_dir,
        )  # fmt: skip
        where = "cluster"
    else:
        cache = ColumnarCache(cache_dir) if cache_dir is not None else None
        clean_to_dir(
            sources, out, dataset=dataset, options=opts, cache=cache, mixed=mixed,
            two_classes=training,
        )  # fmt: skip
        where = "in-process"
    frame = pl.read_parquet(out / CLEAN_FILE)
    return frame, {**json.loads((out / REPORT_FILE).read_text()), "cleaned_on": where}


def _n_candidates(space: dict[str, Any]) -> int:
    total = 1
    for values in space.values():
        total *= len(values)
    return total


def _fit(
    name: str,
    split: pr.Split,
    numeric: list[str],
    categorical: list[str],
    n_classes: int,
    cfg: TrainConfig,
    seed: int,
    n_jobs: int,
    client: Client | None = None,
) -> tuple[Any, dict[str, Any], float, float]:
    """Tune (RandomizedSearchCV, sampler inside the folds), calibrate when asked (the tuned
    estimator wrapped, ``zoo.calibrated``) and fit; returns the fitted pipeline, its best
    parameters, the final fit time and the whole tuning time. With a Dask ``client`` the
    search's fits are tasks on its workers, and an uncalibrated ``xgb``/``lgbm`` is fitted by
    its Dask counterpart on row blocks held by the workers (``models.scaleout``)."""
    spec = SPECS[name]
    pipe = build_pipeline(
        spec,
        numeric,
        categorical,
        seed=seed,
        n_classes=n_classes,
        undersample=cfg.undersample and split.undersample_in_pipeline,
        decorrelate=cfg.decorrelate,
    )
    space = search_space(spec)
    started = time.perf_counter()
    best: dict[str, Any] = {}
    if cfg.n_iter > 0 and space:
        scoring = "f1" if n_classes == 2 else "f1_macro"
        best = _tune(pipe, space, spec, scoring, split, cfg, seed, n_jobs, client)
        if isinstance(pipe[-1], KNeighborsClassifier):  # the folds ran in parallel; one fit
            pipe.set_params(model__n_jobs=n_jobs)  # scores its test rows on every core
    if cfg.calibrate is not None:
        pipe = calibrated(pipe, cfg.calibrate, cfg.cv, seed)
    fit_started = time.perf_counter()
    if client is not None and name in DASK_MODELS and cfg.calibrate is None:
        fit_on_cluster(pipe, split.train, split.y_train, client)
    else:
        pipe.fit(split.train, split.y_train)
    done = time.perf_counter()
    return pipe, best, done - fit_started, done - started


def _tune(
    pipe: Any,
    space: dict[str, Any],
    spec: ModelSpec,
    scoring: str,
    split: pr.Split,
    cfg: TrainConfig,
    seed: int,
    n_jobs: int,
    client: Client | None = None,
) -> dict[str, Any]:
    """Search ``space`` of the model ``spec`` (RandomizedSearchCV on stratified folds) and set
    the best parameters on ``pipe`` (unfitted); returns them without the ``model__`` prefix.
    The candidates' fits run in loky worker processes, or as tasks of the Dask ``client``."""
    search = (_SearchWithDefaults if spec.search_defaults else RandomizedSearchCV)(
        pipe,
        space,
        n_iter=min(cfg.n_iter, _n_candidates(space)),
        scoring=scoring,
        cv=StratifiedKFold(cfg.cv, shuffle=True, random_state=seed),
        random_state=seed,
        n_jobs=n_jobs,
        refit=False,
        error_score="raise",
    )
    rows = _search_rows(split.y_train, spec.search_rows, seed)
    with _parallel(client):
        if rows is None:
            search.fit(split.train, split.y_train)
        else:
            search.fit(split.train.iloc[rows], split.y_train[rows])
    processes.pause_for_tests("tuned")
    pipe.set_params(**search.best_params_)
    chosen = pipe.get_params()
    return {k.removeprefix("model__"): _plain(chosen[k]) for k in space}


class _SearchWithDefaults(RandomizedSearchCV):
    """``RandomizedSearchCV`` whose candidates are the pipeline as built (the estimator's
    defaults) and ``n_iter`` − 1 draws: the tuned model is never one that the folds scored
    below the defaults."""

    def _run_search(self, evaluate_candidates: Any) -> None:
        draws = ParameterSampler(
            self.param_distributions, max(self.n_iter - 1, 0), random_state=self.random_state
        )
        evaluate_candidates([{}, *draws])


def _parallel(client: Client | None) -> contextlib.AbstractContextManager[None]:
    """Where a search's or a fold loop's parallel fits run: loky workers that die with this
    process, or the Dask ``client``'s workers."""
    return processes.search_workers() if client is None else search_backend(client)


def _search_rows(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray | None:
    """Positions of a stratified sample of ``limit`` training rows, or ``None`` for all."""
    if limit is None or len(y) <= limit:
        return None
    try:
        rows, _ = train_test_split(
            np.arange(len(y)), train_size=limit, random_state=seed, stratify=y
        )
    except ValueError:  # a class too small to stratify: a plain sample
        rows = np.random.default_rng(seed).choice(len(y), size=limit, replace=False)
    return np.sort(rows)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _pip_requirements(names: list[str]) -> list[str]:
    pkgs = ["scikit-learn", "imbalanced-learn", "pandas", "numpy", "polars", "pyarrow"]
    if any(n in ("xgb", "seed-b") for n in names):
        pkgs.append("xgboost")
    if "lgbm" in names:
        pkgs.append("lightgbm")
    return [f"{p}=={version(p)}" for p in pkgs]


def train(
    cfg: TrainConfig,
    settings: Settings | None = None,
    progress: Any = None,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a whole ``train`` command; returns the JSON result (see the CLI's ``--json``).

    ``keep``, when given, receives the fitted pipelines by model name and the test rows
    (``"_test"``), for callers that compare them with what MLflow gives back.

    However it ends, its runs end (FINISHED, KILLED on Ctrl-C or SIGTERM, FAILED on an error),
    the worker processes of its searches die with this process (and are shut down at once when
    it fails or is interrupted), and the champion is registered completely or not at all
    (``registry.register``).
    """
    with (
        processes.sigterm_as_interrupt(),
        processes.worker_scope(),
        cfg.cluster.client() as client,  # an unreachable scheduler stops it before cleaning
    ):
        return _train(cfg, settings, progress, keep, client)


def _train(
    cfg: TrainConfig,
    settings: Settings | None,
    progress: Any,
    keep: dict[str, Any] | None,
    client: Client | None = None,
) -> dict[str, Any]:
    """The stages of ``train``: prepare the data, then in the parent run fit, score and log
    each model (a nested run each; searches and xgb/lgbm fits on the Dask ``client``'s workers
    when given), compare them and register the champion."""
    settings = settings or get_settings()
    seed = settings.seed if cfg.seed is None else cfg.seed
    n_jobs = settings.n_jobs if cfg.n_jobs is None else cfg.n_jobs
    _check_config(cfg)
    say = progress or (lambda text: None)

    with tempfile.TemporaryDirectory(prefix="flowsentinel-train-") as tmp:
        work = Path(tmp)
        data = _prepare(cfg, settings, work, seed, say, client)
        mlflow = tracking.configure(settings)
        exp = tracking.experiment_id(tracking.model_name(data.dataset, cfg.task), settings)
        reg_name = cfg.registered_name or tracking.model_name(data.dataset, cfg.task)
        data.context["registered_model"] = reg_name
        results: list[dict[str, Any]] = []
        with tracking.run(
            experiment_id=exp, run_name=f"train {','.join(cfg.models)} ({cfg.protocol})"
        ) as parent:
            _log_parent(mlflow, cfg, data, seed, describe(cfg.cluster, client))
            for name in cfg.models:
                scored = _fit_and_score(name, data, cfg, seed, n_jobs, say, client)
                _log_model(mlflow, exp, scored, data, cfg, seed, work / "plots" / name, say)
                results.append(scored.entry)
                if keep is not None:
                    keep[name] = scored.pipe
            if keep is not None:
                keep["_test"] = data.X_test
            out, champion, card = _log_comparison(
                mlflow, results, data, cfg, exp, parent.info.run_id, settings
            )
            if cfg.register:  # the last step: complete or absent
                _register(champion, card, reg_name, out, say)
        return out


def _check_config(cfg: TrainConfig) -> None:
    """Stop on a protocol, test files or metric that the command cannot use."""
    if cfg.protocol not in pr.PROTOCOLS:
        choices = ", ".join(pr.PROTOCOLS)
        raise InputError(f"unknown protocol {cfg.protocol!r}; choose from {choices}")
    if cfg.protocol in ("files", "official") and not cfg.test_sources:
        raise InputError(f"--protocol {cfg.protocol} needs the test files: --test SOURCE")
    if cfg.protocol not in ("files", "official") and cfg.test_sources:
        raise InputError("--test is only used with --protocol files or official")
    if cfg.metric not in (*METRIC_NAMES, "fit_seconds", "predict_seconds"):
        raise InputError(f"unknown metric {cfg.metric!r}; choose from {', '.join(METRIC_NAMES)}")
    if cfg.max_fpr is not None:
        check_max_fpr(cfg.max_fpr)
    if not 0 < cfg.novel_share < 1:
        raise InputError(f"--novel-share must be in (0, 1), got {cfg.novel_share}")
    if cfg.calibrate is not None and cfg.calibrate not in CALIBRATION_METHODS:
        choices = ", ".join(CALIBRATION_METHODS)
        raise InputError(f"--calibrate must be one of {choices}, got {cfg.calibrate!r}")


@dataclass
class _Prepared:
    """The rows of a ``train`` command, cleaned and split, and what describes them."""

    dataset: str
    report: dict[str, Any]  # the cleaning report of the training rows
    split: pr.Split
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    classes: list[str]
    context: dict[str, Any]  # for the model card
    X_test: Any  # the test rows' features (pandas)
    example: Any  # the input example logged with each model


def _prepare(
    cfg: TrainConfig,
    settings: Settings,
    work: Path,
    seed: int,
    say: Callable[[str], None],
    client: Client | None = None,
) -> _Prepared:
    """Clean the training (and test) sources into ``work`` (on the ``client``'s workers when
    they reach it), choose the features and split the rows by the protocol; test rows of
    classes unseen in training are left out."""
    keep_dups = cfg.protocol == "seed" and (cfg.dataset or "") == sc.UNSW.name
    opts = CleaningOptions.model_validate(
        {
            "task": cfg.task,  # str fields of TrainConfig, validated here
            "near_constant": cfg.near_constant,
            "drop_duplicates": not keep_dups,
            "ddos_as_dos": cfg.ddos_as_dos,
        }
    )
    say("cleaning the training sources")
    frame, report = _clean(
        cfg.sources, work / "train", cfg.dataset, opts, settings, cfg.mixed, client=client
    )
    dataset = report["dataset"]
    if cfg.protocol == "seed" and dataset == sc.UNSW.name and not keep_dups:
        # the data set was detected from the files: clean again keeping duplicates
        opts = opts.model_copy(update={"drop_duplicates": False})
        frame, report = _clean(
            cfg.sources, work / "train", dataset, opts, settings, cfg.mixed, client=client
        )
    if cfg.protocol == "official" and dataset != sc.UNSW.name:
        raise InputError("--protocol official is the UNSW-NB15 training → testing partition")
    available = [c for c in sc.dataset(dataset).features if c in frame.columns]
    test_frame = None
    if cfg.test_sources:
        say("cleaning the test sources")
        test_opts = opts.model_copy(update={"near_constant": "none"})
        test_frame, _ = _clean(
            cfg.test_sources,
            work / "test",
            dataset,
            test_opts,
            settings,
            cfg.mixed,
            training=False,
            client=client,
        )
        available = [c for c in available if c in test_frame.columns]
    features = resolve_features(cfg.features, dataset, available)
    categorical = [c for c in features if c in sc.dataset(dataset).categorical]
    numeric = [c for c in features if c not in categorical]
    coder = LabelCoder.for_frame(frame, cfg.task)
    say(f"splitting ({cfg.protocol})")
    if cfg.protocol == "holdout":
        split = pr.holdout(frame, features, coder, test_size=cfg.test_size, seed=seed)
    elif cfg.protocol == "seed":
        split = pr.seed_protocol(frame, features, coder, dataset)
    else:
        assert test_frame is not None
        split = pr.file_protocol(
            frame, test_frame, features, coder, official=cfg.protocol == "official"
        )
    unseen = split.y_test < 0
    if unseen.any():
        split.details["test_rows_of_classes_unseen_in_training"] = int(unseen.sum())
        split.test = split.test[~unseen].reset_index(drop=True)
        split.y_test = split.y_test[~unseen]
    del frame, test_frame
    context: dict[str, Any] = {
        "dataset": dataset,
        "task": cfg.task,
        "protocol": cfg.protocol,
        "protocol_description": split.description,
        "sources": [str(s) for s in cfg.sources],
        "n_train": len(split.y_train),
        "n_test": len(split.y_test),
        "metric": cfg.metric,
    }
    X_test = split.test[features]
    example = X_test.head(5).copy()
    for c in numeric:
        example[c] = example[c].astype("float64")
    return _Prepared(
        dataset=dataset,
        report=report,
        split=split,
        features=features,
        numeric=numeric,
        categorical=categorical,
        classes=coder.classes,
        context=context,
        X_test=X_test,
        example=example,
    )


def _log_parent(mlflow: Any, cfg: TrainConfig, data: _Prepared, seed: int, where: str) -> None:
    """The parent run's parameters (``cluster``: where it ran, :func:`scaleout.describe`),
    cleaning report and protocol."""
    mlflow.log_params(
        {
            "dataset": data.dataset,
            "task": cfg.task,
            "protocol": cfg.protocol,
            "feature_set": cfg.features,
            "n_features": len(data.features),
            "models": ",".join(cfg.models),
            "n_iter": cfg.n_iter,
            "seed": seed,
            "n_train": data.context["n_train"],
            "n_test": data.context["n_test"],
            "cluster": where,
        }
    )
    mlflow.log_dict(data.report, "cleaning_report.json")
    split = data.split
    mlflow.log_dict({"description": split.description, **split.details}, "protocol.json")


@dataclass
class _Scored:
    """A model tuned, fitted and scored on the test rows."""

    pipe: Any
    entry: dict[str, Any]  # name, title, params, metrics, confusion matrix, metadata
    proba: np.ndarray
    predict_seconds: float


def _fit_and_score(
    name: str,
    data: _Prepared,
    cfg: TrainConfig,
    seed: int,
    n_jobs: int,
    say: Callable[[str], None],
    client: Client | None = None,
) -> _Scored:
    """Tune and fit one model (on the Dask ``client``'s workers when given), then score the
    test rows: its metrics and metadata."""
    spec = SPECS[name]
    classes = data.classes
    say(f"{name}: tuning and fitting ({spec.title})")
    pipe, best, fit_s, tune_s = _fit(
        name, data.split, data.numeric, data.categorical, len(classes), cfg, seed, n_jobs, client
    )
    point = None
    if cfg.max_fpr is not None:
        say(f"{name}: out-of-fold probabilities of the training rows ({cfg.cv} folds)")
        point = _operating_point(pipe, data, cfg.max_fpr, cfg.cv, seed, n_jobs, client)
        say(f"{name}: {point.describe()}")
    profile = _describe_training(data, seed, cfg.novel_share)
    profile.attach(pipe)
    say(f"{name}: scoring {len(data.X_test):,} test rows")
    t0 = time.perf_counter()
    proba = np.asarray(pipe.predict_proba(data.X_test))
    predict_s = time.perf_counter() - t0
    # a class absent from the training rows gets its column back, as when the model serves;
    # the threshold is the one every Detector of this model applies
    threshold = None if point is None else point.threshold
    verdicts = Verdicts.from_proba(proba, classes, np.asarray(pipe.classes_), threshold)
    m = compute_metrics(data.split.y_test, verdicts.codes, verdicts.proba, classes)
    cm = m.pop("confusion_matrix")
    per_class = m.pop("per_class", None)
    m.update(fit_seconds=fit_s, predict_seconds=predict_s, tuning_seconds=tune_s)
    m["novel_share_test"] = _novel_share(profile, data)
    meta: dict[str, Any] = {
        "dataset": data.dataset,
        "task": cfg.task,
        "classes": classes,
        "features": data.features,
        "numeric": data.numeric,
        "categorical": data.categorical,
        "feature_set": cfg.features,
        "protocol": cfg.protocol,
        "model": name,
        "metrics": {k: v for k, v in m.items() if v is not None},
        "calibration": cfg.calibrate,
    }
    entry: dict[str, Any] = {
        "name": name,
        "title": spec.title,
        "params": best,
        "metrics": m,
        "confusion_matrix": cm,
        "metadata": meta,
        "calibration": cfg.calibrate,
        "operating_point": None,
    }
    if point is not None:
        meta["threshold"] = point.threshold  # read by Detector.from_metadata
        meta["operating_point"] = entry["operating_point"] = point.as_dict()
    if per_class is not None:
        entry["per_class"] = per_class
    return _Scored(pipe=pipe, entry=entry, proba=proba, predict_seconds=predict_s)


def _operating_point(
    pipe: Any,
    data: _Prepared,
    max_fpr: float,
    folds: int,
    seed: int,
    n_jobs: int,
    client: Client | None = None,
) -> OperatingPoint:
    """The threshold for ``max_fpr`` from out-of-fold probabilities of the training rows (the
    fitted pipeline's parameters, calibration included, refitted on ``folds`` stratified
    folds); the score is the attack probability 1 − P(benign), as the verdicts read it."""
    split = data.split
    with _parallel(client):
        oof = out_of_fold_proba(pipe, split.train, split.y_train, folds, seed, n_jobs)
    attack = Verdicts.from_proba(oof, data.classes, np.unique(split.y_train)).attack_probability
    return threshold_for_fpr(attack[split.y_train == 0], max_fpr, folds=folds)


def _describe_training(data: _Prepared, seed: int, novel_share: float) -> TrainingProfile:
    """The training rows' per-class quantiles and novelty detector (kept with the model)."""
    rows = data.split.train[data.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    return TrainingProfile.fit(
        rows, data.split.y_train, data.numeric, data.classes, seed=seed, novel_share=novel_share
    )


def _novel_share(profile: TrainingProfile, data: _Prepared) -> float:
    """The share of test rows the profile marks novel (held out from training)."""
    rows = data.X_test[data.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    return 1.0 - float(np.mean(profile.assess(rows).in_distribution)) if len(rows) else 0.0


def _log_model(
    mlflow: Any,
    exp: str,
    scored: _Scored,
    data: _Prepared,
    cfg: TrainConfig,
    seed: int,
    plots: Path,
    say: Callable[[str], None],
) -> None:
    """The plots of one model and its nested run (parameters, metrics, plots, importance,
    the model); adds the run id, model URI and model id to its entry."""
    entry, pipe, split = scored.entry, scored.pipe, data.split
    name, best, m, cm = entry["name"], entry["params"], entry["metrics"], entry["confusion_matrix"]
    spec = SPECS[name]
    classes, X_test = data.classes, data.X_test
    say(f"{name}: plots and MLflow logging")
    plots.mkdir(parents=True, exist_ok=True)
    title = f"{spec.title}, {data.dataset} {cfg.task} ({cfg.protocol})"
    confusion_heatmap(np.asarray(cm), classes, plots / "confusion_matrix.png", title)
    roc_pr_curves(split.y_test, scored.proba, classes, plots / "roc_pr.png", title)
    reliability_plot(split.y_test, scored.proba, classes, plots / "reliability.png", title)
    imp = feature_importance(
        pipe, X_test, split.y_test, seed, scored.predict_seconds / max(1, len(X_test))
    )
    importance_bar(imp, plots / "feature_importance.png", f"importance: {title}")
    with tracking.run(experiment_id=exp, run_name=name, nested=True) as run:
        mlflow.log_params({"model": name, **{f"p_{k}": v for k, v in best.items()}})
        _log_operating_point(mlflow, entry)
        if best and spec.search_rows and len(split.y_train) > spec.search_rows:
            mlflow.log_param("search_rows", spec.search_rows)
        mlflow.log_metrics({k: float(v) for k, v in m.items() if v is not None})
        processes.pause_for_tests("logging")
        mlflow.log_artifacts(str(plots), "plots")
        mlflow.log_dict(imp.to_dict(), "feature_importance.json")
        mlflow.log_dict(data.report, "cleaning_report.json")
        mlflow.log_dict({"confusion_matrix": cm, "classes": classes}, "confusion.json")
        signature = mlflow.models.infer_signature(data.example, pipe.predict(data.example))
        info = mlflow.sklearn.log_model(
            pipe,
            name="model",
            signature=signature,
            input_example=data.example,
            metadata={"flowsentinel": entry["metadata"]},
            pip_requirements=_pip_requirements([name]),
            serialization_format="cloudpickle",
        )
        entry["run_id"] = run.info.run_id
        entry["model_uri"] = info.model_uri
        entry["model_id"] = info.model_id


def _log_operating_point(mlflow: Any, entry: dict[str, Any]) -> None:
    """Calibration and decision threshold of one model's run (params; the threshold and its
    out-of-fold false-positive rate also as metrics)."""
    if entry["calibration"] is not None:
        mlflow.log_param("calibrate", entry["calibration"])
    point = entry["operating_point"]
    if point is None:
        return
    mlflow.log_params(
        {
            "max_fpr": point["max_fpr"],
            "threshold": point["threshold"],
            "threshold_folds": point["folds"],
            "threshold_benign_rows": point["benign_rows"],
            "threshold_allowed_flags": point["allowed_flags"],
        }
    )
    mlflow.log_metrics({"threshold": point["threshold"], "oof_fpr": point["oof_fpr"]})


def _log_comparison(
    mlflow: Any,
    results: list[dict[str, Any]],
    data: _Prepared,
    cfg: TrainConfig,
    exp: str,
    parent_run_id: str,
    settings: Settings,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The champion by the metric, the command's result (logged as ``comparison.json``) and
    the model card (logged in the champion's run)."""
    context = data.context
    champion = _pick(results, cfg.metric)
    out: dict[str, Any] = {
        **{k: context[k] for k in ("dataset", "task", "protocol", "n_train", "n_test")},
        "feature_set": cfg.features,
        "features": data.features,
        "classes": data.classes,
        "protocol_details": data.split.details,
        "experiment_id": exp,
        "parent_run_id": parent_run_id,
        "tracking_uri": tracking.tracking_uri(settings),
        "models": [
            {
                k: e[k]
                for k in (
                    "name",
                    "params",
                    "metrics",
                    "confusion_matrix",
                    "calibration",
                    "operating_point",
                )
            }
            | ({"per_class": e["per_class"]} if "per_class" in e else {})
            | {"run_id": e["run_id"]}
            for e in results
        ],
        "champion": {"name": champion["name"], "registered_model": None, "version": None},
    }
    mlflow.log_dict(out, "comparison.json")
    mlflow.set_tag("champion", champion["name"])
    card = model_card(champion, context, results)
    mlflow.MlflowClient().log_text(champion["run_id"], card, "model_card.md")
    return out, champion, card


def _register(
    champion: dict[str, Any],
    card: str,
    reg_name: str,
    out: dict[str, Any],
    say: Callable[[str], None],
) -> None:
    """Register the champion (complete or absent: ``registry.register``); its name and version
    go into ``out``."""
    say(f"registering {champion['name']} as {reg_name}")
    version = registry.register(
        champion["model_uri"],
        champion["run_id"],
        reg_name,
        card,
        champion["metadata"],
        champion["model_id"],
    )
    out["champion"].update(registered_model=reg_name, version=int(version))


def _pick(results: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    def key(e: dict[str, Any]) -> float:
        v = e["metrics"].get(metric)
        if v is None:
            return float("-inf")
        return -v if metric in LOWER_IS_BETTER else v

    return max(results, key=key)
