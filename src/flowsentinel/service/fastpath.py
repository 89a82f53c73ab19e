"""A numpy-only replay of the usual fitted pipeline, for low-latency scoring.

scikit-learn spends most of a one-row ``predict_proba`` on input checks, pandas and thread-pool
dispatch, not on arithmetic: a 100-tree forest behind the pipeline takes ~10 ms for one flow.
:func:`compile_pipeline` reads the fitted steps of the common numeric pipeline shape
(``FrameSelector`` → sampler → ``ColumnTransformer`` of one numeric branch made of
de-correlation / median imputation / scaling → estimator) and replays them on a float64
matrix. Forests and trees are walked tree by tree through their fitted ``tree_`` (the same
calls scikit-learn makes, without the overhead); any other estimator gets the transformed
matrix directly.

The compiled scorer is checked against the real pipeline on probe rows when it is built and is
only used when both agree; any other pipeline shape (categorical columns, PCA, unknown steps)
returns ``None`` and the service scores through the pipeline itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("flowsentinel.service")

Step = Callable[[np.ndarray], np.ndarray]


def _numeric_steps(branch: Any) -> list[Step] | None:
    """The replay of a numeric branch (``passthrough`` or a Pipeline of known steps)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import StandardScaler

    from flowsentinel.preparation import CorrelatedFeatureDropper

    if isinstance(branch, str) and branch == "passthrough":
        return []
    if not isinstance(branch, SkPipeline):
        return None
    steps: list[Step] = []
    for _, step in branch.steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        if type(step) is CorrelatedFeatureDropper:
            keep = np.flatnonzero(np.asarray(step.keep_, dtype=bool))
            steps.append(lambda X, keep=keep: X[:, keep])
        elif type(step) is SimpleImputer:
            if step.add_indicator or not (
                isinstance(step.missing_values, float) and np.isnan(step.missing_values)
            ):
                return None
            stats = np.asarray(step.statistics_, dtype=np.float64)
            if not np.isfinite(stats).all():
                return None
            steps.append(lambda X, stats=stats: _impute(X, stats))
        elif type(step) is StandardScaler:
            mean = step.mean_ if step.with_mean else None
            scale = step.scale_ if step.with_std else None
            steps.append(lambda X, mean=mean, scale=scale: _scale(X, mean, scale))
        else:
            return None
    return steps


def _impute(X: np.ndarray, stats: np.ndarray) -> np.ndarray:
    mask = np.isnan(X)
    if mask.any():
        X = X.copy()
        X[mask] = stats[np.nonzero(mask)[1]]
    return X


def _scale(X: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    if mean is not None:
        X = X - mean
    if scale is not None:
        X = X / scale
    return X


def _estimator(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    if getattr(model, "feature_names_in_", None) is not None:
        return None  # fitted on a DataFrame: it wants names, leave it to the pipeline
    if type(model) in (RandomForestClassifier, ExtraTreesClassifier):
        if model.n_outputs_ != 1:
            return None
        trees = [e.tree_ for e in model.estimators_]
        n_classes = int(model.n_classes_)

        def forest(X: np.ndarray) -> np.ndarray:
            X32 = np.ascontiguousarray(X, dtype=np.float32)
            total = np.zeros((X32.shape[0], n_classes))
            for tree in trees:
                total += tree.predict(X32)[:, :n_classes]
            total /= len(trees)
            return total

        return forest
    if type(model) in (DecisionTreeClassifier, ExtraTreeClassifier):
        if model.n_outputs_ != 1:
            return None
        tree, n_classes = model.tree_, int(model.n_classes_)
        return lambda X: tree.predict(np.ascontiguousarray(X, dtype=np.float32))[:, :n_classes]
    if hasattr(model, "predict_proba"):
        return lambda X: np.asarray(model.predict_proba(X), dtype=np.float64)
    return None


@dataclass
class FastScorer:
    """``proba(X)``: the pipeline's ``predict_proba`` for a float64 matrix of its numeric
    columns (in :attr:`columns` order; ±inf and NaN allowed, they become missing)."""

    columns: list[str]
    select: np.ndarray  # indices of the numeric branch's columns in ``columns``
    steps: list[Step]
    estimator: Callable[[np.ndarray], np.ndarray]

    def proba(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float64, copy=True)
        X[~np.isfinite(X)] = np.nan  # as FrameSelector does
        X = X[:, self.select]
        for step in self.steps:
            X = step(X)
        return self.estimator(X)


def compile_pipeline(pipeline: Any, features: list[str], seed: int = 0) -> FastScorer | None:
    """A :class:`FastScorer` equal to ``pipeline.predict_proba``, or ``None`` when the shape is
    not one it knows (then callers use the pipeline)."""
    try:
        scorer = _compile(pipeline, features)
    except Exception as exc:  # an unexpected attribute layout: fall back, never fail start-up
        log.info("fast path unavailable (%s: %s); using the pipeline", type(exc).__name__, exc)
        return None
    if scorer is None:
        return None
    rng = np.random.default_rng(seed)
    n = len(features)
    probe = np.vstack(
        [
            np.zeros((1, n)),
            np.ones((1, n)),
            rng.lognormal(3.0, 4.0, size=(60, n))
            * rng.choice([-1.0, 1.0], size=(60, n), p=[0.1, 0.9]),
            np.where(rng.random((4, n)) < 0.3, np.nan, rng.random((4, n)) * 1e6),
        ]
    )
    try:
        expected = np.asarray(
            pipeline.predict_proba(pd.DataFrame(probe, columns=features)), dtype=np.float64
        )
        got = scorer.proba(probe)
    except Exception as exc:
        log.info("fast path check failed (%s: %s); using the pipeline", type(exc).__name__, exc)
        return None
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-9, atol=1e-12):
        log.warning("fast path disagrees with the pipeline on probe rows; using the pipeline")
        return None
    return scorer


def _compile(pipeline: Any, features: list[str]) -> FastScorer | None:
    from sklearn.compose import ColumnTransformer

    from flowsentinel.models._transformers import FrameSelector

    steps = list(getattr(pipeline, "steps", []))
    if len(steps) < 3:
        return None
    select = steps[0][1]
    if type(select) is not FrameSelector or select.categorical:
        return None
    if list(select.numeric) != list(features):
        return None
    middle, prepare, model = steps[1:-2], steps[-2][1], steps[-1][1]
    for _, step in middle:
        if not (step is None or step == "passthrough" or hasattr(step, "fit_resample")):
            return None  # samplers only act at fit time
    if type(prepare) is not ColumnTransformer:
        return None
    branch: tuple[Any, list[int]] | None = None
    for name, trans, cols in prepare.transformers_:
        idx = _column_indices(cols, features)
        if (isinstance(trans, str) and trans == "drop") or (idx is not None and len(idx) == 0):
            continue
        if branch is not None or idx is None or name == "remainder":
            return None  # a second branch, or a remainder passed through
        branch = (trans, idx)
    if branch is None:
        return None
    num_steps = _numeric_steps(branch[0])
    estimator = _estimator(model)
    if num_steps is None or estimator is None:
        return None
    return FastScorer(list(features), np.asarray(branch[1], dtype=np.intp), num_steps, estimator)


def _column_indices(cols: Any, features: list[str]) -> list[int] | None:
    if isinstance(cols, slice) or callable(cols):
        return None
    values = list(np.atleast_1d(np.asarray(cols, dtype=object))) if len(cols) else []
    if all(isinstance(c, str) for c in values):
        position = {f: i for i, f in enumerate(features)}
        if any(c not in position for c in values):
            return None
        return [position[c] for c in values]
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in values):
        return [int(c) for c in values]
    return None
