"""The compiled form of a fitted zoo pipeline: what every prediction goes through.

scikit-learn spends most of a one-row ``predict_proba`` on input checks, pandas and thread-pool
dispatch, not on arithmetic: a 100-tree forest behind the pipeline takes ~10 ms for one flow.
:func:`compile_pipeline` reads the fitted steps of the zoo's pipeline shape (``FrameSelector``
→ sampler → ``DerivedFeatures`` → ``ColumnTransformer`` of one numeric branch made of
de-correlation / median imputation / scaling and one-hot categorical columns → ``PCA`` →
estimator, see :mod:`flowsentinel.models.zoo`) and replays them on a float64 matrix of the
numeric columns and the text of the categorical ones:

- numeric steps (de-correlation, imputation, scaling) and derived features: numpy, the same
  arithmetic as the fitted steps;
- categorical branch: the fitted encoder itself, once per combination of values (memo);
- ``PCA``: its own ``transform`` on the matrix;
- random forests, extra trees, decision trees and binary XGBoost: copied once into flat node
  arrays walked by one numba loop (the same comparisons and summation order as the library,
  without its per-tree overhead);
- logistic regression, k-NN, histogram gradient boosting, LightGBM and multi-class XGBoost:
  the fitted estimator's own ``predict_proba`` on the transformed matrix;
- a calibrated estimator (``CalibratedClassifierCV``, isotonic or sigmoid, ``train
  --calibrate``): each fold's estimator compiled as above (its undersampler skipped), its
  response (decision function where the estimator has one, else P(class) and, binary, P(class
  1)) mapped by the fold's calibrators — isotonic: linear interpolation over the calibrator's
  ``X_thresholds_``/``y_thresholds_`` (values beyond them clipped, as the calibrator does);
  sigmoid: ``expit(-(a·f + b))`` — then scikit-learn's normalisation (binary: P(0) = 1 − P(1);
  multiclass: divided by the row sum, uniform where that is 0; values in (1, 1 + 1e-5] set to
  1), and the folds' probabilities averaged in fold order.

Every step the pipeline runs at prediction time is replayed or called, never skipped; a step
of another kind raises :class:`CompileError` (a model that cannot be compiled cannot be
loaded: :meth:`~flowsentinel.models.detector.Detector.load` compiles it). The compiled form is
checked against the pipeline on probe rows when it is built; ``tests/models/test_compiled.py``
checks every model kind of the zoo, NaN, ±inf and unknown categories included.

Why this and not a maintained compiler (onnxruntime through skl2onnx/onnxmltools, treelite),
measured on ``bench_service.py``'s random forest (100 trees, 9,928 nodes, 32 features; 12,240
generated flows; onnxruntime 1.32, skl2onnx 1.20, one thread): onnxruntime's probabilities
differ from ``predict_proba`` by more than 1e-9 on 6,963 of the 12,240 flows (at most 6.8e-7:
its trees sum in float32), while the numba walk is equal to the last bit; one flow costs 25 µs
in onnxruntime against 16.5 µs here, 1,000 flows 3.8 ms against 5.7 ms (within the noise of a
loaded 2-core machine), 10,000 flows 42 ms against 43 ms. ONNX would also need custom
converters for the zoo's own steps (``FrameSelector``, ``DerivedFeatures``,
``CorrelatedFeatureDropper``). So the replay stays, behind the ``Detector``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

from flowsentinel.core.errors import ModelError

Step = Callable[[np.ndarray], np.ndarray]


class CompileError(ModelError):
    """A fitted pipeline with a step the compiled form does not know (its message names it)."""


def _numeric_steps(branch: Any) -> tuple[list[Step], list[str]]:
    """The replay of a numeric branch (``passthrough`` or a Pipeline of known steps) and the
    names of its steps."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import StandardScaler

    from flowsentinel.preparation import CorrelatedFeatureDropper

    if (isinstance(branch, str) and branch == "passthrough") or _identity(branch):
        return [], []
    if not isinstance(branch, SkPipeline):
        raise CompileError(f"numeric branch {_kind(branch)} is not a Pipeline of known steps")
    steps: list[Step] = []
    names: list[str] = []
    for _, step in branch.steps:
        if step is None or (isinstance(step, str) and step == "passthrough") or _identity(step):
            continue
        if type(step) is CorrelatedFeatureDropper:
            keep = np.flatnonzero(np.asarray(step.keep_, dtype=bool))
            steps.append(partial(_take, keep=keep))
            names.append("decorrelate")
        elif type(step) is SimpleImputer:
            if step.add_indicator or not (
                isinstance(step.missing_values, float) and np.isnan(step.missing_values)
            ):
                raise CompileError("SimpleImputer with indicators or non-NaN missing values")
            stats = np.asarray(step.statistics_, dtype=np.float64)
            if not np.isfinite(stats).all():
                raise CompileError("SimpleImputer with a non-finite statistic")
            steps.append(partial(_impute, stats=stats))
            names.append("impute")
        elif type(step) is StandardScaler:
            mean = step.mean_ if step.with_mean else None
            scale = step.scale_ if step.with_std else None
            steps.append(partial(_scale, mean=mean, scale=scale))
            names.append("scale")
        else:
            raise CompileError(f"unknown numeric step {_kind(step)}")
    return steps, names


