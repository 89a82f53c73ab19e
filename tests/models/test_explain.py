"""Reasons per verdict: attributions are exact decompositions of each model's own output, checked
against the model's output computed independently (margin, probability, decision function,
distances), and a feature that cannot matter gets 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_compiled import KINDS, SMALL

from flowsentinel.core import schema as sc
from flowsentinel.datasets.synthetic import generate_flows
from flowsentinel.models.detector import Detector
from flowsentinel.models.explain import ExplainError, _texts, attributions, reason_text
from flowsentinel.models.profile import TrainingProfile
from flowsentinel.models.zoo import SPECS, build_pipeline

CIC_NUM = list(sc.CIC_FEATURES)
#: held constant in every row: no model can use it
DEAD = "URG Flag Count"


def _fitted(kind: str, seed: int = 0) -> tuple[Detector, pd.DataFrame]:
    frame = generate_flows(480, seed=seed).to_pandas()
    frame[DEAD] = 0.0
    frame["label"] = (frame["Label"] != "BENIGN").astype(int)
    train, test = frame.iloc[:360], frame.iloc[360:].reset_index(drop=True)
    y = train["label"].to_numpy()
    pipe = build_pipeline(SPECS[kind], CIC_NUM, [], seed=seed, n_classes=2)
    pipe.set_params(**SMALL.get(kind, {})).fit(train, y)
    TrainingProfile.fit(
        train[CIC_NUM].to_numpy(np.float64), y, CIC_NUM, ["BENIGN", "DoS"], seed=seed
    ).attach(pipe)
    det = Detector(
        pipeline=pipe,
        uri="",
        name=kind,
        version=None,
        dataset="cicids2017",
        task="dos",
        classes=["BENIGN", "DoS"],
        features=CIC_NUM,
        categorical=[],
        model=kind,
    )
    return det, test


def _output(det: Detector, X: pd.DataFrame, target: np.ndarray) -> np.ndarray:
    """The model's own output towards ``target``, computed by the model's library."""
    pipe = det.pipeline
    model = pipe.steps[-1][1]
    head = pipe[:-1]
    Xt = head.transform(X)
    kind = type(model).__name__
    sign = np.where(target == 1, 1.0, -1.0)
    if kind == "XGBClassifier":
        return np.asarray(model.predict(Xt, output_margin=True)) * sign
    if kind == "LGBMClassifier":
        return np.asarray(model.predict(Xt, raw_score=True)) * sign
    if kind in ("LogisticRegression", "HistGradientBoostingClassifier"):
        return np.asarray(model.decision_function(Xt)) * sign
    return np.asarray(model.predict_proba(Xt))[np.arange(len(Xt)), target]


@pytest.mark.parametrize("kind", ["xgb", "lgbm", "rf", "dt", "lr", "seed-b", "hgb"])
def test_attributions_sum_to_the_models_own_output(kind: str) -> None:
    det, test = _fitted(kind)
    X = det.align(test)
    target = det.predict(test).codes
    attr = attributions(det.pipeline, X, target, det.features, det.categorical)
    assert attr.values.shape == (len(X), len(det.features))
    # the sum of the contributions and the model's output differ by the same constant on every
    # row (the bias, prior or intercept: towards one class it is the negative of the other's)
    gap = attr.values.sum(axis=1) - _output(det, X, target)
    for cls in (0, 1):
        rows = gap[target == cls]
        if len(rows) > 1:
            np.testing.assert_allclose(rows, rows[0], atol=1e-4)
    assert np.all(attr.values[:, det.features.index(DEAD)] == 0)


@pytest.mark.parametrize("classes", [2, 3])
def test_xgboost_paths_equal_its_own_approx_contribs(classes: int) -> None:
    """The compiled walk of XGBoost's trees credits what the booster's own ``approx_contribs``
    credits (binary and multiclass; inputs with NaN, huge and tiny values)."""
    import xgboost as xgb

    from flowsentinel.models.explain import _xgb

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6)) * np.array([1, 10, 1e3, 1e-3, 1, 1e6])
    X[rng.random(X.shape) < 0.05] = np.nan
    y = rng.integers(0, classes, len(X))
    y[X[:, 0] > 0.5] = classes - 1  # something to learn
    model = xgb.XGBClassifier(n_estimators=25, max_depth=4, n_jobs=1).fit(X, y)
    target = rng.integers(0, classes, len(X))
    ours = _xgb(model, X, target)
    data = xgb.DMatrix(X.astype(np.float32), missing=np.nan)
    theirs = model.get_booster().predict(data, pred_contribs=True, approx_contribs=True)
    if classes == 2:
        expected = theirs[:, :-1] * np.where(target == 0, -1.0, 1.0)[:, None]
    else:
        expected = theirs[np.arange(len(X)), target, :-1]
    assert np.allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_knn_terms_sum_to_the_difference_of_squared_distances() -> None:
    det, test = _fitted("knn")
    X = det.align(test)
    target = det.predict(test).codes
    attr = attributions(det.pipeline, X, target, det.features, det.categorical)
    model = det.pipeline.steps[-1][1]
    Xt = np.nan_to_num(det.pipeline[:-1].transform(X))
    train, labels, k = model._fit_X, model._y, model.n_neighbors
    for i in range(0, len(Xt), 17):  # an independent brute-force computation, row by row
        d = ((train - Xt[i]) ** 2).sum(axis=1)
        own = train[np.argsort(np.where(labels == target[i], d, np.inf))[:k]].mean(axis=0)
        other = train[np.argsort(np.where(labels != target[i], d, np.inf))[:k]].mean(axis=0)
        expected = ((Xt[i] - other) ** 2).sum() - ((Xt[i] - own) ** 2).sum()
        # columns the |r| > 0.9 rule dropped are not the estimator's inputs
        assert attr.values[i].sum() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert attr.neighbours is not None and len(attr.neighbours[0]) == k


def test_a_stump_credits_the_split_exactly() -> None:
    """Depth-1 tree: the split's feature gets P(leaf) - P(root), every other feature 0."""
    det, test = _fitted("dt")
    model = det.pipeline.steps[-1][1].set_params(max_depth=1)
    X = det.align(test)
    y = det.predict(test).codes
    head = det.pipeline[:-1]
    model.fit(head.transform(X), y)
    tree = model.tree_
    attr = attributions(det.pipeline, X, y, det.features, det.categorical)
    split = tree.feature[0]
    names = [str(n) for n in head.get_feature_names_out()]
    leaf = model.apply(head.transform(X).astype(np.float32))
    fractions = tree.value[:, 0, :] / tree.value[:, 0, :].sum(axis=1, keepdims=True)
    expected = fractions[leaf, y] - fractions[0, y]
    column = det.features.index(names[split])
    np.testing.assert_allclose(attr.values[:, column], expected, atol=1e-12)
    others = np.delete(attr.values, column, axis=1)
    assert np.all(others == 0)


