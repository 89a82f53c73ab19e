"""The one scoring entry: a fitted flowsentinel pipeline with its contract, from probabilities to
verdicts.

A :class:`Detector` is a fitted pipeline together with what it was trained on (data set, task,
classes, the exact input columns). It is loaded from MLflow (``models:/NAME@alias``,
``models:/NAME/VERSION``, a bare registered name meaning its ``champion``, ``runs:/…`` or a
local model folder) or built around a pipeline just fitted (training scores its test rows
through the same object). Every caller — ``scan``, ``watch``, ``evaluate`` and the service —
gets its probabilities from the pipeline's compiled form (:attr:`Detector.compiled`,
:mod:`flowsentinel.models.compiled`: built when the model is loaded; a pipeline that cannot be
compiled cannot be loaded, nor registered) through :meth:`Detector.proba_matrix`, and its
verdicts from :meth:`Detector.verdicts`: class padding (a class absent from the training rows),
the decision threshold, labels.

Examples
--------
>>> import numpy as np
>>> from flowsentinel.models.detector import Verdicts
>>> v = Verdicts.from_proba(np.array([[0.9, 0.1], [0.2, 0.8]]), ["BENIGN", "DoS"])
>>> v.labels.tolist(), v.attack_probability.round(1).tolist()
(['BENIGN', 'DoS'], [0.1, 0.8])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import polars as pl

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError, ModelError
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.models import explain as explaining
from flowsentinel.models import tracking
from flowsentinel.models.profile import TrainingProfile

if TYPE_CHECKING:
    from flowsentinel.models.compiled import CompiledPipeline

#: which flows get reasons: none, those not judged benign, or all
Explain = Literal["none", "flagged", "all"]

DEFAULT_MODEL = "models:/flowsentinel-cicids2017-dos@champion"
DEMO_MODEL = "models:/flowsentinel-lab-dos@champion"  # registered by `flowsentinel demo`


def resolve_uri(model: str | None, settings: Settings | None = None) -> str:
    """A model reference as an MLflow URI (``None``: the configured default model)."""
    settings = settings or get_settings()
    ref = model or settings.default_model or DEFAULT_MODEL
    if "://" in ref or ref.startswith(("models:/", "runs:/")):
        return ref
    if Path(ref).expanduser().exists():
        return str(Path(ref).expanduser().resolve())
    if "@" in ref:
        return f"models:/{ref}"
    if "/" in ref and ref.rsplit("/", 1)[1].isdigit():
        return f"models:/{ref}"
    return f"models:/{ref}@champion"


def _registered(mlflow: Any, uri: str) -> bool:
    name, alias = uri.removeprefix("models:/").split("@", 1)
    try:
        mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except Exception:
        return False
    return True


@dataclass
class Verdicts:
    """Per-flow results of one model call."""

    codes: np.ndarray  # class index per flow
    labels: np.ndarray  # class name per flow
    probability: np.ndarray  # probability of the assigned class
    attack_probability: np.ndarray  # 1 - P(BENIGN)
    proba: np.ndarray  # all class probabilities
    #: distance to the training rows over the novelty threshold (> 1: novel); ``None`` for a
    #: model trained without a profile
    novelty: np.ndarray | None = None
    in_distribution: np.ndarray | None = None
    #: per feature, how many flows had a value outside the training rows' range (most first)
    out_of_range: dict[str, int] = field(default_factory=dict)
    #: per flow, the inputs that pushed it most towards its verdict (``None``: not explained)
    reasons: list[list[dict[str, Any]] | None] | None = None

    @classmethod
    def from_proba(
        cls,
        proba: np.ndarray,
        classes: list[str],
        fitted: np.ndarray | None = None,
        threshold: float | None = None,
    ) -> Verdicts:
        """Verdicts from a model's probabilities: the columns of the classes the model saw
        (``fitted``: their indices in ``classes``) are placed among all ``classes``; then the
        most probable class, or, with a ``threshold``, an attack when ``1 - P(benign)`` reaches
        it (the most probable attack class)."""
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape[1] < len(classes):
            full = np.zeros((len(proba), len(classes)))
            full[:, np.arange(proba.shape[1]) if fitted is None else fitted] = proba
            proba = full
        attack = 1.0 - proba[:, 0]
        if threshold is None or len(classes) < 2:
            codes = proba.argmax(axis=1)
        else:
            best_attack = proba[:, 1:].argmax(axis=1) + 1
            codes = np.where(attack >= threshold, best_attack, 0)
        labels = np.asarray(classes, dtype=object)[codes]
        return cls(codes, labels, proba[np.arange(len(codes)), codes], attack, proba)

    @classmethod
    def empty(cls, n_classes: int) -> Verdicts:
        none = np.empty(0)
        return cls(np.empty(0, np.int64), np.empty(0, object), none, none, np.empty((0, n_classes)))

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def summary(self) -> dict[str, int]:
        names, counts = np.unique(self.labels, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    @property
    def confidence(self) -> np.ndarray | None:
        """``"low"`` for a verdict on a flow outside the training distribution, else ``"high"``
        (``None`` when the model has no profile)."""
        if self.in_distribution is None:
            return None
        return np.where(self.in_distribution, "high", "low").astype(object)

    def novel_share(self) -> float | None:
        if self.in_distribution is None or len(self) == 0:
            return None
        return float(1.0 - np.mean(self.in_distribution))


def _distinct_rows(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(the first position of each distinct row of ``frame[columns]``, each row's distinct
    index): rows are told apart by a 64-bit hash of their values."""
    if len(frame) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    keys = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.ravel()


