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
