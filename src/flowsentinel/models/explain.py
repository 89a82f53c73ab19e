"""Reasons per verdict: which inputs pushed a flow towards the class it was given, by how much,
and where their values lie among the training rows of each class.

Attributions are exact decompositions of the model's own output, computed on the fitted
pipeline's estimator input (after imputation, scaling, one-hot encoding, derived columns) and
summed back onto the model's input features (one-hot columns onto their categorical column):

- XGBoost and LightGBM: the boosters' own TreeSHAP (``pred_contribs`` / ``pred_contrib``), in
  margin (log-odds) units; they sum to the margin.
- scikit-learn forests and trees: the decision-path decomposition (each split's change of the
  class probability credited to the split's feature), averaged over the trees; it sums to the
  probability minus the training prior. A feature on which no tree splits gets 0. Histogram
  gradient boosting: the same over its trees, in margin units.
- logistic regression: coefficient × standardised value (sums to the margin minus the
  intercept).
- k-nearest neighbours: the per-feature terms of the squared distance to the centroid of the
  flow's ``k`` nearest training rows of other classes minus that to its ``k`` nearest rows of the
  verdict's class (positive: the feature brings the flow closer to the verdict's class); the
  neighbours themselves are listed too.
- calibrated models: the mean of their calibrated estimators' attributions.
- seed-b's PCA: each component's attribution is shared among the inputs by their terms in the
  component (``loading × centred value``), which keeps the sum.

Contributions are signed towards the verdict: positive values pushed the flow towards the
class it was given (for a binary model judged benign, towards benign).

Examples
--------
>>> from flowsentinel.models.explain import reason_text
>>> reason_text("Flow IAT Min", 3.0, {"BENIGN": 0.5, "DoS": 60.0}, "DoS")
'Flow IAT Min = 3: lower than 99.5 % of BENIGN training flows, higher than 60 % of DoS'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

from flowsentinel.core.errors import ModelError
from flowsentinel.models.compiled import row_pool, split_workers
from flowsentinel.models.profile import TrainingProfile


class ExplainError(ModelError):
    """A model whose verdicts cannot be explained (an estimator without an attribution)."""


@dataclass
class Attributions:
    """Per-flow contributions of each input towards the flow's verdict class."""

    names: list[str]  # the inputs (model features, then derived columns)
    values: np.ndarray  # (flows, inputs)
    units: str  # "margin" or "probability" or "squared distance"
    neighbours: list[list[dict[str, Any]]] | None = None  # k-NN only
    derived: dict[str, np.ndarray] = field(default_factory=dict)  # derived columns' values


# --- tree walks -----------------------------------------------------------------------------
@nb.njit(cache=True, nogil=True)
def _path_contributions(  # pragma: no cover
    X: np.ndarray,
    target: np.ndarray,
    roots: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    nan_left: np.ndarray,
    value: np.ndarray,
    strict: bool,
) -> np.ndarray:
    """Sum over trees of each split's change of the target class's value, credited to the
    split's feature (NaN follows the fitted way; ``strict``: ``x < t`` goes left)."""
    n = X.shape[0]
    out = np.zeros((n, X.shape[1]))
    for t in range(roots.shape[0]):
        for i in range(n):
            node = roots[t]
            c = target[i]
            while left[node] != -1:
                f = feature[node]
                x = X[i, f]
                if np.isnan(x):
                    child = left[node] if nan_left[node] else right[node]
                elif x < threshold[node] or (not strict and x == threshold[node]):
                    child = left[node]
                else:
                    child = right[node]
                out[i, f] += value[child, c] - value[node, c]
                node = child
    return out


