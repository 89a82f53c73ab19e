from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from flowsentinel.core.errors import InputError
from flowsentinel.models import protocols as pr

FEATURES = ["a", "b"]


def _encode(frame: pl.DataFrame) -> np.ndarray:
    return frame["Target"].cast(pl.Int64).to_numpy()


def _frame(n: int = 1000, dup_every: int = 5, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10_000, n).astype(float)
    a[::dup_every] = 7.0  # many exact duplicate feature rows
    b = np.where(a == 7.0, 1.0, rng.random(n))
    target = (rng.random(n) < 0.2).astype(np.int8)
    return pl.DataFrame({"a": a, "b": b, "Target": target, "is_ftp_login": rng.integers(0, 3, n)})


def _keys(df) -> set[tuple[float, float]]:
    return set(map(tuple, df[FEATURES].to_numpy().tolist()))


def test_holdout_has_no_feature_row_on_both_sides_and_the_natural_ratio() -> None:
    frame = _frame()
    split = pr.holdout(frame, FEATURES, _encode, test_size=0.25, seed=3)
    assert not (_keys(split.train) & _keys(split.test))
    distinct = frame.select(FEATURES).unique().height
    assert len(split.train) + len(split.test) == distinct
    assert split.details["duplicate_feature_rows_dropped"] == frame.height - distinct
    assert abs(split.y_test.mean() - split.y_train.mean()) < 0.02  # stratified, not resampled
    assert split.undersample_in_pipeline


def test_seed_protocol_for_cic_undersamples_before_a_70_30_split() -> None:
    frame = _frame()
    split = pr.seed_protocol(frame, FEATURES, _encode, "cicids2017")
    y = _encode(frame)
    assert len(split.y_train) + len(split.y_test) == 2 * np.bincount(y).min()
    assert len(split.y_test) == pytest.approx(0.3 * (len(split.y_train) + len(split.y_test)), abs=1)
    assert not split.undersample_in_pipeline


def test_seed_protocol_for_unsw_drops_ftp_login_2_and_keeps_duplicates() -> None:
    frame = _frame()
    split = pr.seed_protocol(frame, FEATURES, _encode, "unsw-nb15")
    twos = int((frame["is_ftp_login"] == 2).sum())
    assert split.details["is_ftp_login_2_dropped"] == twos
    assert len(split.y_train) + len(split.y_test) == frame.height - twos
    assert len(split.y_test) == pytest.approx(0.2 * (frame.height - twos), abs=1)


def test_files_protocol_drops_test_rows_seen_in_training_and_official_keeps_them() -> None:
    train, test = _frame(seed=1), _frame(seed=2)
    seen = test.join(train.select(FEATURES).unique(), on=FEATURES, how="semi").height
    assert seen > 0
    split = pr.file_protocol(train, test, FEATURES, _encode)
    assert not (_keys(split.train) & _keys(split.test))
    assert split.details["test_rows_dropped_as_seen"] == seen
    assert len(split.test) == test.height - seen
    official = pr.file_protocol(train, test, FEATURES, _encode, official=True)
    assert len(official.test) == test.height
    assert official.details["test_rows_also_in_training"] == seen


def test_single_class_is_refused() -> None:
    frame = _frame().with_columns(pl.lit(0, pl.Int8).alias("Target"))
    with pytest.raises(InputError, match="single class"):
        pr.holdout(frame, FEATURES, _encode)
