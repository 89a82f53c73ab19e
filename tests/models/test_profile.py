"""The training profile: the novelty threshold marks the stated share of held-out rows, foreign
and impossible values are novel (never a crash), and percentiles agree with a direct count."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from flowsentinel.models.profile import TrainingProfile

FEATURES = ["Flow Duration", "Total Fwd Packets", "Flow Bytes/s", "Flow IAT Min"]


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of heavy-tailed, correlated flow-like values."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    scale = np.where(y == 1, 50.0, 5000.0)
    duration = rng.lognormal(np.log(scale), 1.0)
    packets = rng.poisson(np.where(y == 1, 2, 20)) + 1.0
    rate = packets * 100.0 / duration
    iat = duration / packets * rng.uniform(0.1, 1.0, n)
    return np.column_stack([duration, packets, rate, iat]), y


@pytest.mark.parametrize("share", [0.02, 0.05])
def test_the_threshold_marks_the_stated_share_of_unseen_rows(share: float) -> None:
    X, y = _rows(12_000, seed=1)
    profile = TrainingProfile.fit(X, y, FEATURES, ["BENIGN", "DoS"], seed=0, novel_share=share)
    # the stated share is a ceiling (95 % confidence over the 2,400 held-out rows)
    assert share / 3 <= profile.held_out_novel_share <= share
    fresh, _ = _rows(20_000, seed=2)  # rows of the same distribution never seen
    novel = 1 - profile.assess(fresh).in_distribution.mean()
    assert share / 3 <= novel <= share * 1.1


def test_foreign_and_impossible_values_are_novel() -> None:
    X, y = _rows(4000, seed=3)
    profile = TrainingProfile.fit(X, y, FEATURES, ["BENIGN", "DoS"], seed=0)
    typical = np.median(X, axis=0)
    bad = np.vstack([typical] * 6)
    bad[1, 0] = np.nan
    bad[2, 2] = np.inf
    bad[3, 2] = -np.inf
    bad[4, 0] = -5.0  # a negative duration: no training row was negative
    bad[5] *= 1e6  # every value a million times larger
    found = profile.assess(bad)
    assert found.in_distribution.tolist() == [True, False, False, False, False, False]
    assert np.isfinite(found.novelty).all()
    assert found.out_of_range[1:5].any(axis=1).all() and not found.out_of_range[0].any()
    counts = found.out_of_range_counts(FEATURES)
    assert sum(counts.values()) == int(found.out_of_range.sum())
    assert set(counts) == {FEATURES[j] for j in np.flatnonzero(found.out_of_range.any(axis=0))}
    assert list(counts.values()) == sorted(counts.values(), reverse=True)


def test_percentiles_agree_with_a_direct_count() -> None:
    X, y = _rows(5000, seed=4)
    profile = TrainingProfile.fit(X, y, FEATURES, ["BENIGN", "DoS"], seed=0)
    values = np.quantile(X[:, 0], [0.05, 0.3, 0.5, 0.9])
    got = profile.percentile(0, values)
    for c in (0, 1):
        direct = (X[y == c, 0][None, :] < values[:, None]).mean(axis=1) * 100
        np.testing.assert_allclose(got[c], direct, atol=1.5)
    assert np.isnan(profile.percentile(0, np.array([np.nan]))).all()


class Holder:
    """Stands for a fitted pipeline (any picklable object)."""


def test_the_profile_travels_with_the_pipeline() -> None:
    X, y = _rows(1000, seed=5)
    profile = TrainingProfile.fit(X, y, FEATURES, ["BENIGN", "DoS"], seed=0)
    holder = Holder()
    profile.attach(holder)
    again = TrainingProfile.of(pickle.loads(pickle.dumps(holder)))
    assert again is not None
    np.testing.assert_array_equal(again.assess(X).novelty, profile.assess(X).novelty)
    assert TrainingProfile.of(object()) is None
