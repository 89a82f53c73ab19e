"""Test-set metrics of a detector; every number is computed on the protocol's test rows."""

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
)


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    try:
        value = float(fn(*args, **kwargs))
    except ValueError:  # e.g. a single class in y_true
        return None
    return value if np.isfinite(value) else None


def compute_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Binary: the positive class is index 1. Multiclass: macro averages, plus per class; the
    false-positive rate is the share of benign rows (index 0) flagged as any attack."""
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
    out["confusion_matrix"] = cm.tolist()
    return out
