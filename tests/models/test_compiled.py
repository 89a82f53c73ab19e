"""The compiled form of every zoo model gives its pipeline's probabilities (within 1e-9), on rows
with NaN, ±inf and unknown categories; a pipeline it cannot compile is an error, not a fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from modeldata import unsw_frame

from flowsentinel.core import schema as sc
from flowsentinel.datasets.synthetic import generate_flows
from flowsentinel.models.compiled import CompileError, _estimator, compile_pipeline
from flowsentinel.models.detector import Detector
from flowsentinel.models.zoo import SPECS, build_pipeline, calibrated

UNSW_NUM = [c for c in sc.UNSW_FEATURES if c not in sc.UNSW_CATEGORICAL]
UNSW_CAT = list(sc.UNSW_CATEGORICAL)
CIC_NUM = list(sc.CIC_FEATURES)

#: fewer trees than the zoo's, so that the tests stay fast (same code paths)
SMALL = {
    "rf": {"model__n_estimators": 12},
    "xgb": {"model__n_estimators": 25},
    "seed-b": {"model__n_estimators": 25},
    "lgbm": {"model__n_estimators": 30, "model__num_leaves": 15},
    "hgb": {"model__max_iter": 25},
}
KINDS = ["lr", "rf", "knn", "dt", "xgb", "seed-b", "lgbm", "hgb"]


def test_every_zoo_kind_is_tested() -> None:
    assert sorted(KINDS) == sorted(SPECS)


def _layout(name: str, rows: int, seed: int) -> tuple[pd.DataFrame, list[str], list[str], str]:
    if name == "unsw":
        return unsw_frame(rows, seed=seed), UNSW_NUM, UNSW_CAT, "unsw-nb15"
    frame = generate_flows(rows, seed=seed).to_pandas()
    frame["label"] = (frame["Label"] != "BENIGN").astype(int)
    return frame, CIC_NUM, [], "cicids2017"


def _damaged(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Test rows with NaN, +inf, -inf in numeric columns, unknown and missing categories."""
    test = frame.reset_index(drop=True).copy()
    rng = np.random.default_rng(5)
    for value, every in ((np.nan, 5), (np.inf, 7), (-np.inf, 11)):
        for col in rng.choice(numeric, size=6, replace=False):
            test.loc[rng.integers(0, every) :: every, col] = value
    test.loc[3, numeric] = np.nan  # a row with no numeric value at all
    test.loc[4, numeric] = np.inf
    for i, col in enumerate(categorical):
        test[col] = test[col].astype(object)
        test.loc[i :: 4 + i, col] = f"never-seen-{col}"
        test.loc[1 + i :: 9, col] = None
    return test


def _fitted(
    kind: str,
    layout: str,
    y_column: str = "label",
    rows: int = 420,
    seed: int = 0,
    calibrate: str | None = None,
):
    frame, numeric, categorical, dataset = _layout(layout, rows, seed)
    train, test = frame.iloc[:300], frame.iloc[300:]
    y = train[y_column].to_numpy()
    classes = sorted(set(y))
    codes = np.searchsorted(classes, y)
    pipe = build_pipeline(
        SPECS[kind], numeric, categorical, seed=seed, n_classes=len(classes)
    ).set_params(**SMALL.get(kind, {}))
    if calibrate is not None:  # label noise: calibrated probabilities strictly inside (0, 1)
        noisy = np.random.default_rng(seed).random(len(codes)) < 0.15
        codes = np.where(noisy, (codes + 1) % len(classes), codes)
        pipe = calibrated(pipe, calibrate, folds=3, seed=seed)
    pipe.fit(train, codes)
    det = Detector(
        pipeline=pipe,
        uri="",
        name=f"{kind}-{layout}",
        version=None,
        dataset=dataset,
        task="attack",
        classes=[str(c) for c in classes],
        features=[*numeric, *categorical],
        categorical=categorical,
        model=kind,
    )
    return det, _damaged(test, numeric, categorical)


@pytest.mark.parametrize("layout", ["cic", "unsw"])
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_equals_predict_proba(kind: str, layout: str) -> None:
    det, test = _fitted(kind, layout)
    expected = det.pipeline.predict_proba(test[det.features])
    numeric, categorical = det.inputs(test)
    assert not np.isfinite(numeric).all()
    got = det.compiled.proba(numeric, categorical)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    again = det.compiled.proba(numeric, categorical)  # categorical branch from the memo
    np.testing.assert_allclose(again, expected, rtol=0, atol=1e-9)
    one = det.compiled.proba(numeric[6:7], {c: v[6:7] for c, v in categorical.items()})
    np.testing.assert_allclose(one, expected[6:7], rtol=0, atol=1e-9)
    assert det.compiled.replay[-1].startswith(type(det.pipeline.steps[-1][1]).__name__)


