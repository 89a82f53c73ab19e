"""Preparation: split first, undersample and drop correlated features on training rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from flowsentinel.core.errors import InputError
from flowsentinel.preparation import CorrelatedFeatureDropper, correlation_matrix, prepare

PNG = b"\x89PNG\r\n\x1a\n"
HEATMAPS = (
    "corr_after_cleaning.png",
    "corr_after_resampling.png",
    "corr_after_correlation_drop.png",
)


def pandas_upper_triangle_drop(frame: pd.DataFrame, threshold: float) -> list[str]:
    """The first seed's rule, in plain pandas."""
    corr = frame.corr().abs()
    upper = corr.where(np.triu(np.ones(corr.shape), k=1).astype(bool))
    return [c for c in upper.columns if (upper[c] > threshold).any()]


def correlated_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=rows)
    b = rng.normal(size=rows)
    c = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "a": a,
            "a_twice": 2 * a + rng.normal(scale=0.05, size=rows),  # |r| ~ 1 with a
            "b": b,
            "minus_b": -b + rng.normal(scale=0.1, size=rows),  # negative: |r| counts
            "a_plus_c": a + 0.8 * c,  # |r| ~ 0.78 with a: below 0.9
            "c": c,
            "a_twice_copy": 2 * a + rng.normal(scale=0.05, size=rows),
            "constant": np.full(rows, 3.0),
        }
    )


def test_correlation_matrix_matches_pandas() -> None:
    frame = correlated_frame().drop(columns="constant")
    ours = correlation_matrix(frame)
    assert np.allclose(ours, frame.corr().to_numpy(), atol=1e-10)


def test_correlation_matrix_of_a_constant_column() -> None:
    frame = correlated_frame()
    corr = correlation_matrix(frame)
    k = list(frame.columns).index("constant")
    assert corr[k, k] == 1.0
    assert np.all(np.delete(corr[k], k) == 0.0)
    assert np.isfinite(corr).all()


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9, 0.99])
def test_dropper_matches_the_pandas_rule(threshold: float) -> None:
    frame = correlated_frame()
    want = pandas_upper_triangle_drop(frame, threshold)
    dropper = CorrelatedFeatureDropper(threshold).fit(frame)
    assert sorted(dropper.dropped_) == sorted(want)
    kept = [c for c in frame.columns if c not in want]
    assert list(dropper.get_feature_names_out()) == kept
    assert list(dropper.transform(frame).columns) == kept


def test_dropper_at_0_9() -> None:
    frame = correlated_frame()
    dropper = CorrelatedFeatureDropper(0.9).fit(frame)
    assert set(dropper.dropped_) == {"a_twice", "minus_b", "a_twice_copy"}
    partner, r = dropper.dropped_["a_twice"]
    assert partner == "a"
    assert r == pytest.approx(abs(frame["a"].corr(frame["a_twice"])))


def test_dropper_on_arrays() -> None:
    frame = correlated_frame()
    values = frame.to_numpy()
    dropper = CorrelatedFeatureDropper(0.9).fit(values)
    out = dropper.transform(values)
    want = pandas_upper_triangle_drop(frame, 0.9)
    keep = [i for i, c in enumerate(frame.columns) if c not in want]
    assert np.array_equal(out, values[:, keep])
    assert dropper.n_features_in_ == frame.shape[1]


def test_dropper_passes_non_numeric_columns() -> None:
    frame = correlated_frame().assign(proto=["tcp", "udp"] * 200)
    out = CorrelatedFeatureDropper(0.9).fit_transform(frame)
    assert "proto" in out.columns
    assert "a_twice" not in out.columns


def test_dropper_is_an_sklearn_transformer() -> None:
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    dropper = clone(CorrelatedFeatureDropper(0.8))
    assert dropper.get_params() == {"threshold": 0.8}
    frame = correlated_frame()
    out = make_pipeline(dropper, StandardScaler()).fit_transform(frame)
    assert out.shape == (len(frame), frame.shape[1] - len(pandas_upper_triangle_drop(frame, 0.8)))