def test_an_estimator_without_attributions_is_an_error() -> None:
    det, test = _fitted("dt")
    target = det.predict(test).codes
    det.pipeline.steps[-1] = ("model", _Opaque(det.pipeline.steps[-1][1]))
    with pytest.raises(ExplainError, match="_Opaque"):
        attributions(det.pipeline, det.align(test), target, det.features, [])


class _Opaque:
    """An estimator of no known kind (scores like the tree it wraps)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.classes_ = inner.classes_  # type: ignore[attr-defined]

    def predict_proba(self, X: object) -> object:
        return self.inner.predict_proba(X)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_flagged_flows_carry_reasons(kind: str) -> None:
    det, test = _fitted(kind)
    verdicts = det.predict(test, explain="flagged")
    assert verdicts.reasons is not None
    flagged = verdicts.codes != 0
    assert flagged.any()
    for i, r in enumerate(verdicts.reasons):
        if not flagged[i]:
            assert r is None
            continue
        assert r and 1 <= len(r) <= 5
        contributions = [x["contribution"] for x in r]
        assert contributions == sorted(contributions, reverse=True)
        assert contributions[0] > 0
        assert all(x["feature"] in det.features for x in r)
        assert r[0]["text"].startswith(f"{r[0]['feature']} = ")
        assert test[r[0]["feature"]].iloc[i] == pytest.approx(r[0]["value"])


def test_identical_flows_are_explained_once_with_their_own_reasons() -> None:
    """A flood's identical flows share one explanation, equal to each explained alone."""
    det, test = _fitted("rf")
    flood = pd.concat([test.iloc[:40]] * 5, ignore_index=True)
    shared = det.predict(flood, explain="all").reasons
    alone = [det.predict(test.iloc[[i]], explain="all").reasons[0] for i in range(40)]
    assert shared is not None
    for k, r in enumerate(shared):
        assert r == alone[k % 40]
    assert shared[0] is shared[40] is shared[160]  # one list: encoded once (json_lines)


def test_reason_text_places_the_value_among_each_class() -> None:
    text = reason_text("Flow IAT Min", 3.0, {"BENIGN": 0.5, "DoS": 60.0}, "DoS")
    assert (
        text
        == "Flow IAT Min = 3: lower than 99.5 % of BENIGN training flows, higher than 60 % of DoS"
    )
    benign = reason_text("Flow IAT Min", 3.0, {"BENIGN": 70.0, "DoS": 10.0}, "BENIGN")
    assert benign == "Flow IAT Min = 3: higher than 70 % of BENIGN training flows"


def test_reason_texts_built_at_once_equal_the_one_by_one_text() -> None:
    rng = np.random.default_rng(11)
    classes = ["BENIGN", "DoS", "PortScan"]
    flows, top = 200, 3
    names = rng.choice(["Flow IAT Min", "Flow Bytes/s", "proto"], size=(flows, top)).astype(object)
    values = rng.lognormal(2, 4, size=(flows, top)).astype(object)
    values[rng.random((flows, top)) < 0.1] = np.nan
    values[rng.random((flows, top)) < 0.05] = None
    values[rng.random((flows, top)) < 0.05] = np.inf
    values[rng.random((flows, top)) < 0.1] = "tcp"
    ranks = rng.choice([0.0, 0.4, 12.5, 50.0, 99.5, 100.0, np.nan], size=(3, flows, top))
    verdict = rng.integers(0, 3, flows)
    got = _texts(names, values, ranks, verdict, classes)
    for i in range(flows):
        for k in range(top):
            pcts = {c: float(ranks[j, i, k]) for j, c in enumerate(classes)}
            value = values[i, k]
            expected = reason_text(names[i, k], value, pcts, classes[verdict[i]])
            assert got[i][k] == expected, (i, k)