@pytest.mark.parametrize("kind", ["rf", "dt", "xgb", "lr", "lgbm"])
def test_compiled_equals_predict_proba_with_several_classes(kind: str) -> None:
    det, test = _fitted(kind, "unsw", y_column="attack_cat", seed=3)
    assert len(det.classes) == 3
    numeric, categorical = det.inputs(test)
    np.testing.assert_allclose(
        det.compiled.proba(numeric, categorical),
        det.pipeline.predict_proba(test[det.features]),
        rtol=0,
        atol=1e-9,
    )


def test_replays_by_kind() -> None:
    """Which steps are replayed by hand and which call the fitted step itself."""
    replay = {kind: _fitted(kind, "unsw")[0].compiled.replay for kind in ("rf", "seed-b", "lgbm")}
    assert replay["rf"] == [
        "select",
        "impute",
        "categorical (fitted encoder, memo)",
        "RandomForestClassifier (numba)",
    ]
    assert replay["seed-b"] == [
        "select",
        "impute",
        "scale",
        "categorical (fitted encoder, memo)",
        "pca (PCA.transform)",
        "XGBClassifier (numba)",
    ]
    assert replay["lgbm"][:2] == ["select", "derive"]
    assert replay["lgbm"][-1] == "LGBMClassifier (own predict_proba)"


def test_detector_scores_through_the_compiled_form(monkeypatch) -> None:
    det, test = _fitted("rf", "unsw")
    expected = det.pipeline.predict_proba(test[det.features])
    det.compiled  # noqa: B018

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline's predict_proba was called")

    monkeypatch.setattr(det.pipeline, "predict_proba", refuse)
    verdicts = det.predict(test)
    np.testing.assert_allclose(verdicts.proba, expected, rtol=0, atol=1e-9)
    assert len(verdicts) == len(test)


def test_an_unknown_step_is_an_error() -> None:
    from sklearn.naive_bayes import GaussianNB
    from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures

    frame, numeric, categorical, _ = _layout("unsw", 300, 0)
    y = frame["label"].to_numpy()
    scaled = build_pipeline(SPECS["lr"], numeric, categorical, seed=0)
    scaled.named_steps["prepare"].transformers[0][1].steps[-1] = ("scale", MinMaxScaler())
    bayes = build_pipeline(SPECS["lr"], numeric, categorical, seed=0)
    bayes.steps[-1] = ("model", GaussianNB())
    poly = build_pipeline(SPECS["seed-b"], numeric, categorical, seed=0)
    poly.steps[-2] = ("pca", PolynomialFeatures(2))
    poly.set_params(model__n_estimators=5)
    for pipe, named in (
        (scaled, "MinMaxScaler"),
        (bayes, "GaussianNB"),
        (poly, "PolynomialFeatures"),
    ):
        pipe.fit(frame, y)
        with pytest.raises(CompileError, match=named):
            compile_pipeline(pipe, [*numeric, *categorical], categorical)
    det = Detector(bayes, "", "bayes", None, "unsw-nb15", "attack", ["0", "1"],
                   [*numeric, *categorical], categorical)  # fmt: skip
    with pytest.raises(CompileError, match=r"model bayes cannot be compiled.*GaussianNB"):
        det.predict(frame)
    with pytest.raises(CompileError, match="not the model's features"):
        compile_pipeline(bayes, numeric, [])


