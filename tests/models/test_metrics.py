from __future__ import annotations

import numpy as np
import pytest

from flowsentinel.models.metrics import compute_metrics


def test_binary_metrics_against_hand_counts() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
    pred = np.array([0, 1, 0, 0, 1, 1, 0, 0, 1, 0])
    score = np.array([0.1, 0.6, 0.2, 0.3, 0.9, 0.8, 0.4, 0.2, 0.7, 0.1])
    m = compute_metrics(y, pred, np.c_[1 - score, score], ["BENIGN", "DoS"])
    # tp=3 fp=1 fn=1 tn=5
    assert m["confusion_matrix"] == [[5, 1], [1, 3]]
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["fpr"] == pytest.approx(1 / 6)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx((5 / 6 + 3 / 4) / 2)
    # ROC-AUC by counting ordered pairs: positives 0.9 0.8 0.4 0.7 vs negatives
    neg = score[y == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p in score[y == 1] for n in neg]
    assert m["roc_auc"] == pytest.approx(np.mean(pairs))


def test_multiclass_metrics_are_macro_with_per_class_and_benign_fpr() -> None:
    classes = ["BENIGN", "DoS", "PortScan"]
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 0, 1, 1, 2, 0, 2])
    proba = np.eye(3)[pred] * 0.8 + 0.2 / 3
    m = compute_metrics(y, pred, proba, classes)
    assert m["fpr"] == pytest.approx(1 / 3)  # one benign row of three flagged
    assert m["per_class"]["PortScan"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["DoS"]["precision"] == pytest.approx(2 / 3)
    f1s = [m["per_class"][c]["f1"] for c in classes]
    assert m["f1"] == pytest.approx(np.mean(f1s))


def _ece_by_loop(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error written row by row: bin i holds i/15 <= p < (i+1)/15 (the
    last bin also p = 1)."""
    total = 0.0
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        rows = [j for j in range(len(p)) if lo <= p[j] < hi or (i == bins - 1 and p[j] == 1.0)]
        if rows:
            gap = abs(sum(p[j] for j in rows) / len(rows) - sum(y[j] for j in rows) / len(rows))
            total += len(rows) / len(p) * gap
    return total


def test_brier_and_ece_of_a_binary_task_against_sklearn_and_a_loop() -> None:
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(4)
    y = (rng.random(500) < 0.3).astype(int)
    score = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    score[:5] = [0.0, 1.0, 1 / 15, 14 / 15, 0.5]  # bin edges
    m = compute_metrics(y, (score >= 0.5).astype(int), np.c_[1 - score, score], ["BENIGN", "DoS"])
    assert m["brier"] == pytest.approx(brier_score_loss(y, score), abs=1e-12)
    assert m["ece"] == pytest.approx(_ece_by_loop(y, score), abs=1e-12)
    assert m["ece"] > 0.05  # these scores are far from calibrated


def test_ece_of_calibrated_scores_is_small_and_of_constant_scores_is_the_gap() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = rng.random(200_000) < p  # P(attack) is exactly the score
    m = compute_metrics(y.astype(int), (p >= 0.5).astype(int), np.c_[1 - p, p], ["BENIGN", "DoS"])
    assert m["ece"] < 0.005
    y = np.array([0, 0, 0, 1])
    m = compute_metrics(y, np.zeros(4, int), np.tile([0.1, 0.9], (4, 1)), ["BENIGN", "DoS"])
    assert m["ece"] == pytest.approx(0.9 - 0.25)
    assert m["brier"] == pytest.approx((3 * 0.81 + 0.01) / 4)


def test_multiclass_brier_is_the_mean_of_one_vs_rest_and_ece_reads_p_attack() -> None:
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    m = compute_metrics(y, proba.argmax(axis=1), proba, ["BENIGN", "DoS", "PortScan"])
    expected = np.mean([brier_score_loss(y == k, proba[:, k]) for k in range(3)])
    assert m["brier"] == pytest.approx(expected, abs=1e-12)
    assert m["ece"] == pytest.approx(_ece_by_loop((y != 0).astype(int), 1 - proba[:, 0]))