_Flat = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _walk(X: np.ndarray, target: np.ndarray, flat: _Flat, strict: bool = False) -> np.ndarray:
    """:func:`_path_contributions` of every row, large batches cut into row ranges walked on
    every core as the compiled forests are (the walk releases the GIL)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    target = np.ascontiguousarray(target, dtype=np.int64)
    workers = split_workers(len(X))
    if workers == 1:
        return np.asarray(_path_contributions(X, target, *flat, strict))
    cuts = np.array_split(np.arange(len(X)), workers)
    done = row_pool().map(
        lambda rows: _path_contributions(X[rows], target[rows], *flat, strict), cuts
    )
    return np.concatenate(list(done))


#: one tree's nodes: left and right child (local indices, -1 at leaves), feature, threshold,
#: NaN goes left, value per class
_Tree = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _join(trees: Iterable[_Tree]) -> _Flat:
    """Trees as one set of flat node arrays (children offset to the joined numbering), the
    form :func:`_path_contributions` walks."""
    roots: list[int] = []
    columns: list[list[np.ndarray]] = [[] for _ in range(6)]
    base = 0
    for left, right, *rest in trees:
        roots.append(base)
        columns[0].append(np.where(left < 0, -1, left + base))
        columns[1].append(np.where(right < 0, -1, right + base))
        for column, values in zip(columns[2:], rest, strict=True):
            column.append(values)
        base += len(left)
    left_, right_, feature, threshold, nan_left, value = (
        np.ascontiguousarray(np.concatenate(c)) for c in columns
    )
    return np.asarray(roots, np.int64), left_, right_, feature, threshold, nan_left, value


def _sklearn_tree(tree: Any) -> _Tree:
    """A scikit-learn fitted tree with per-node class probabilities."""
    left = np.asarray(tree.children_left, dtype=np.int64)
    value = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
    total = value.sum(axis=1, keepdims=True)
    return (
        left,
        np.asarray(tree.children_right, dtype=np.int64),
        np.where(left == -1, 0, np.asarray(tree.feature, dtype=np.int64)),
        np.asarray(tree.threshold, dtype=np.float64),
        np.asarray(tree.missing_go_to_left, dtype=np.bool_),
        value / np.where(total > 0, total, 1.0),
    )


def _sklearn_trees(model: Any, Xt: np.ndarray, target: np.ndarray) -> np.ndarray:
    trees = [model.tree_] if hasattr(model, "tree_") else [e.tree_ for e in model.estimators_]
    X32 = np.ascontiguousarray(Xt, dtype=np.float32).astype(np.float64)
    return _walk(X32, target, _join(_sklearn_tree(t) for t in trees)) / len(trees)


def _hgb(model: Any, Xt: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Decision paths of a histogram gradient boosting model, in margin units: leaf values
    carry the learning rate, inner node values do not (scikit-learn applies it to leaves only)."""
    per_iteration = model._predictors
    n_classes = len(per_iteration[0])
    lr = float(model.learning_rate)

    def tree(k: int, nodes: np.ndarray) -> _Tree:
        leaf = nodes["is_leaf"].astype(bool)
        value = np.zeros((len(nodes), n_classes))
        value[:, k] = np.where(leaf, nodes["value"], nodes["value"] * lr)
        return (
            np.where(leaf, -1, nodes["left"].astype(np.int64)),
            np.where(leaf, -1, nodes["right"].astype(np.int64)),
            nodes["feature_idx"].astype(np.int64),
            nodes["num_threshold"].astype(np.float64),
            nodes["missing_go_to_left"].astype(np.bool_),
            value,
        )

    flat = _join(tree(k, p.nodes) for trees in per_iteration for k, p in enumerate(trees))
    column = np.zeros_like(target) if n_classes == 1 else target
    out = _walk(Xt, column, flat)
    return out * _binary_sign(target) if n_classes == 1 else out


# --- estimators -----------------------------------------------------------------------------
def _binary_sign(target: np.ndarray) -> np.ndarray:
    return np.where(target == 0, -1.0, 1.0)[:, None]


def _xgb_tree(tree: dict[str, Any], column: int, n_columns: int) -> _Tree:
    """One tree of an XGBoost model (its JSON form) with XGBoost's own node mean values: a
    leaf's value, an inner node's the hessian-weighted mean of its children's
    (``FillNodeMeanValues``, what ``approx_contribs`` credits along the path)."""
    left = np.asarray(tree["left_children"], np.int64)
    right = np.asarray(tree["right_children"], np.int64)
    hess = np.asarray(tree["sum_hessian"], np.float64)
    leaf_value = np.asarray(tree["split_conditions"], np.float64)  # a leaf keeps its value here
    mean = np.zeros(len(left))
    for node in range(len(left) - 1, -1, -1):  # children come after their parent
        if left[node] == -1:
            mean[node] = leaf_value[node]
        else:
            a, b = left[node], right[node]
            mean[node] = (mean[a] * hess[a] + mean[b] * hess[b]) / hess[node]
    value = np.zeros((len(left), n_columns))
    value[:, column] = mean
    return (
        left,
        right,
        np.where(left == -1, 0, np.asarray(tree["split_indices"], np.int64)),
        # float32 thresholds, compared with float32 inputs as XGBoost compares them
        np.asarray(tree["split_conditions"], np.float32).astype(np.float64),
        np.asarray(tree["default_left"], np.bool_),
        value,
    )


