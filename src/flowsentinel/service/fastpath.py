"""A numpy-only replay of the usual fitted pipeline, for low-latency scoring.

scikit-learn spends most of a one-row ``predict_proba`` on input checks, pandas and thread-pool
dispatch, not on arithmetic: a 100-tree forest behind the pipeline takes ~10 ms for one flow.
:func:`compile_pipeline` reads the fitted steps of the common numeric pipeline shape
(``FrameSelector`` → sampler → ``ColumnTransformer`` of one numeric branch made of
de-correlation / median imputation / scaling → estimator) and replays them on a float64
matrix. Forests and trees are copied once into flat node arrays and walked by one numba loop
(the same comparisons and the same summation order as scikit-learn, without its per-tree
overhead); any other estimator gets the transformed matrix directly.

The compiled scorer is checked against the real pipeline on probe rows when it is built and is
only used when both agree; any other pipeline shape (categorical columns, PCA, unknown steps)
returns ``None`` and the service scores through the pipeline itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numba as nb
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
    if _identity(branch):
        return []
    if not isinstance(branch, SkPipeline):
        return None
    steps: list[Step] = []
    for _, step in branch.steps:
        if step is None or (isinstance(step, str) and step == "passthrough") or _identity(step):
            continue
        if type(step) is CorrelatedFeatureDropper:
            keep = np.flatnonzero(np.asarray(step.keep_, dtype=bool))
            steps.append(partial(_columns, keep=keep))
        elif type(step) is SimpleImputer:
            if step.add_indicator or not (
                isinstance(step.missing_values, float) and np.isnan(step.missing_values)
            ):
                return None
            stats = np.asarray(step.statistics_, dtype=np.float64)
            if not np.isfinite(stats).all():
                return None
            steps.append(partial(_impute, stats=stats))
        elif type(step) is StandardScaler:
            mean = step.mean_ if step.with_mean else None
            scale = step.scale_ if step.with_std else None
            steps.append(partial(_scale, mean=mean, scale=scale))
        else:
            return None
    return steps


def _identity(step: Any) -> bool:
    """A ``FunctionTransformer`` without a function (what the pipeline puts in place of an
    empty numeric branch)."""
    from sklearn.preprocessing import FunctionTransformer

    return (
        type(step) is FunctionTransformer
        and step.func is None
        and not step.validate
        and step.inverse_func is None
    )


def _columns(X: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return X[:, keep]


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
        return _FlatForest([e.tree_ for e in model.estimators_], int(model.n_classes_))
    if type(model) in (DecisionTreeClassifier, ExtraTreeClassifier):
        if model.n_outputs_ != 1:
            return None
        return _FlatForest([model.tree_], int(model.n_classes_))
    if type(model).__name__ == "XGBClassifier" and type(model).__module__ == "xgboost.sklearn":
        boosted = _XGBTrees.build(model)
        if boosted is not None:
            return boosted
    if hasattr(model, "predict_proba"):
        return lambda X: np.asarray(model.predict_proba(X), dtype=np.float64)
    return None


@nb.njit(cache=True, nogil=True, inline="always")
def _leaf(X, i, node, left, right, feature, threshold, nan_left, strict):  # pragma: no cover
    """The leaf row ``i`` of ``X`` reaches from ``node``: NaN goes the fitted way, otherwise
    left when ``x <= threshold`` (scikit-learn) or ``x < threshold`` (``strict``, XGBoost)."""
    while left[node] != -1:
        x = X[i, feature[node]]
        if np.isnan(x):
            node = left[node] if nan_left[node] else right[node]
        elif x < threshold[node] or (not strict and x == threshold[node]):
            node = left[node]
        else:
            node = right[node]
    return node


@nb.njit(cache=True, nogil=True)
def _forest_proba(X, roots, left, right, feature, threshold, nan_left, value):  # pragma: no cover
    """Mean leaf value over the trees, walked as scikit-learn's ``Tree.apply`` walks one tree
    (float32 features against float64 thresholds, NaN sent the fitted way), summed tree by
    tree in the estimator order as ``predict_proba`` sums them."""
    n, n_classes, n_trees = X.shape[0], value.shape[1], roots.shape[0]
    out = np.zeros((n, n_classes))
    for t in range(n_trees):
        root = roots[t]
        for i in range(n):
            node = _leaf(X, i, root, left, right, feature, threshold, nan_left, False)
            for c in range(n_classes):
                out[i, c] += value[node, c]
    if n_trees > 1:
        out /= n_trees
    return out


class _FlatForest:
    """The fitted trees of a forest in one set of flat node arrays, walked by one compiled
    loop: a single flow costs microseconds instead of one ``Tree.predict`` call (~5 µs of
    Python and checks) per tree."""

    def __init__(self, trees: list[Any], n_classes: int) -> None:
        lefts, rights, features, thresholds, nan_left, values, roots = [], [], [], [], [], [], []
        base = 0
        for tree in trees:
            left = np.asarray(tree.children_left, dtype=np.int64)
            right = np.asarray(tree.children_right, dtype=np.int64)
            leaf = left == -1
            lefts.append(np.where(leaf, -1, left + base))
            rights.append(np.where(leaf, -1, right + base))
            features.append(np.asarray(tree.feature, dtype=np.int64))
            thresholds.append(np.asarray(tree.threshold, dtype=np.float64))
            nan_left.append(np.asarray(tree.missing_go_to_left, dtype=np.bool_))
            values.append(np.asarray(tree.value, dtype=np.float64)[:, 0, :n_classes])
            roots.append(base)
            base += len(left)
        self.n_trees = len(trees)
        self.arrays = (
            np.asarray(roots, dtype=np.int64),
            np.concatenate(lefts),
            np.concatenate(rights),
            np.concatenate(features),
            np.concatenate(thresholds),
            np.concatenate(nan_left),
            np.ascontiguousarray(np.concatenate(values)),
        )

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        workers = _split_workers(X32.shape[0])
        if workers == 1:
            return _forest_proba(X32, *self.arrays)
        # the compiled walk releases the GIL: large batches are cut into row ranges walked on
        # every core (each row's sum is made in the same order, so results do not change)
        parts = np.array_split(X32, workers)
        done = _pool().map(lambda part: _forest_proba(part, *self.arrays), parts)
        return np.concatenate(list(done))


#: batches of at least this many rows are walked on several threads (a 1,000-flow batch of a
#: 100-tree forest: 6.2 ms on one core, 3.5 ms on two; below ~500 rows the hand-off costs more)
_PARALLEL_ROWS = 512
_POOL: list[ThreadPoolExecutor] = []


_CORES = min(os.cpu_count() or 1, 8)


def _split_workers(rows: int) -> int:
    if rows < _PARALLEL_ROWS or _CORES < 2:
        return 1
    return min(_CORES, rows // (_PARALLEL_ROWS // 2))


def _pool() -> ThreadPoolExecutor:
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(_CORES, thread_name_prefix="flowsentinel-forest"))
    return _POOL[0]


@nb.njit(cache=True, nogil=True)
def _xgb_logistic(
    X, roots, left, right, feature, threshold, nan_left, leaf, base
):  # pragma: no cover
    """XGBoost's CPU prediction of a ``binary:logistic`` gbtree, in its float32 arithmetic:
    the base margin plus each tree's leaf in tree order (``x < split`` goes left, a missing
    value the default way), then ``Sigmoid`` as XGBoost writes it."""
    n, n_trees = X.shape[0], roots.shape[0]
    margin = np.full(n, base, dtype=np.float32)
    for t in range(n_trees):
        root = roots[t]
        for i in range(n):
            node = _leaf(X, i, root, left, right, feature, threshold, nan_left, True)
            margin[i] += leaf[node]
    out = np.empty((n, 2), dtype=np.float32)
    one, eps, cap = np.float32(1.0), np.float32(1e-16), np.float32(88.7)
    for i in range(n):
        p = one / (np.exp(min(-margin[i], cap)) + one + eps)
        out[i, 0] = one - p
        out[i, 1] = p
    return out


#: (roots, left, right, feature, threshold, nan_left, leaf): the node arrays of _xgb_logistic
_XGBArrays = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]


class _XGBTrees:
    """A binary ``XGBClassifier`` (gbtree, ``binary:logistic``) as flat node arrays; ``None``
    from :meth:`build` for anything else (the probe check then still compares the result
    with the pipeline to the last bit)."""

    def __init__(self, arrays: _XGBArrays, base: np.float32) -> None:
        self.arrays = arrays
        self.base = base

    @classmethod
    def build(cls, model: Any) -> _XGBTrees | None:
        import json

        if getattr(model, "feature_names_in_", None) is not None:
            return None
        try:
            model.best_iteration  # noqa: B018 - early stopping: predictions stop early
        except AttributeError:
            pass
        else:
            return None
        missing = getattr(model, "missing", np.nan)
        if not (isinstance(missing, float) and np.isnan(missing)):
            return None
        booster = model.get_booster()
        raw = json.loads(bytes(booster.save_raw("json")))
        learner = raw["learner"]
        if learner["objective"]["name"] != "binary:logistic":
            return None
        params = learner["learner_model_param"]
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
            return None
        gb = learner["gradient_booster"]
        if gb.get("name") != "gbtree":
            return None
        value = json.loads(params["base_score"])
        base_score = float(value[0] if isinstance(value, list) else value)
        one = np.float32(1.0)
        base = np.float32(-np.log(one / np.float32(base_score) - one))
        lefts, rights, features, thresholds, nan_left, leaves, roots = [], [], [], [], [], [], []
        offset = 0
        for tree in gb["model"]["trees"]:
            if any(int(v) != 0 for v in tree.get("split_type", [])):
                return None  # categorical splits
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            leaf = left == -1
            cond = np.asarray(tree["split_conditions"], dtype=np.float32)
            lefts.append(np.where(leaf, -1, left + offset))
            rights.append(np.where(leaf, -1, right + offset))
            features.append(np.asarray(tree["split_indices"], dtype=np.int64))
            thresholds.append(cond)
            nan_left.append(np.asarray(tree["default_left"], dtype=np.bool_))
            leaves.append(np.where(leaf, cond, np.float32(0)))
            roots.append(offset)
            offset += len(left)
        if not roots:
            return None
        arrays = (
            np.asarray(roots, dtype=np.int64),
            np.concatenate(lefts),
            np.concatenate(rights),
            np.concatenate(features),
            np.concatenate(thresholds).astype(np.float32),
            np.concatenate(nan_left),
            np.concatenate(leaves).astype(np.float32),
        )
        trees = cls(arrays, base)
        probe = np.random.default_rng(0).lognormal(1.0, 3.0, size=(64, int(model.n_features_in_)))
        probe[::7, ::3] = np.nan
        if not np.array_equal(trees(probe), np.asarray(model.predict_proba(probe), np.float64)):
            return None  # not XGBoost's arithmetic to the last bit: let XGBoost predict
        return trees

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        return np.asarray(_xgb_logistic(X32, *self.arrays, self.base), dtype=np.float64)


class _CategoricalBranch:
    """A fitted categorical branch (one-hot / ordinal encoding, optionally behind an imputer)
    replayed by memo: these encoders map each row on its own, so the branch's output for one
    combination of values is computed once by the fitted transformer itself and reused."""

    _ENCODERS: tuple[str, ...] = ("OneHotEncoder", "OrdinalEncoder", "SimpleImputer")
    MAX_MEMO = 4096

    def __init__(self, transformer: Any, columns: list[str]) -> None:
        self.transformer = transformer
        self.columns = columns
        self.memo: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def build(cls, transformer: Any, columns: list[str]) -> _CategoricalBranch | None:
        from sklearn.pipeline import Pipeline as SkPipeline

        steps = (
            [s for _, s in transformer.steps] if type(transformer) is SkPipeline else [transformer]
        )
        for step in steps:
            if type(step).__name__ not in cls._ENCODERS or not type(step).__module__.startswith(
                "sklearn."
            ):
                return None
            if getattr(step, "sparse_output", False) or getattr(step, "sparse", False) is True:
                return None
        return cls(transformer, columns)

    def categories(self) -> list[list[str]]:
        """Known values of each column (for the probe rows)."""
        from sklearn.pipeline import Pipeline as SkPipeline

        t = self.transformer
        encoder = t.steps[-1][1] if type(t) is SkPipeline else t
        known = getattr(encoder, "categories_", None)
        if known is None:
            return [["-"] for _ in self.columns]
        return [[str(v) for v in cats if isinstance(v, str)] or ["-"] for cats in known]

    def __call__(self, values: dict[str, list[Any]], n: int) -> np.ndarray:
        rows = list(zip(*(values[c] for c in self.columns), strict=True)) if n else []
        missing = list(dict.fromkeys(r for r in rows if r not in self.memo))
        if missing:
            frame = pd.DataFrame(missing, columns=self.columns, dtype=object)
            out = np.asarray(self.transformer.transform(frame), dtype=np.float64)
            new = dict(zip(missing, out, strict=True))
            if len(self.memo) + len(new) <= self.MAX_MEMO:
                self.memo.update(new)
        else:
            new = {}
        width = next(iter(self.memo.values()), next(iter(new.values()), None))
        if not rows or width is None:
            return np.empty((n, 0 if width is None else len(width)))
        return np.vstack([self.memo[r] if r in self.memo else new[r] for r in rows])


@dataclass
class FastScorer:
    """``proba(X, categorical)``: the pipeline's ``predict_proba`` for a float64 matrix of its
    numeric columns (in :attr:`columns` order; ±inf and NaN allowed, they become missing) and
    the text values of its categorical columns (``{name: [value per row]}``)."""

    columns: list[str]
    select: np.ndarray  # indices of the numeric branch's columns in ``columns``
    steps: list[Step]
    estimator: Callable[[np.ndarray], np.ndarray]
    # the ColumnTransformer's outputs in order: None for the numeric branch, else a
    # categorical branch
    blocks: list[_CategoricalBranch | None] | None = None
    categorical: list[str] | None = None
    # derived columns (``models.derived``) computed from ``columns`` before ``select``
    derive: Step | None = None

    def proba(self, X: np.ndarray, categorical: dict[str, list[Any]] | None = None) -> np.ndarray:
        X = np.array(X, dtype=np.float64, copy=True)
        X[~np.isfinite(X)] = np.nan  # as FrameSelector does
        if self.derive is not None:
            X = self.derive(X)
        X = X[:, self.select]
        for step in self.steps:
            X = step(X)
        if self.blocks:
            parts = [X if b is None else b(categorical or {}, X.shape[0]) for b in self.blocks]
            X = parts[0] if len(parts) == 1 else np.hstack(parts)
        return self.estimator(X)


def compile_pipeline(
    pipeline: Any, features: list[str], categorical: list[str] | None = None, seed: int = 0
) -> FastScorer | None:
    """A :class:`FastScorer` equal to ``pipeline.predict_proba``, or ``None`` when the shape is
    not one it knows (then callers use the pipeline)."""
    categorical = [f for f in features if f in set(categorical or [])]
    numeric = [f for f in features if f not in set(categorical)]
    try:
        scorer = _compile(pipeline, numeric, categorical)
    except Exception as exc:  # an unexpected attribute layout: fall back, never fail start-up
        log.info("fast path unavailable (%s: %s); using the pipeline", type(exc).__name__, exc)
        return None
    if scorer is None:
        return None
    rng = np.random.default_rng(seed)
    n = len(numeric)
    probe = np.vstack(
        [
            np.zeros((1, n)),
            np.ones((1, n)),
            rng.lognormal(3.0, 4.0, size=(60, n))
            * rng.choice([-1.0, 1.0], size=(60, n), p=[0.1, 0.9]),
            np.where(rng.random((4, n)) < 0.3, np.nan, rng.random((4, n)) * 1e6),
        ]
    )
    cats: dict[str, list[Any]] = {}
    for block in scorer.blocks or []:
        if block is not None:
            for column, known in zip(block.columns, block.categories(), strict=True):
                cats[column] = [known[i % len(known)] for i in range(len(probe))]
    frame = pd.DataFrame(probe, columns=numeric)
    for column in categorical:
        frame[column] = pd.Series(cats.get(column, ["-"] * len(probe)), dtype=object)
    try:
        expected = np.asarray(pipeline.predict_proba(frame[features]), dtype=np.float64)
        got = scorer.proba(probe, cats)
    except Exception as exc:
        log.info("fast path check failed (%s: %s); using the pipeline", type(exc).__name__, exc)
        return None
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-9, atol=1e-12):
        log.warning("fast path disagrees with the pipeline on probe rows; using the pipeline")
        return None
    for block in scorer.blocks or []:
        if block is not None:
            block.memo.clear()  # probe rows are not traffic
    return scorer


def _compile(pipeline: Any, numeric: list[str], categorical: list[str]) -> FastScorer | None:  # noqa: C901
    from sklearn.compose import ColumnTransformer

    from flowsentinel.models._transformers import FrameSelector
    from flowsentinel.models.derived import DerivedFeatures

    steps = list(getattr(pipeline, "steps", []))
    if len(steps) < 3:
        return None
    select = steps[0][1]
    if type(select) is not FrameSelector:
        return None
    if list(select.numeric) != numeric or list(select.categorical or []) != categorical:
        return None
    middle, prepare, model = steps[1:-2], steps[-2][1], steps[-1][1]
    derive: DerivedFeatures | None = None
    for _, step in middle:
        if type(step) is DerivedFeatures and derive is None and list(step.numeric) == numeric:
            derive = step
            continue
        if not (step is None or step == "passthrough" or hasattr(step, "fit_resample")):
            return None  # samplers only act at fit time
    inputs = derive.output_numeric() if derive is not None else numeric
    if type(prepare) is not ColumnTransformer or getattr(prepare, "sparse_output_", False):
        return None
    branch: tuple[Any, list[int]] | None = None
    blocks: list[_CategoricalBranch | None] = []
    for name, trans, cols in prepare.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        idx = _column_indices(cols, inputs)
        if idx is not None and len(idx) == 0:
            continue
        if idx is None and name != "remainder":
            names = _column_names(cols)
            if names and set(names) <= set(categorical):
                cat = _CategoricalBranch.build(trans, names)
                if cat is None:
                    return None
                blocks.append(cat)
                continue
        if branch is not None or idx is None or name == "remainder":
            return None  # a second numeric branch, or a remainder passed through
        branch = (trans, idx)
        blocks.append(None)
    if branch is None:
        return None
    num_steps = _numeric_steps(branch[0])
    estimator = _estimator(model)
    if num_steps is None or estimator is None:
        return None
    return FastScorer(
        list(numeric),
        np.asarray(branch[1], dtype=np.intp),
        num_steps,
        estimator,
        blocks if categorical else None,
        list(categorical),
        derive.transform_matrix if derive is not None else None,
    )


def _column_names(cols: Any) -> list[str] | None:
    if isinstance(cols, slice) or callable(cols):
        return None
    values = list(np.atleast_1d(np.asarray(cols, dtype=object))) if len(cols) else []
    return [str(c) for c in values] if all(isinstance(c, str) for c in values) else None


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