def _kind(step: Any) -> str:
    return repr(step) if isinstance(step, str) else f"{type(step).__module__}.{type(step).__name__}"


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


def _take(X: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return X[:, keep]


def _transform(step: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(step.transform(X), dtype=np.float64)


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


def _after_steps(steps: list[tuple[str, Any]]) -> tuple[list[Step], list[str]]:
    """The steps between the ``ColumnTransformer`` and the estimator (the second seed's PCA):
    their own ``transform`` on the matrix."""
    from sklearn.decomposition import PCA

    out: list[Step] = []
    names: list[str] = []
    for _, step in steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        if type(step) is not PCA:
            raise CompileError(f"unknown step {_kind(step)} after the column transformer")
        _unnamed(step)
        out.append(partial(_transform, step))
        names.append("pca (PCA.transform)")
    return out, names


def _unnamed(step: Any) -> None:
    if getattr(step, "feature_names_in_", None) is not None:
        raise CompileError(
            f"{_kind(step)} was fitted on named columns (the compiled form gives it a matrix)"
        )


#: estimators scored by their own ``predict_proba`` on the transformed matrix (exactly what
#: the pipeline calls): (module prefix, class name)
_OWN_PROBA: tuple[tuple[str, str], ...] = (
    ("sklearn.linear_model", "LogisticRegression"),
    ("sklearn.neighbors", "KNeighborsClassifier"),
    ("sklearn.ensemble", "HistGradientBoostingClassifier"),
    ("lightgbm", "LGBMClassifier"),
    ("xgboost", "XGBClassifier"),
)


def _estimator(model: Any) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The compiled estimator and how it is computed."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    if type(model) is CalibratedClassifierCV:
        return _CalibratedEnsemble.build(model)
    _unnamed(model)
    if type(model) in (RandomForestClassifier, ExtraTreesClassifier):
        if model.n_outputs_ != 1:
            raise CompileError("multi-output forest")
        trees = [e.tree_ for e in model.estimators_]
        return _FlatForest(trees, int(model.n_classes_)), f"{type(model).__name__} (numba)"
    if type(model) in (DecisionTreeClassifier, ExtraTreeClassifier):
        if model.n_outputs_ != 1:
            raise CompileError("multi-output tree")
        return _FlatForest([model.tree_], int(model.n_classes_)), f"{type(model).__name__} (numba)"
    if type(model).__name__ == "XGBClassifier" and type(model).__module__ == "xgboost.sklearn":
        boosted = _XGBTrees.build(model)
        if boosted is not None:
            return boosted, "XGBClassifier (numba)"
    for module, name in _OWN_PROBA:
        if type(model).__name__ == name and type(model).__module__.startswith(module):
            return (
                lambda X: np.asarray(model.predict_proba(X), dtype=np.float64),
                f"{name} (own predict_proba)",
            )
    raise CompileError(f"unknown estimator {_kind(model)}")


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
        workers = split_workers(X32.shape[0])
        if workers == 1:
            return _forest_proba(X32, *self.arrays)
        # the compiled walk releases the GIL: large batches are cut into row ranges walked on
        # every core (each row's sum is made in the same order, so results do not change)
        parts = np.array_split(X32, workers)
        done = row_pool().map(lambda part: _forest_proba(part, *self.arrays), parts)
        return np.concatenate(list(done))


#: batches of at least this many rows are walked on several threads (a 1,000-flow batch of a
#: 100-tree forest: 6.2 ms on one core, 3.5 ms on two; below ~500 rows the hand-off costs more)
_PARALLEL_ROWS = 512
_POOL: list[ThreadPoolExecutor] = []


_CORES = min(os.cpu_count() or 1, 8)


def split_workers(rows: int) -> int:
    if rows < _PARALLEL_ROWS or _CORES < 2:
        return 1
    return min(_CORES, rows // (_PARALLEL_ROWS // 2))


def row_pool() -> ThreadPoolExecutor:
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


class _XGBTrees:
    """A binary ``XGBClassifier`` (gbtree, ``binary:logistic``) as flat node arrays; ``None``
    from :meth:`build` for anything else, or when the replay does not give XGBoost's own
    probabilities to the last bit on probe rows (then XGBoost's ``predict_proba`` is used)."""

    def __init__(self, arrays: tuple[np.ndarray, ...], base: np.float32) -> None:
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
        proba = _xgb_logistic(X32, *self.arrays, self.base)  # type: ignore[call-arg]  # numba dispatcher: its signature is the kernel's, unknown to mypy
        return np.asarray(proba, dtype=np.float64)


class _CalibratedFold:
    """One fold of a ``CalibratedClassifierCV`` (``_CalibratedClassifier.predict_proba``): the
    fold's estimator response, each column mapped by its calibrator into its class column."""

    def __init__(self, fold: Any, n_classes: int) -> None:
        from sklearn.isotonic import IsotonicRegression

        model = _fold_estimator(fold.estimator)
        self.response, self.how = _response(model)
        #: XGBoost answers in float32; the calibrators see (and the isotonic one returns) it
        self.float32 = type(model).__name__ == "XGBClassifier"
        self.n_classes = n_classes
        self.columns = np.searchsorted(np.asarray(fold.classes), np.asarray(model.classes_))
        if n_classes == 2:
            self.columns = self.columns + 1  # binary: one response, that of class 1
        self.calibrators: list[Callable[[np.ndarray], np.ndarray]] = []
        for cal in fold.calibrators:
            if type(cal) is IsotonicRegression and cal.out_of_bounds == "clip":
                self.calibrators.append(partial(_isotonic, cal=cal))
            elif type(cal).__name__ == "_SigmoidCalibration":
                self.calibrators.append(partial(_sigmoid, a=cal.a_, b=cal.b_))
            else:
                raise CompileError(f"unknown calibrator {_kind(cal)}")

    def __call__(self, X: np.ndarray) -> np.ndarray:
        predictions = self.response(X)
        if self.float32:
            predictions = predictions.astype(np.float32)
        if predictions.ndim == 1:
            predictions = predictions.reshape(-1, 1)
        proba = np.zeros((X.shape[0], self.n_classes))
        for column, values, calibrate in zip(
            self.columns, predictions.T, self.calibrators, strict=False
        ):
            proba[:, column] = calibrate(values)
        if self.n_classes == 2:
            proba[:, 0] = 1.0 - proba[:, 1]
        else:
            total = np.sum(proba, axis=1)[:, np.newaxis]
            uniform = np.full_like(proba, 1 / self.n_classes)
            proba = np.divide(proba, total, out=uniform, where=total != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba


def _fold_estimator(inner: Any) -> Any:
    """The estimator of a calibration fold: itself, or the last step of a pipeline whose other
    steps act at fit time only (the undersampler)."""
    steps = getattr(inner, "steps", None)
    if steps is None:
        return inner
    for _, step in steps[:-1]:
        if not (step is None or step == "passthrough" or hasattr(step, "fit_resample")):
            raise CompileError(f"unknown step {_kind(step)} in a calibrated estimator")
    return steps[-1][1]


def _response(model: Any) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """What the calibrators read (scikit-learn's ``_get_response_values`` with
    ``["decision_function", "predict_proba"]``): the decision function when the estimator has
    one (its own), else its probabilities (compiled), of class 1 only when binary."""
    if hasattr(model, "decision_function"):
        _unnamed(model)
        if not any(
            type(model).__name__ == name and type(model).__module__.startswith(module)
            for module, name in _OWN_PROBA
        ):
            raise CompileError(f"unknown estimator {_kind(model)} in a calibrated estimator")
        return (
            lambda X: np.asarray(model.decision_function(X), dtype=np.float64),
            f"{type(model).__name__} (own decision_function)",
        )
    proba, how = _estimator(model)
    if len(model.classes_) == 2:
        return (lambda X: proba(X)[:, 1]), how
    return proba, how


def _isotonic(values: np.ndarray, cal: Any) -> np.ndarray:
    """``IsotonicRegression.predict`` with ``out_of_bounds="clip"``: values clipped to the
    fitted range, then linear interpolation over ``X_thresholds_``/``y_thresholds_``, in their
    dtype and written as scipy's ``interp1d`` computes it (the calibrator's own function).
    ``np.interp`` gives the same line but computes in float64: on XGBoost's float32 responses
    (float32 thresholds) it differs from the calibrator by up to 1e-8."""
    xp, fp = cal.X_thresholds_, cal.y_thresholds_
    x = np.clip(np.asarray(values, dtype=xp.dtype), cal.X_min_, cal.X_max_)
    if len(fp) == 1:
        return np.asarray(fp.repeat(x.shape), dtype=x.dtype)
    hi = np.clip(np.searchsorted(xp, x), 1, len(xp) - 1)
    lo = hi - 1
    slope = (fp[hi] - fp[lo]) / (xp[hi] - xp[lo])
    return np.asarray(slope * (x - xp[lo]) + fp[lo]).astype(x.dtype)


def _sigmoid(values: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """``_SigmoidCalibration.predict``: Platt's 1 / (1 + exp(a·f + b)), written as it is."""
    from scipy.special import expit  # type: ignore[import-untyped]  # scipy has no stubs here

    return np.asarray(expit(-(a * values + b)))


class _CalibratedEnsemble:
    """A fitted ``CalibratedClassifierCV``: the mean of its folds' calibrated probabilities."""

    def __init__(self, folds: list[_CalibratedFold]) -> None:
        self.folds = folds

    @classmethod
    def build(cls, model: Any) -> tuple[_CalibratedEnsemble, str]:
        if model.method not in ("isotonic", "sigmoid"):
            raise CompileError(f"CalibratedClassifierCV with method {model.method!r}")
        n_classes = len(model.classes_)
        folds = [_CalibratedFold(f, n_classes) for f in model.calibrated_classifiers_]
        if not folds:
            raise CompileError("CalibratedClassifierCV without calibrated folds")
        how = f"CalibratedClassifierCV ({model.method}, {len(folds)} folds of {folds[0].how})"
        return cls(folds), how

    def __call__(self, X: np.ndarray) -> np.ndarray:
        total = self.folds[0](X)
        for fold in self.folds[1:]:
            total += fold(X)
        total /= len(self.folds)
        return total


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
    def build(cls, transformer: Any, columns: list[str]) -> _CategoricalBranch:
        from sklearn.pipeline import Pipeline as SkPipeline

        steps = (
            [s for _, s in transformer.steps] if type(transformer) is SkPipeline else [transformer]
        )
        for step in steps:
            if type(step).__name__ not in cls._ENCODERS or not type(step).__module__.startswith(
                "sklearn."
            ):
                raise CompileError(f"unknown categorical step {_kind(step)}")
            if getattr(step, "sparse_output", False) or getattr(step, "sparse", False) is True:
                raise CompileError(f"sparse categorical step {_kind(step)}")
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
        try:
            columns = [values[c] for c in self.columns]
        except KeyError as exc:
            raise ValueError(f"missing categorical column {exc.args[0]}") from None
        rows = list(zip(*columns, strict=True))
        if len(rows) != n:
            raise ValueError(f"{len(rows)} categorical rows for {n} numeric rows")
        if n == 1 and rows[0] in self.memo:  # one flow seen before: the service's usual call
            return self.memo[rows[0]].reshape(1, -1)
        index: dict[tuple[str, ...], int] = {}
        codes = np.fromiter((index.setdefault(r, len(index)) for r in rows), np.intp, count=n)
        keys = list(index)
        missing = [k for k in keys if k not in self.memo]
        new: dict[tuple[str, ...], np.ndarray] = {}
        if missing:
            frame = pd.DataFrame(missing, columns=self.columns, dtype=object)
            out = np.asarray(self.transformer.transform(frame), dtype=np.float64)
            new = dict(zip(missing, out, strict=True))
            if len(self.memo) + len(new) <= self.MAX_MEMO:
                self.memo.update(new)
        if not keys:
            width = len(next(iter(self.memo.values()), ()))
            return np.empty((n, width))
        table = np.vstack([new[k] if k in new else self.memo[k] for k in keys])
        return table[codes]


@dataclass
class CompiledPipeline:
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
    # steps after the ColumnTransformer (PCA)
    after: list[Step] = field(default_factory=list)
    #: how each step is computed, in order (``describe``)
    replay: list[str] = field(default_factory=list)

    def proba(self, X: np.ndarray, categorical: dict[str, list[Any]] | None = None) -> np.ndarray:
        X = np.array(X, dtype=np.float64, copy=True)
        if X.ndim != 2 or X.shape[1] != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} numeric columns, got {X.shape[1:]}")
        X[~np.isfinite(X)] = np.nan  # as FrameSelector does
        if self.derive is not None:
            X = self.derive(X)
        X = X[:, self.select]
        for step in self.steps:
            X = step(X)
        if self.blocks:
            parts = [X if b is None else b(categorical or {}, X.shape[0]) for b in self.blocks]
            X = parts[0] if len(parts) == 1 else np.hstack(parts)
        for step in self.after:
            X = step(X)
        return self.estimator(X)

    def clear(self) -> None:
        """Forget the categorical memo (probe rows are not traffic)."""
        for block in self.blocks or []:
            if block is not None:
                block.memo.clear()


def compile_pipeline(
    pipeline: Any, features: list[str], categorical: list[str] | None = None, seed: int = 0
) -> CompiledPipeline:
    """The :class:`CompiledPipeline` equal to ``pipeline.predict_proba``; :class:`CompileError`
    naming the step when the pipeline has a step it does not know or disagrees on probe rows."""
    categorical = [f for f in features if f in set(categorical or [])]
    numeric = [f for f in features if f not in set(categorical)]
    try:
        compiled = _compile(pipeline, numeric, categorical)
    except CompileError:
        raise
    except Exception as exc:  # an unexpected attribute layout
        raise CompileError(f"cannot compile the pipeline: {type(exc).__name__}: {exc}") from exc
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
    for block in compiled.blocks or []:
        if block is not None:
            for column, known in zip(block.columns, block.categories(), strict=True):
                cats[column] = [known[i % len(known)] for i in range(len(probe))]
    frame = pd.DataFrame(probe, columns=numeric)
    for column in categorical:
        frame[column] = pd.Series(cats.get(column, ["-"] * len(probe)), dtype=object)
    try:
        expected = np.asarray(pipeline.predict_proba(frame[features]), dtype=np.float64)
        got = compiled.proba(probe, cats)
    except Exception as exc:
        raise CompileError(f"probe rows failed: {type(exc).__name__}: {exc}") from exc
    finally:
        compiled.clear()
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-9, atol=1e-12):
        worst = np.abs(got - expected).max() if got.shape == expected.shape else got.shape
        raise CompileError(f"the compiled form disagrees with the pipeline on probe rows ({worst})")
    return compiled


def _compile(pipeline: Any, numeric: list[str], categorical: list[str]) -> CompiledPipeline:
    steps, at = _zoo_steps(pipeline, numeric, categorical)
    replay = ["select"]
    derive = _derive_step(steps[1:at], numeric)
    if derive is not None:
        replay.append("derive")
    inputs = derive.output_numeric() if derive is not None else numeric
    branch, blocks = _branches(steps[at][1], inputs, categorical)
    num_steps, num_names = _numeric_steps(branch[0])
    replay += num_names
    if categorical:
        replay.append("categorical (fitted encoder, memo)")
    after, after_names = _after_steps(steps[at + 1 : -1])
    replay += after_names
    estimator, how = _estimator(steps[-1][1])
    replay.append(how)
    return CompiledPipeline(
        list(numeric),
        np.asarray(branch[1], dtype=np.intp),
        num_steps,
        estimator,
        blocks if categorical else None,
        list(categorical),
        derive.transform_matrix if derive is not None else None,
        after,
        replay,
    )


def _zoo_steps(
    pipeline: Any, numeric: list[str], categorical: list[str]
) -> tuple[list[tuple[str, Any]], int]:
    """The pipeline's steps and the position of its ColumnTransformer, checked to be the zoo's
    shape: FrameSelector of the model's features … ColumnTransformer … estimator."""
    from sklearn.compose import ColumnTransformer

    from flowsentinel.models._transformers import FrameSelector

    steps = list(getattr(pipeline, "steps", []))
    if len(steps) < 3:
        raise CompileError(f"{_kind(pipeline)} is not a zoo pipeline (selector … estimator)")
    select = steps[0][1]
    if type(select) is not FrameSelector:
        raise CompileError(f"the first step is {_kind(select)}, not FrameSelector")
    if list(select.numeric) != numeric or list(select.categorical or []) != categorical:
        raise CompileError("the pipeline's columns are not the model's features")
    at = next((i for i, (_, s) in enumerate(steps) if type(s) is ColumnTransformer), None)
    if at is None:
        raise CompileError("the pipeline has no ColumnTransformer")
    if at == len(steps) - 1:
        raise CompileError("the pipeline ends with its ColumnTransformer")
    return steps, at


def _derive_step(before: list[tuple[str, Any]], numeric: list[str]) -> Any:
    """The derived-feature step among the steps before the ColumnTransformer (samplers only act
    at fit time and are skipped), or None."""
    from flowsentinel.models.derived import DerivedFeatures

    derive: DerivedFeatures | None = None
    for _, step in before:
        if type(step) is DerivedFeatures and derive is None and list(step.numeric) == numeric:
            derive = step
            continue
        if not (step is None or step == "passthrough" or hasattr(step, "fit_resample")):
            raise CompileError(f"unknown step {_kind(step)} before the column transformer")
    return derive


def _branches(
    prepare: Any, inputs: list[str], categorical: list[str]
) -> tuple[tuple[Any, list[int]], list[_CategoricalBranch | None]]:
    """The one numeric branch of the ColumnTransformer (transformer, input positions) and, in
    output order, a replay per categorical branch (None stands for the numeric one)."""
    if getattr(prepare, "sparse_output_", False):
        raise CompileError("sparse ColumnTransformer output")
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
                blocks.append(_CategoricalBranch.build(trans, names))
                continue
        if branch is not None or idx is None or name == "remainder":
            raise CompileError(f"column branch {name!r}: a second numeric branch or a remainder")
        branch = (trans, idx)
        blocks.append(None)
    if branch is None:
        raise CompileError("the ColumnTransformer has no numeric branch")
    return branch, blocks


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
