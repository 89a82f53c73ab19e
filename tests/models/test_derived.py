from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from modeldata import unsw_frame

from flowsentinel.core import schema as sc
from flowsentinel.models._transformers import FrameSelector
from flowsentinel.models.derived import UNSW_COUNTED, UNSW_NOISE, DerivedFeatures
from flowsentinel.models.zoo import SPECS, build_pipeline

NUM = [c for c in sc.UNSW_FEATURES if c not in sc.UNSW_CATEGORICAL]
CAT = list(sc.UNSW_CATEGORICAL)


def _selected(df: pd.DataFrame) -> pd.DataFrame:
    return FrameSelector(NUM, CAT).fit_transform(df)


def test_ratios_and_differences_match_a_direct_computation() -> None:
    df = _selected(unsw_frame(200, seed=3))
    out = DerivedFeatures(NUM).fit(df).transform(df)
    np.testing.assert_allclose(out["sbytes_per_pkt"], df.sbytes / (df.spkts + 1e-9))
    np.testing.assert_allclose(out["dur_per_pkt"], df.dur / (df.spkts + df.dpkts + 1e-9))
    np.testing.assert_allclose(out["bytes_ratio"], df.sbytes / (df.dbytes + 1.0))
    np.testing.assert_allclose(out["ttl_diff"], df.sttl - df.dttl)
    np.testing.assert_allclose(out["sheader_bytes"], df.sbytes - df.smean * df.spkts)
    np.testing.assert_allclose(out["total_bytes"], df.sbytes + df.dbytes)


def test_counts_are_training_value_counts_and_zero_for_unseen_values() -> None:
    train = _selected(unsw_frame(300, seed=1))
    train.loc[train.index[:5], "sbytes"] = np.nan
    test = _selected(unsw_frame(100, seed=2))
    test.loc[test.index[0], "sbytes"] = train["sbytes"].iloc[10]  # a value seen in training
    test.loc[test.index[1], "sbytes"] = -12345.5  # never seen
    test.loc[test.index[2], "sbytes"] = np.nan
    step = DerivedFeatures(NUM).fit(train)
    out = step.transform(test)
    expected = test["sbytes"].map(train["sbytes"].value_counts()).fillna(0.0)
    np.testing.assert_array_equal(out["sbytes_count"].to_numpy(), expected.to_numpy())
    assert out["sbytes_count"].iloc[0] >= 1
    assert out["sbytes_count"].iloc[1] == 0 and out["sbytes_count"].iloc[2] == 0
    assert {f"{c}_count" for c in UNSW_COUNTED} <= set(out.columns)


def test_noise_columns_are_left_out_and_names_follow_the_output() -> None:
    df = _selected(unsw_frame(100))
    step = DerivedFeatures(NUM).fit(df)
    out = step.transform(df)
    assert not set(UNSW_NOISE) & set(out.columns)
    assert list(out.columns) == list(step.get_feature_names_out())
    assert set(step.output_numeric()) == set(out.columns) - set(CAT)
    assert len(out) == len(df)


def test_no_op_on_columns_it_has_no_definitions_for() -> None:
    cic = list(sc.CIC_FEATURES)[:20]
    assert not DerivedFeatures(cic).changes()
    pipe = build_pipeline(SPECS["lgbm"], cic, [], seed=0)
    assert "derive" not in pipe.named_steps


def test_lgbm_pipeline_derives_and_predicts() -> None:
    df = unsw_frame(400)
    pipe = build_pipeline(SPECS["lgbm"], NUM, CAT, seed=1)
    assert "derive" in pipe.named_steps
    pipe.fit(df.iloc[:300], df["label"].to_numpy()[:300])
    names = list(pipe.named_steps["prepare"].get_feature_names_out())
    assert "sbytes_count" in names and "stcpb" not in names
    proba = pipe.predict_proba(df.iloc[300:])
    assert proba.shape == (100, 2)


@pytest.mark.parametrize("name", ["xgb", "rf"])
def test_other_models_keep_their_inputs(name: str) -> None:
    assert "derive" not in build_pipeline(SPECS[name], NUM, CAT, seed=0).named_steps


def test_matrix_and_frame_transforms_agree() -> None:
    df = _selected(unsw_frame(150, seed=5))
    step = DerivedFeatures(NUM).fit(df)
    frame = step.transform(df)
    matrix = step.transform_matrix(df[NUM].to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(frame[step.output_numeric()].to_numpy(), matrix)


def test_compiled_form_replays_the_derived_lgbm_pipeline() -> None:
    """The compiled form computes the derived columns itself and gives the pipeline's
    probabilities, unknown categories, NaN and ±inf included."""
    from flowsentinel.models.compiled import compile_pipeline

    df = unsw_frame(500, seed=8)
    pipe = build_pipeline(SPECS["lgbm"], NUM, CAT, seed=2)
    pipe.fit(df.iloc[:400], df["label"].to_numpy()[:400])
    features = [*NUM, *CAT]
    compiled = compile_pipeline(pipe, features, CAT)
    assert compiled.derive is not None
    test = df.iloc[400:].reset_index(drop=True).copy()
    test.loc[::7, "sbytes"] = np.nan
    test.loc[::9, "dur"] = np.inf
    test.loc[::5, "service"] = "never-seen"
    numeric = test[NUM].to_numpy(dtype=np.float64)
    cats = {c: test[c].astype(str).tolist() for c in CAT}
    np.testing.assert_allclose(
        compiled.proba(numeric, cats), pipe.predict_proba(test[features]), rtol=0, atol=1e-12
    )


@pytest.mark.slow
def test_trained_lgbm_loads_from_mlflow_with_its_compiled_form(tmp_path) -> None:
    """train → MLflow (SQLite in a temporary home) → the service's model set: the derived step
    comes back with the pickled pipeline and the compiled form replays it."""
    from flowsentinel.core.settings import Settings
    from flowsentinel.models.training import TrainConfig, train
    from flowsentinel.service.engine import ModelSet

    settings = Settings(home=tmp_path / "home", n_jobs=1)
    csv = tmp_path / "unsw.csv"
    unsw_frame(600, seed=9).to_csv(csv, index=False)
    result = train(
        TrainConfig(
            sources=[str(csv)], task="attack", models=["lgbm"], n_iter=0, near_constant="none"
        ),
        settings,
    )
    name = result["champion"]["registered_model"]
    served = ModelSet.load([name], settings).get(name)
    assert "derive" in served.detector.pipeline.named_steps
    compiled = served.detector.compiled
    assert compiled.derive is not None
    frame = unsw_frame(120, seed=10)
    numeric = frame[served.body.numeric].to_numpy(dtype=np.float64)
    cats = {c: frame[c].astype(str).tolist() for c in served.body.categorical}
    expected = served.detector.pipeline.predict_proba(frame[served.detector.features])
    np.testing.assert_allclose(compiled.proba(numeric, cats), expected, rtol=0, atol=1e-12)