@dataclass
class Detector:
    """A fitted pipeline and its contract."""

    pipeline: Any
    uri: str
    name: str
    version: str | None
    dataset: str
    task: str
    classes: list[str]
    features: list[str]
    categorical: list[str]
    feature_set: str = "all"
    model: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    threshold: float | None = None
    _compiled: CompiledPipeline | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_metadata(cls, pipeline: Any, meta: dict[str, Any], **where: Any) -> Detector:
        """A detector around ``pipeline`` described by its flowsentinel metadata (the dict
        training logs with the model); ``where`` sets ``uri``, ``name``, ``version``..."""
        return cls(
            pipeline=pipeline,
            uri=where.pop("uri", ""),
            name=where.pop("name", meta.get("model", "")),
            version=where.pop("version", None),
            dataset=meta["dataset"],
            task=meta["task"],
            classes=list(meta["classes"]),
            features=list(meta["features"]),
            categorical=list(meta.get("categorical", [])),
            feature_set=meta.get("feature_set", "all"),
            model=meta.get("model", ""),
            metrics=dict(meta.get("metrics", {})),
            threshold=meta.get("threshold"),
            **where,
        )

    @classmethod
    def load(cls, model: str | None = None, settings: Settings | None = None) -> Detector:
        settings = settings or get_settings()
        uri = resolve_uri(model, settings)
        mlflow = tracking.configure(settings)
        if model is None and not settings.default_model and not _registered(mlflow, uri):
            uri = DEMO_MODEL  # no real CIC-IDS2017 champion yet: the demo's model
        try:
            name, version = _name_and_version(mlflow, uri)
            info = mlflow.models.get_model_info(uri)
            meta = (info.metadata or {}).get("flowsentinel")
            if not meta:
                raise ModelError(f"{uri} is not a flowsentinel model (no flowsentinel metadata)")
            pipeline = mlflow.sklearn.load_model(uri)
        except ModelError:
            raise
        except Exception as exc:  # mlflow raises many types; the user needs one clear line
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(
                f"cannot load model {uri} from {tracking.tracking_uri(settings)}: {text} "
                "(train one with `flowsentinel train`, list them with `flowsentinel models list`)"
            ) from None
        detector = cls.from_metadata(
            pipeline,
            meta,
            uri=uri,
            name=name,
            version=version,
            run_id=getattr(info, "run_id", None),
        )
        detector.compiled  # noqa: B018 - a model that cannot be compiled fails here, not later
        return detector

    @property
    def profile(self) -> TrainingProfile | None:
        """What the model was trained on (per-class quantiles, novelty), kept with the model."""
        return TrainingProfile.of(self.pipeline)

    @property
    def compiled(self) -> CompiledPipeline:
        """The pipeline's compiled form, built on first use (:meth:`load` builds it); a
        :class:`~flowsentinel.models.compiled.CompileError` when it cannot be built."""
        if self._compiled is None:
            from flowsentinel.models.compiled import CompileError, compile_pipeline

            try:
                self._compiled = compile_pipeline(self.pipeline, self.features, self.categorical)
            except CompileError as exc:
                raise CompileError(
                    f"model {self.name or self.uri} cannot be compiled for scoring: {exc}"
                ) from exc
        return self._compiled

    # --- inputs -------------------------------------------------------------------------------
    @property
    def numeric(self) -> list[str]:
        categorical = set(self.categorical)
        return [f for f in self.features if f not in categorical]

    def canonical_columns(self, columns: list[str]) -> tuple[dict[str, str], list[str]]:
        """Map input column names to the model's names; returns (mapping, unknown columns)."""
        wanted = set(self.features)
        mapping: dict[str, str] = {}
        unknown: list[str] = []
        for col in columns:
            canonical = col if col in wanted else sc.dataset(self.dataset).canonical(str(col))
            if canonical in wanted and canonical not in mapping.values():
                mapping[col] = canonical
            elif canonical is None:
                unknown.append(col)
        return mapping, unknown

    def missing(self, columns: list[str]) -> list[str]:
        mapping, _ = self.canonical_columns(columns)
        return self._absent(mapping)

    def _absent(self, mapping: dict[str, str]) -> list[str]:
        present = set(mapping.values())
        return [f for f in self.features if f not in present]

    def align(self, frame: pd.DataFrame | pl.DataFrame) -> pd.DataFrame:
        """The model's input columns, renamed from any known spelling; missing ones are an error."""
        if isinstance(frame, pl.DataFrame):
            frame = frame.to_pandas()
        mapping, _ = self.canonical_columns(list(frame.columns))
        absent = self._absent(mapping)
        if absent:
            raise InputError(
                f"the flows lack {len(absent)} feature(s) the model "
                f"{self.name} needs: {', '.join(absent)}"
            )
        return frame[list(mapping)].rename(columns=mapping)[self.features]

    # --- outputs ------------------------------------------------------------------------------
    def verdicts(self, proba: np.ndarray) -> Verdicts:
        """The step from the model's probabilities to verdicts (every caller goes through it)."""
        fitted = getattr(self.pipeline, "classes_", None)
        return Verdicts.from_proba(proba, self.classes, fitted, self.threshold)

    def inputs(self, X: pd.DataFrame) -> tuple[np.ndarray, dict[str, list[Any]]]:
        """Aligned input columns as the compiled form takes them: the float64 matrix of the
        numeric columns and the text of the categorical ones (as ``FrameSelector`` makes it)."""
        try:
            numeric = X[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the model could not score these flows: {text}") from None
        categorical = {
            c: X[c].astype("string").fillna("-").astype(object).tolist() for c in self.categorical
        }
        return numeric, categorical

    def proba_matrix(
        self, numeric: np.ndarray, categorical: dict[str, list[Any]] | None = None
    ) -> np.ndarray:
        """The pipeline's probabilities, computed by its compiled form, for the matrix of the
        numeric columns (in :attr:`numeric` order) and the text of the categorical ones (a
        scoring failure is one line naming it)."""
        compiled = self.compiled
        try:
            return compiled.proba(numeric, categorical)
        except Exception as exc:  # e.g. an encoder refusing an unknown category
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the model could not score these flows: {text}") from None

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The pipeline's probabilities for aligned input columns (:meth:`proba_matrix`)."""
        return self.proba_matrix(*self.inputs(X))

    def predict(
        self,
        frame: pd.DataFrame | pl.DataFrame,
        explain: Explain = "none",
        bound: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Verdicts:
        """One vectorised model call for all flows of ``frame`` (any known column spelling),
        with the flows' novelty when the model has a profile, and reasons for the ``flagged``
        flows (those not judged benign), ``all`` flows or ``none``. ``bound``: applied to the
        numeric inputs before the model sees them (the service clamps untrusted files); the
        novelty is judged on the values as given."""
        X = self.align(frame)
        if len(X) == 0:
            return Verdicts.empty(len(self.classes))
        numeric, categorical = self.inputs(X)
        model_input = bound(numeric) if bound is not None else numeric
        verdicts = self.verdicts(self.proba_matrix(model_input, categorical))
        self.assess(verdicts, numeric)
        self.explain(verdicts, X, explain)
        return verdicts

    def assess(self, verdicts: Verdicts, numeric: np.ndarray) -> None:
        """Add the flows' novelty (the :attr:`numeric` matrix) to their verdicts."""
        profile = self.profile
        if profile is None:
            return
        found = profile.assess(numeric)
        verdicts.novelty = found.novelty
        verdicts.in_distribution = found.in_distribution
        verdicts.out_of_range = found.out_of_range_counts(profile.features)

    def explain(self, verdicts: Verdicts, X: pd.DataFrame, which: Explain) -> None:
        """Add reasons to the verdicts of the aligned inputs ``X``: of every flow (``all``),
        of the flows not judged benign (``flagged``) or none
        (:mod:`flowsentinel.models.explain`)."""
        if which == "none":
            return
        rows = np.arange(len(X)) if which == "all" else np.flatnonzero(verdicts.codes != 0)
        if verdicts.reasons is None:
            verdicts.reasons = [None] * len(verdicts)
        if len(rows) == 0:
            return
        # each distinct input row is explained once: a flood's flows are identical (60,035
        # flagged flows of the bench capture are 80 distinct rows), and the same inputs get
        # the same verdict, so their reasons are shared
        first, inverse = _distinct_rows(X.iloc[rows], self.features)
        rows_once = rows[first]
        fitted = np.asarray(getattr(self.pipeline, "classes_", np.arange(len(self.classes))))
        # the verdict's class among the classes the estimator was fitted on
        target = np.searchsorted(fitted, verdicts.codes[rows_once]).clip(0, len(fitted) - 1)
        subset = X.iloc[rows_once]
        attr = explaining.attributions(
            self.pipeline, subset, target, self.features, self.categorical
        )
        found = explaining.reasons(
            attr, subset, [str(v) for v in verdicts.labels[rows_once]], self.profile
        )
        for i, k in zip(rows.tolist(), inverse.tolist(), strict=True):
            verdicts.reasons[i] = found[k]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "dataset": self.dataset,
            "task": self.task,
            "model": self.model,
            "classes": self.classes,
            "feature_set": self.feature_set,
            "features": self.features,
            "threshold": self.threshold,
            "metrics": self.metrics,
            "novelty": self.profile.describe() if self.profile is not None else None,
        }


def _name_and_version(mlflow: Any, uri: str) -> tuple[str, str | None]:
    """The registered name and version a ``models:/`` URI points at (the URI itself otherwise)."""
    if not uri.startswith("models:/"):
        return uri, None
    ref = uri.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    if "/" in ref:
        name, version = ref.split("/", 1)
        return name, version
    return ref, None