# ------------------------------------------------------------------------------------------
# prepare


def write_clean_dir(folder: Path, rows: int = 1_000, positive_share: float = 0.25) -> pl.DataFrame:
    """A clean.parquet as `data clean` writes it: features, Label, Family, Target, source_file."""
    rng = np.random.default_rng(1)
    target = (rng.random(rows) < positive_share).astype(np.int8)
    x = rng.normal(size=rows) + target
    frame = pl.DataFrame(
        {
            "Flow Duration": rng.gamma(2.0, 1000.0, size=rows),
            "Total Fwd Packets": x,
            "Subflow Fwd Packets": x * 1.0001 + rng.normal(scale=0.001, size=rows),
            "Flow Bytes/s": rng.normal(size=rows),
            "Idle Mean": rng.normal(size=rows) * 3,
            "Idle Max": rng.normal(size=rows) * 3,
            "Label": np.where(target == 1, "DoS Hulk", "BENIGN"),
            "Family": np.where(target == 1, "DoS", "BENIGN"),
            "Target": pl.Series(target, dtype=pl.Int8),
            "source_file": ["/data/flows.csv"] * rows,
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / "clean.parquet")
    return frame


def class_counts(frame: pl.DataFrame) -> dict[int, int]:
    return dict(frame.group_by("Target").len().iter_rows())


def test_prepare_writes_everything(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    summary = prepare(tmp_path / "clean", tmp_path / "prep", test_size=0.2, seed=42)
    out = tmp_path / "prep"
    for name in ("train.parquet", "test.parquet", "preparation.json", *HEATMAPS):
        assert (out / name).is_file(), name
    for name in HEATMAPS:
        assert (out / name).read_bytes()[:8] == PNG
    saved = json.loads((out / "preparation.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    train = pl.read_parquet(out / "train.parquet")
    test = pl.read_parquet(out / "test.parquet")
    n = clean.height
    assert saved["rows"]["clean"] == n
    assert saved["rows"]["test"] == test.height == math.ceil(0.2 * n)
    assert saved["rows"]["train_before_resampling"] == n - test.height
    assert saved["rows"]["train"] == train.height


def test_test_part_keeps_the_natural_class_ratio(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    prepare(tmp_path / "clean", test_size=0.2, seed=42, heatmaps=False)
    test = pl.read_parquet(tmp_path / "clean" / "test.parquet")
    clean_counts = class_counts(clean)
    test_counts = class_counts(test)
    for cls, count in clean_counts.items():
        assert abs(test_counts[cls] - count * 0.2) <= 1, (cls, test_counts, clean_counts)
    share_clean = clean_counts[1] / clean.height
    share_test = test_counts[1] / test.height
    assert share_test == pytest.approx(share_clean, abs=1 / test.height)


def test_training_part_is_undersampled_to_balance(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    summary = prepare(tmp_path / "clean", seed=42, heatmaps=False)
    train = pl.read_parquet(tmp_path / "clean" / "train.parquet")
    counts = class_counts(train)
    assert counts[0] == counts[1]
    minority_in_train = (
        class_counts(clean)[1]
        - class_counts(pl.read_parquet(tmp_path / "clean" / "test.parquet"))[1]
    )
    assert counts[1] == minority_in_train
    assert summary["train_classes"] == {str(k): v for k, v in counts.items()}


def test_no_undersampling(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    summary = prepare(tmp_path / "clean", undersample=False, heatmaps=False)
    train = pl.read_parquet(tmp_path / "clean" / "train.parquet")
    assert train.height == summary["rows"]["train_before_resampling"]
    assert train.height + summary["rows"]["test"] == clean.height
    assert not (tmp_path / "clean" / "corr_after_resampling.png").exists()


def test_no_test_row_in_train(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    prepare(tmp_path / "clean", seed=3, heatmaps=False, undersample=False)
    train = pl.read_parquet(tmp_path / "clean" / "train.parquet")
    test = pl.read_parquet(tmp_path / "clean" / "test.parquet")
    columns = [c for c in test.columns if c != "source_file"]
    assert clean.select(columns).is_duplicated().sum() == 0  # rows are distinguishable
    assert test.join(train, on=columns, how="semi").height == 0
    # together they are exactly the clean rows
    both = pl.concat([train.select(columns), test.select(columns)])
    assert both.sort(columns).equals(clean.select(columns).sort(columns))


def test_correlated_features_are_dropped_from_both_parts(tmp_path: Path) -> None:
    write_clean_dir(tmp_path / "clean")
    summary = prepare(tmp_path / "clean", correlation_threshold=0.9, heatmaps=False)
    assert set(summary["correlated_dropped"]) == {"Subflow Fwd Packets"}
    assert summary["correlated_dropped"]["Subflow Fwd Packets"]["with"] == "Total Fwd Packets"
    train = pl.read_parquet(tmp_path / "clean" / "train.parquet")
    test = pl.read_parquet(tmp_path / "clean" / "test.parquet")
    assert train.columns == test.columns
    features = [c for c in train.columns if c not in {"Label", "Family", "Target", "source_file"}]
    assert features == summary["features"]
    assert "Subflow Fwd Packets" not in features
    # no pair of the kept features is correlated above the threshold on the training rows
    corr = train.select(features).to_pandas().corr().abs().to_numpy()
    assert (np.triu(corr, k=1) <= 0.9).all()


def test_no_correlation_drop(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    summary = prepare(tmp_path / "clean", correlation_threshold=None, heatmaps=False)
    assert summary["correlated_dropped"] == {}
    assert summary["features"] == clean.columns[:6]


def test_same_seed_same_split(tmp_path: Path) -> None:
    write_clean_dir(tmp_path / "clean")
    prepare(tmp_path / "clean", tmp_path / "a", seed=9, heatmaps=False)
    prepare(tmp_path / "clean", tmp_path / "b", seed=9, heatmaps=False)
    prepare(tmp_path / "clean", tmp_path / "c", seed=10, heatmaps=False)
    for name in ("train.parquet", "test.parquet"):
        a = pl.read_parquet(tmp_path / "a" / name)
        assert a.equals(pl.read_parquet(tmp_path / "b" / name))
        assert not a.equals(pl.read_parquet(tmp_path / "c" / name))


def test_multiclass_target(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    family = np.array(["BENIGN", "DoS", "PortScan"])[np.arange(clean.height) % 3]
    clean.with_columns(pl.Series("Target", family)).write_parquet(
        tmp_path / "clean" / "clean.parquet"
    )
    summary = prepare(tmp_path / "clean", heatmaps=False)
    assert set(summary["test_classes"]) == {"BENIGN", "DoS", "PortScan"}
    test = pl.read_parquet(tmp_path / "clean" / "test.parquet")
    assert test["Target"].dtype == pl.String


def test_missing_clean_parquet(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data clean"):
        prepare(tmp_path)


def test_one_class_only(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    clean.with_columns(pl.lit(0, pl.Int8).alias("Target")).write_parquet(
        tmp_path / "clean" / "clean.parquet"
    )
    with pytest.raises(InputError, match="one class"):
        prepare(tmp_path / "clean")


def test_a_class_with_one_row(tmp_path: Path) -> None:
    clean = write_clean_dir(tmp_path / "clean")
    target = np.zeros(clean.height, dtype=np.int8)
    target[0] = 1
    clean.with_columns(pl.Series("Target", target)).write_parquet(
        tmp_path / "clean" / "clean.parquet"
    )
    with pytest.raises(InputError, match="fewer than 2"):
        prepare(tmp_path / "clean")


def test_corrupt_clean_parquet(tmp_path: Path) -> None:
    (tmp_path / "clean.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"clean\.parquet"):
        prepare(tmp_path)