@pytest.mark.parametrize("rows", [300, 5000])  # 5,000: the forest walk is cut across threads
@pytest.mark.parametrize("kind", ["rf", "et", "dt", "xgb"])
def test_compiled_estimators_equal_their_own_predict_proba(kind: str, rows: int) -> None:
    """The flat-array forest and XGBoost replays give the estimator's probabilities bit for bit
    (NaN routed as fitted, float32 comparisons), on one thread and on several."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from xgboost import XGBClassifier

    rng = np.random.default_rng(3)
    X = rng.lognormal(1, 2, size=(600, 8))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(0, 1, 600) > 3).astype(int)
    model = {
        "rf": lambda: RandomForestClassifier(30, max_depth=8, random_state=0),
        "et": lambda: ExtraTreesClassifier(20, random_state=0),
        "dt": lambda: DecisionTreeClassifier(random_state=0),
        "xgb": lambda: XGBClassifier(n_estimators=40, max_depth=4, n_jobs=1, random_state=0),
    }[kind]().fit(X, y)
    compiled, how = _estimator(model)
    assert how.endswith("(numba)") and type(compiled).__name__ in ("_FlatForest", "_XGBTrees")
    test = rng.lognormal(1, 2, size=(rows, 8))
    test[rng.random(test.shape) < 0.1] = np.nan
    np.testing.assert_array_equal(compiled(test), model.predict_proba(test).astype(np.float64))


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
@pytest.mark.parametrize("kind", KINDS)
def test_calibrated_pipelines_compile_with_parity(kind: str, method: str) -> None:
    """Every zoo kind wrapped in ``CalibratedClassifierCV`` (3 folds, the undersampler inside
    each fold) gives the calibrated pipeline's probabilities, NaN and ±inf rows included."""
    det, test = _fitted(kind, "unsw", calibrate=method)
    expected = det.pipeline.predict_proba(test[det.features])
    numeric, categorical = det.inputs(test)
    assert not np.isfinite(numeric).all()
    got = det.compiled.proba(numeric, categorical)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    one = det.compiled.proba(numeric[4:5], {c: v[4:5] for c, v in categorical.items()})
    np.testing.assert_allclose(one, expected[4:5], rtol=0, atol=1e-9)
    how = det.compiled.replay[-1]
    assert how.startswith(f"CalibratedClassifierCV ({method}, 3 folds of ")
    assert len(np.unique(expected[:, 1].round(12))) > 2  # not only 0 and 1


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
@pytest.mark.parametrize("kind", ["rf", "lr", "xgb", "hgb"])
def test_calibrated_multiclass_pipelines_compile_with_parity(kind: str, method: str) -> None:
    """Three classes: each class calibrated one-vs-rest, then normalised by the row sum."""
    det, test = _fitted(kind, "unsw", y_column="attack_cat", seed=3, calibrate=method)
    assert len(det.classes) == 3
    numeric, categorical = det.inputs(test)
    expected = det.pipeline.predict_proba(test[det.features])
    np.testing.assert_allclose(
        det.compiled.proba(numeric, categorical), expected, rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-12)


def test_calibrated_cic_pipeline_compiles_with_parity() -> None:
    det, test = _fitted("lgbm", "cic", calibrate="isotonic")
    numeric, categorical = det.inputs(test)
    np.testing.assert_allclose(
        det.compiled.proba(numeric, categorical),
        det.pipeline.predict_proba(test[det.features]),
        rtol=0,
        atol=1e-9,
    )


def test_a_calibration_it_does_not_replay_is_an_error() -> None:
    """Temperature scaling (scikit-learn ≥ 1.8) is not replayed: refused, not approximated."""
    from sklearn.calibration import CalibratedClassifierCV

    frame, numeric, categorical, _ = _layout("unsw", 300, 0)
    pipe = build_pipeline(SPECS["dt"], numeric, categorical, seed=0)
    pipe.steps[-1] = ("model", CalibratedClassifierCV(pipe.steps[-1][1], method="temperature"))
    pipe.fit(frame, frame["label"].to_numpy())
    with pytest.raises(CompileError, match="method 'temperature'"):
        compile_pipeline(pipe, [*numeric, *categorical], categorical)


def test_a_calibrated_detector_gives_reasons_and_novelty() -> None:
    """The scoring extras see through the calibrated estimator (its folds' estimators behind
    their undersamplers)."""
    from flowsentinel.models.profile import TrainingProfile

    det, test = _fitted("rf", "unsw", calibrate="isotonic")
    frame, numeric, _, _ = _layout("unsw", 420, 0)
    rows = frame.iloc[:300][numeric].to_numpy(dtype=np.float64)
    labels = frame.iloc[:300]["label"].to_numpy()
    TrainingProfile.fit(rows, labels, numeric, det.classes, seed=0).attach(det.pipeline)
    verdicts = det.predict(test, explain="all")
    assert verdicts.reasons is not None and all(r for r in verdicts.reasons)
    assert verdicts.in_distribution is not None and len(verdicts.in_distribution) == len(test)
