from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from modeldata import unsw_frame

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.models.zoo import SPECS, build_pipeline, calibrated, parse_models, search_space

NUM = [c for c in sc.UNSW_FEATURES if c not in sc.UNSW_CATEGORICAL]
CAT = list(sc.UNSW_CATEGORICAL)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_model_fits_and_predicts_unsw_like_rows(name: str) -> None:
    df = unsw_frame(400)
    train, test = df.iloc[:300], df.iloc[300:]
    pipe = build_pipeline(SPECS[name], NUM, CAT, seed=1).fit(train, train["label"].to_numpy())
    proba = pipe.predict_proba(test)
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = (proba.argmax(axis=1) == test["label"].to_numpy()).mean()
    assert accuracy > 0.8, f"{name} learned nothing: accuracy {accuracy:.2f}"


def test_scaling_only_where_the_model_needs_it() -> None:
    scaled = {n for n, s in SPECS.items() if s.scale}
    assert scaled == {"lr", "knn", "seed-b"}
    pipe = build_pipeline(SPECS["rf"], NUM, CAT, seed=1)
    assert "scale" not in pipe.named_steps["prepare"].transformers[0][1].named_steps


def test_seed_b_pipeline_is_the_second_seeds() -> None:
    df = unsw_frame(300)
    pipe = build_pipeline(SPECS["seed-b"], NUM, CAT, seed=1).fit(df, df["label"].to_numpy())
    assert pipe.named_steps["sample"] == "passthrough"  # the seed did not resample
    assert pipe.named_steps["pca"].n_components == 0.9
    model = pipe.named_steps["model"]
    assert (model.learning_rate, model.max_depth, model.n_estimators) == (0.1, 8, 200)
    explained = pipe.named_steps["pca"].explained_variance_ratio_.sum()
    assert explained >= 0.9


def test_undersampler_applies_to_training_rows_only() -> None:
    df = unsw_frame(500, seed=3)
    y = df["label"].to_numpy()
    pipe = build_pipeline(SPECS["dt"], NUM, CAT, seed=1).fit(df, y)
    minority = np.bincount(y).min()
    # the tree saw a balanced sample: twice the minority count
    assert pipe.named_steps["model"].tree_.n_node_samples[0] == 2 * minority
    assert len(pipe.predict(df)) == len(df)  # nothing is dropped at prediction time


def test_a_missing_input_column_is_named() -> None:
    df = unsw_frame(200)
    pipe = build_pipeline(SPECS["dt"], NUM, CAT, seed=1).fit(df, df["label"].to_numpy())
    with pytest.raises(ValueError, match="sttl"):
        pipe.predict(df.drop(columns=["sttl"]))


def test_infinite_values_are_imputed_not_fatal() -> None:
    df = unsw_frame(200)
    pipe = build_pipeline(SPECS["lr"], NUM, CAT, seed=1).fit(df, df["label"].to_numpy())
    bad = df.copy()
    bad["rate"] = np.inf
    assert np.isfinite(pipe.predict_proba(bad)).all()


def test_parse_models_and_search_space() -> None:
    assert parse_models("lr, rf,lr") == ["lr", "rf"]
    assert parse_models("all") == list(SPECS)
    with pytest.raises(InputError, match="bogus"):
        parse_models("rf,bogus")
    space = search_space(SPECS["lr"])
    assert list(space) == ["model__C"] and len(space["model__C"]) == 100
    assert search_space(SPECS["seed-b"]) == {}


def test_decorrelation_is_kept_for_linear_models_only() -> None:
    df = unsw_frame(300)
    df["dbytes"] = df["sbytes"] * 2.0  # perfectly correlated copy
    lr = build_pipeline(SPECS["lr"], NUM, CAT, seed=1).fit(df, df["label"].to_numpy())
    dropper = lr.named_steps["prepare"].named_transformers_["num"].named_steps["decorrelate"]
    assert "dbytes" in dropper.dropped_
    rf = build_pipeline(SPECS["rf"], NUM, CAT, seed=1)
    assert "decorrelate" not in rf.named_steps["prepare"].transformers[0][1].named_steps
    assert isinstance(df, pd.DataFrame)


def test_calibration_moves_the_undersampler_inside_each_fold() -> None:
    """The calibrated copy: no sampler ahead of the calibrated estimator (so its calibration
    folds keep the natural class shares); each fold fits the undersampler then the estimator
    on its two thirds of the rows."""
    from imblearn.pipeline import Pipeline
    from sklearn.calibration import CalibratedClassifierCV

    df = unsw_frame(600, seed=2)
    df = pd.concat([df, df[df["label"] == 0].assign(id=0)]).reset_index(drop=True)  # imbalance
    y = df["label"].to_numpy()
    pipe = build_pipeline(SPECS["dt"], NUM, CAT, seed=0)
    cal = calibrated(pipe, "isotonic", folds=3, seed=0)
    assert pipe.named_steps["sample"] != "passthrough"  # the original is left as it was
    assert cal.named_steps["sample"] == "passthrough"
    model = cal.named_steps["model"]
    assert isinstance(model, CalibratedClassifierCV) and isinstance(model.estimator, Pipeline)
    assert [n for n, _ in model.estimator.steps] == ["sample", "model"]
    cal.fit(df, y)
    assert len(model.calibrated_classifiers_) == 3
    minority = int((y == 1).sum())
    for fold in model.calibrated_classifiers_:  # fitted on balanced rows of its two thirds
        tree = fold.estimator.named_steps["model"].tree_
        np.testing.assert_allclose(tree.value[0, 0], [0.5, 0.5])
        assert abs(tree.weighted_n_node_samples[0] - 2 * minority * 2 / 3) <= 2
    with pytest.raises(InputError, match="--calibrate must be one of"):
        calibrated(pipe, "temperature", folds=3, seed=0)
