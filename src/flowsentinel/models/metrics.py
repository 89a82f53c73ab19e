"""Test-set metrics of a detector; every number is computed on the protocol's test rows.

Besides the decision metrics, two measure how far the probabilities can be read as
probabilities: the Brier score (binary: on P(attack); multiclass: the mean over the classes of
each class's one-vs-rest Brier score) and the expected calibration error (:func:`ece`: 15
equal-width bins of the attack probability 1 − P(benign), the score the decision threshold acts
on, in binary and multiclass tasks alike).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

METRIC_NAMES: tuple[str, ...] = (
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "pr_auc",
    "accuracy",
    "balanced_accuracy",
    "fpr",
    "brier",
    "ece",
)

#: the number of equal-width probability bins of :func:`ece` and of the reliability plot
ECE_BINS = 15


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    try:
        value = float(fn(*args, **kwargs))
    except ValueError:  # e.g. a single class in y_true
        return None
    return value if np.isfinite(value) else None


def brier(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Brier score of class probabilities ``proba`` (one column per class, codes ``y_true``):
    binary, the mean squared error of P(class 1); multiclass, the mean over the classes of
    their one-vs-rest Brier scores."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    onehot = y_true[:, None] == np.arange(proba.shape[1])
    if proba.shape[1] == 2:
        return float(np.mean((proba[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean((proba - onehot) ** 2))


def reliability(
    y_true: np.ndarray, score: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of ``score`` in [0, 1] (the last bin includes 1): the row count, the
    mean score and the share of positive rows (NaN for an empty bin)."""
    score = np.clip(np.asarray(score, dtype=np.float64), 0.0, 1.0)
    positive = np.asarray(y_true).astype(bool)
    which = np.minimum((score * bins).astype(np.intp), bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(which, weights=score, minlength=bins) / count
        share = np.bincount(which, weights=positive, minlength=bins) / count
    return count, mean, share


def ece(y_true: np.ndarray, score: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of ``score`` (probability of the positive rows): the
    row-weighted mean over ``bins`` equal-width bins of |mean score − share of positives|."""
    count, mean, share = reliability(y_true, score, bins)
    filled = count > 0
    return float(np.sum(count[filled] * np.abs(mean[filled] - share[filled])) / count.sum())


def compute_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Binary: the positive class is index 1. Multiclass: macro averages, plus per class; the
    false-positive rate is the share of benign rows (index 0) flagged as any attack; Brier
    score and expected calibration error as the module says."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(range(len(classes)))
    binary = len(classes) == 2
    avg = "binary" if binary else "macro"
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    benign = cm[0].sum()
    out: dict[str, Any] = {
        "f1": float(skm.f1_score(y_true, y_pred, average=avg, labels=labels, zero_division=0)),
        "precision": float(
            skm.precision_score(y_true, y_pred, average=avg, labels=labels, zero_division=0)
        ),
        "recall": float(
            skm.recall_score(y_true, y_pred, average=avg, labels=labels, zero_division=0)
        ),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "fpr": float((benign - cm[0, 0]) / benign) if benign else None,
    }
    if binary:
        score = proba[:, 1]
        out["roc_auc"] = _safe(skm.roc_auc_score, y_true, score)
        out["pr_auc"] = _safe(skm.average_precision_score, y_true, score)
    else:
        present = np.unique(y_true)
        p = proba[:, present]
        p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
        out["roc_auc"] = (
            _safe(skm.roc_auc_score, y_true, p, multi_class="ovr", labels=present)
            if len(present) > 2
            else None
        )
        onehot = (y_true[:, None] == labels).astype(int)
        out["pr_auc"] = _safe(
            skm.average_precision_score, onehot[:, present], proba[:, present], average="macro"
        )
        p_, r_, f_, s_ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0
        )
        out["per_class"] = {
            c: {
                "precision": float(p_[i]),
                "recall": float(r_[i]),
                "f1": float(f_[i]),
                "support": int(s_[i]),
            }
            for i, c in enumerate(classes)
        }
    if len(y_true):
        out["brier"] = brier(y_true, proba)
        out["ece"] = ece(y_true != 0, 1.0 - proba[:, 0])
    else:
        out["brier"] = out["ece"] = None
    out["confusion_matrix"] = cm.tolist()
    return out