def _xgb_flat(model: Any) -> _Flat:
    """An XGBoost model's trees as flat node arrays (built once per model and kept on it)."""
    cached = getattr(model, "_flowsentinel_paths", None)
    if cached is not None:
        return cached
    doc = json.loads(model.get_booster().save_raw("json"))
    forest = doc["learner"]["gradient_booster"]["model"]
    n_columns = max(1, int(doc["learner"]["learner_model_param"]["num_class"]))
    if any(t.get("categories_nodes") for t in forest["trees"]):
        raise ExplainError("XGBoost trees with categorical splits are not explained")
    flat = _join(
        _xgb_tree(tree, int(group), n_columns)
        for tree, group in zip(forest["trees"], forest["tree_info"], strict=True)
    )
    model._flowsentinel_paths = flat
    return flat


def _xgb(model: Any, Xt: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Decision paths of an XGBoost model, in margin units: XGBoost's own ``approx_contribs``
    (the same node mean values, summed along each path), walked by the compiled walk; the
    booster's ``predict`` cost 70 ms per 1,000 flows on the demo's 400 trees, most of it the
    DMatrix it builds."""
    flat = _xgb_flat(model)
    binary = flat[-1].shape[1] == 1
    # float32 as XGBoost reads it, finite values beyond its range kept finite (NaN stays missing)
    values = np.clip(np.asarray(Xt, dtype=np.float64), -3e38, 3e38)
    X32 = values.astype(np.float32).astype(np.float64)
    out = _walk(X32, np.zeros_like(target) if binary else target, flat, strict=True)
    return out * _binary_sign(target) if binary else out


def _lgbm_nodes(tree: dict[str, Any], column: int, n_classes: int) -> dict[str, list[Any]]:
    """One LightGBM tree (``dump_model``) as node lists, in depth-first order."""
    nodes: dict[str, list[Any]] = {k: [] for k in ("l", "r", "f", "t", "n", "v")}
    stack = [tree["tree_structure"]]
    order: list[dict[str, Any]] = []
    while stack:  # numbering first, so that children can be referred to
        node = stack.pop()
        order.append(node)
        if "leaf_value" not in node:
            stack.extend([node["right_child"], node["left_child"]])
    index = {id(node): i for i, node in enumerate(order)}
    for node in order:
        value = np.zeros(n_classes)
        if "leaf_value" in node:
            value[column] = node["leaf_value"]
            for key, empty in (("l", -1), ("r", -1), ("f", 0), ("t", 0.0), ("n", False)):
                nodes[key].append(empty)
        else:
            value[column] = node["internal_value"]
            threshold = float(node["threshold"])
            # missing values: the default way when LightGBM saw them, else compared as 0
            nan_left = (
                bool(node["default_left"]) if node["missing_type"] != "None" else threshold >= 0
            )
            nodes["l"].append(index[id(node["left_child"])])
            nodes["r"].append(index[id(node["right_child"])])
            nodes["f"].append(int(node["split_feature"]))
            nodes["t"].append(threshold)
            nodes["n"].append(nan_left)
        nodes["v"].append(value)
    return nodes


def _lgbm_flat(model: Any) -> _Flat:
    """The model's trees as flat node arrays (built once per model and kept on it)."""
    cached = getattr(model, "_flowsentinel_paths", None)
    if cached is not None:
        return cached
    dump = model.booster_.dump_model()
    per_iteration = int(dump.get("num_tree_per_iteration", 1))

    def tree(i: int, info: dict[str, Any]) -> _Tree:
        nodes = _lgbm_nodes(info, i % per_iteration, per_iteration)
        return (
            np.asarray(nodes["l"], np.int64),
            np.asarray(nodes["r"], np.int64),
            np.asarray(nodes["f"], np.int64),
            np.asarray(nodes["t"], np.float64),
            np.asarray(nodes["n"], np.bool_),
            np.asarray(nodes["v"], np.float64).reshape(-1, per_iteration),
        )

    flat = _join(tree(i, info) for i, info in enumerate(dump["tree_info"]))
    model._flowsentinel_paths = flat
    return flat


def _lgbm(model: Any, Xt: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Decision paths of a LightGBM model (its dumped inner node values), in margin units:
    LightGBM's own TreeSHAP (``pred_contrib``) cost 100× more on the demo's 600 trees of 127
    leaves (285 flows/s)."""
    flat = _lgbm_flat(model)
    binary = flat[-1].shape[1] == 1
    out = _walk(Xt, np.zeros_like(target) if binary else target, flat)
    return out * _binary_sign(target) if binary else out


def _linear(model: Any, Xt: np.ndarray, target: np.ndarray) -> np.ndarray:
    coef = np.asarray(model.coef_, dtype=np.float64)
    X = np.nan_to_num(np.asarray(Xt, dtype=np.float64))
    if coef.shape[0] == 1:
        return np.asarray(X * coef[0] * _binary_sign(target))
    return np.asarray(X * coef[target])


def _knn(model: Any, Xt: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Squared-distance terms to the nearest rows of the verdict's class and of the others."""
    train = np.asarray(model._fit_X, dtype=np.float64)
    labels = np.asarray(model._y)
    k = int(model.n_neighbors)
    X = np.nan_to_num(np.asarray(Xt, dtype=np.float64))
    d2 = (X**2).sum(1)[:, None] + (train**2).sum(1)[None, :] - 2 * X @ train.T
    same = labels[None, :] == target[:, None]
    out = np.empty_like(X)
    neighbours: list[Any] = []
    classes = np.asarray(model.classes_)
    for i in range(len(X)):
        own = np.argsort(np.where(same[i], d2[i], np.inf))[:k]
        other = np.argsort(np.where(same[i], np.inf, d2[i]))[:k]
        near_own, near_other = train[own].mean(0), train[other].mean(0)
        out[i] = (X[i] - near_other) ** 2 - (X[i] - near_own) ** 2
        nearest = np.argsort(d2[i])[:k]
        neighbours.append(
            [
                {"label": str(classes[labels[j]]), "distance": float(np.sqrt(max(d2[i, j], 0)))}
                for j in nearest
            ]
        )
    return out, neighbours


def _estimator_contributions(
    model: Any, Xt: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, str, list[Any] | None]:
    kind = type(model).__name__
    if kind == "CalibratedClassifierCV":
        folds = [c.estimator for c in model.calibrated_classifiers_]
        # a fold's estimator may sit behind its undersampler (``zoo.calibrated``)
        folds = [f.steps[-1][1] if hasattr(f, "steps") else f for f in folds]
        parts = [_estimator_contributions(f, Xt, target) for f in folds]
        return np.mean([p[0] for p in parts], axis=0), parts[0][1], parts[0][2]
    if kind == "XGBClassifier":
        return _xgb(model, Xt, target), "margin", None
    if kind == "LGBMClassifier":
        return _lgbm(model, Xt, target), "margin", None
    if kind in ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier"):
        return _sklearn_trees(model, Xt, target), "probability", None
    if kind == "LogisticRegression":
        return _linear(model, Xt, target), "margin", None
    if kind == "HistGradientBoostingClassifier":
        return _hgb(model, Xt, target), "margin", None
    if kind == "KNeighborsClassifier":
        values, neighbours = _knn(model, Xt, target)
        return values, "squared distance", neighbours
    raise ExplainError(f"reasons are not available for {kind} models")


# --- from the estimator's columns back to the inputs ----------------------------------------
def _input_of(column: str, features: list[str], categorical: list[str]) -> str:
    if column in features:
        return column
    owners = [c for c in categorical if column.startswith(f"{c}_")]
    return max(owners, key=len) if owners else column


def _through_pca(pca: Any, before: np.ndarray, contrib: np.ndarray) -> np.ndarray:
    """Component attributions shared among the inputs by their terms in each component."""
    centred = np.nan_to_num(before - pca.mean_)
    terms = centred[:, None, :] * pca.components_[None, :, :]  # (flows, components, inputs)
    total = terms.sum(axis=2, keepdims=True)
    share = np.divide(terms, total, out=np.zeros_like(terms), where=np.abs(total) > 1e-12)
    return np.asarray(np.einsum("nc,nci->ni", contrib, share))


def attributions(
    pipeline: Any,
    X: pd.DataFrame,
    target: np.ndarray,
    features: list[str],
    categorical: list[str],
) -> Attributions:
    """Contributions of each input of ``X`` (aligned model inputs) towards class ``target``
    (per flow, an index into the pipeline's ``classes_``)."""
    steps = dict(pipeline.steps)
    model = pipeline.steps[-1][1]
    pca = steps.get("pca")
    head = pipeline[:-2] if pca is not None else pipeline[:-1]
    before = np.asarray(head.transform(X), dtype=np.float64)
    columns = [str(c) for c in head.get_feature_names_out()]
    Xt = pca.transform(before) if pca is not None else before
    target = np.asarray(target, dtype=np.int64)
    values, units, neighbours = _estimator_contributions(model, Xt, target)
    if pca is not None:
        values = _through_pca(pca, before, values)
    owners = [_input_of(c, features, categorical) for c in columns]
    names = list(dict.fromkeys([*features, *owners]))
    index = {n: j for j, n in enumerate(names)}
    summed = np.zeros((len(X), len(names)))
    np.add.at(summed.T, np.asarray([index[o] for o in owners]), values.T)
    derived = {c: before[:, j] for j, c in enumerate(columns) if c not in features}
    return Attributions(names, summed, units, neighbours, derived)


# --- reasons --------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or not np.isfinite(value):
        return "missing" if value is None or np.isnan(value) else str(value)
    return f"{value:.4g}"


def _pct(p: float) -> str:
    return f"{p:.1f}".rstrip("0").rstrip(".")


def reason_text(feature: str, value: Any, percentiles: dict[str, float], verdict: str) -> str:
    """``"Flow IAT Min = 3: lower than 99 % of BENIGN training flows, ..."``."""
    text = f"{feature} = {_fmt(value)}"
    parts: list[str] = []
    for k, (cls, p) in enumerate(percentiles.items()):
        if not np.isfinite(p) or (k > 0 and cls != verdict):
            continue
        where = f"higher than {_pct(p)} %" if p >= 50 else f"lower than {_pct(100 - p)} %"
        parts.append(f"{where} of {cls}" + (" training flows" if not parts else ""))
    return f"{text}: {', '.join(parts)}" if parts else text


def _values(attr: Attributions, X: pd.DataFrame, picks: np.ndarray) -> np.ndarray:
    """The picked inputs' values, (flows, top), as objects (text for categorical inputs)."""
    table = np.empty((len(X), len(attr.names)), dtype=object)
    for j, name in enumerate(attr.names):
        column = X[name] if name in X.columns else attr.derived.get(name)
        if column is None:
            continue
        data = column.to_numpy() if isinstance(column, pd.Series) else column
        table[:, j] = data
    return np.take_along_axis(table, picks, axis=1)


def _percentiles(
    attr: Attributions, profile: TrainingProfile | None, picks: np.ndarray, values: np.ndarray
) -> np.ndarray | None:
    """(classes, flows, top) ranks of the picked values among each class's training rows."""
    if profile is None:
        return None
    known = {f: j for j, f in enumerate(profile.features)}
    index = np.asarray([known.get(n, -1) for n in attr.names])[picks]
    numeric = np.full(values.shape, np.nan)
    usable = index >= 0
    numeric[usable] = values[usable].astype(np.float64)
    ranks = profile.ranks(np.where(usable, index, 0), numeric)
    ranks[:, ~usable] = np.nan
    return np.asarray(ranks)


def _where_text(p: float, cls: str) -> str:
    return (
        f"higher than {_pct(p)} % of {cls}" if p >= 50 else f"lower than {_pct(100 - p)} % of {cls}"
    )


def _texts(
    names: np.ndarray,
    values: np.ndarray,
    ranks: np.ndarray | None,
    verdict: np.ndarray,
    classes: list[str],
) -> list[list[str]]:
    """:func:`reason_text` of every (flow, reason) in one pass over plain Python values:
    ``names``/``values`` (flows, top), ``ranks`` (classes, flows, top), ``verdict`` the class
    index of each flow. (NumPy's fixed-width strings cost more here: 23 ms per 1,000 flows,
    half of it turning them back into ``str``, against 5 ms.)"""
    flows, top = names.shape
    pairs = zip(names.ravel().tolist(), values.ravel().tolist(), strict=True)
    heads = [  # a finite float formatted in place, anything else by _fmt
        f"{n} = {v:.4g}" if v.__class__ is float and v - v == 0 else f"{n} = {_fmt(v)}"
        for n, v in pairs
    ]
    if ranks is None:
        return [heads[i * top : (i + 1) * top] for i in range(flows)]
    rows = np.repeat(np.arange(flows), top)
    slots = np.tile(np.arange(top), flows)
    per_item = np.repeat(verdict, top)
    first = ranks[0].ravel().tolist()
    own = ranks[per_item, rows, slots].tolist()
    owner = [classes[v] if v else "" for v in per_item.tolist()]
    c0 = classes[0]
    out = []
    for head, p0, po, cls in zip(heads, first, own, owner, strict=True):
        first_ok = p0 == p0 and abs(p0) != math.inf
        own_ok = bool(cls) and po == po and abs(po) != math.inf
        if first_ok and own_ok:
            out.append(f"{head}: {_where_text(p0, c0)} training flows, {_where_text(po, cls)}")
        elif first_ok:
            out.append(f"{head}: {_where_text(p0, c0)} training flows")
        elif own_ok:
            out.append(f"{head}: {_where_text(po, cls)} training flows")
        else:
            out.append(head)
    return [out[i * top : (i + 1) * top] for i in range(flows)]


def reasons(
    attr: Attributions,
    X: pd.DataFrame,
    verdicts: list[str],
    profile: TrainingProfile | None,
    top: int = 3,
) -> list[list[dict[str, Any]]]:
    """The ``top`` inputs that pushed each flow most towards its verdict, as records (the
    first always; the others while they push towards the verdict)."""
    picks = np.argsort(-attr.values, axis=1, kind="stable")[:, :top]
    contributions = np.round(np.take_along_axis(attr.values, picks, axis=1), 6)
    values = _values(attr, X, picks)
    ranks = _percentiles(attr, profile, picks, values)
    classes = profile.classes if profile is not None else []
    index = {c: i for i, c in enumerate(classes)}
    verdict = np.asarray([index.get(v, 0) for v in verdicts], dtype=np.int64)
    names = np.asarray(attr.names, dtype=object)[picks]
    texts = _texts(names, values, ranks, verdict, classes)
    keep = (contributions > 0) | (np.arange(picks.shape[1]) == 0)[None, :]
    keep = np.cumprod(keep, axis=1).astype(bool)  # stop at the first that does not push
    # a finite float is kept as it is (v - v == 0 is false for inf and NaN): no call for it
    plain = [
        [v if v.__class__ is float and v - v == 0 else _plain(v) for v in row]
        for row in values.tolist()
    ]
    where = (
        np.round(ranks, 1).transpose(1, 2, 0).tolist()
        if ranks is not None
        else np.empty((*picks.shape, 0)).tolist()
    )
    names_l, contributions_l, keep_l = names.tolist(), contributions.tolist(), keep.tolist()
    out: list[list[dict[str, Any]]] = []
    per_flow = zip(names_l, plain, contributions_l, where, texts, keep_l, strict=True)
    for i, (names_i, plain_i, contrib_i, where_i, texts_i, keep_i) in enumerate(per_flow):
        rows = [
            {
                "feature": name,
                "value": value,
                "contribution": contribution,
                "percentiles": {c: p for c, p in zip(classes, ranks_k, strict=True) if p == p},
                "text": text,
            }
            for name, value, contribution, ranks_k, text, kept in zip(
                names_i, plain_i, contrib_i, where_i, texts_i, keep_i, strict=True
            )
            if kept
        ]
        if attr.neighbours is not None and rows:
            rows[0]["neighbours"] = attr.neighbours[i]
        out.append(rows)
    return out


def _plain(value: Any) -> Any:
    """A value as JSON takes it: text, a finite float, or ``None``."""
    if isinstance(value, str) or value is None:
        return value
    number = float(value)
    return number if np.isfinite(number) else None
