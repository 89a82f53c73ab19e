"""Plots of a fitted detector: confusion matrix (as the seed's), ROC and PR curves, reliability
(calibration) curve, importance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn.inspection
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from flowsentinel.models.metrics import ECE_BINS, ece, reliability


def _plt() -> Any:
    # lazy: matplotlib + seaborn cost 1.0 s, and the Agg backend chosen at import would be
    # imposed on every process that imports training or evaluation
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_heatmap(cm: np.ndarray, classes: list[str], path: Path, title: str) -> Path:
    import seaborn as sns  # lazy: with matplotlib, 1.0 s (see _plt)

    plt = _plt()
    size = max(4.5, 0.6 * len(classes) + 3)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(
        np.asarray(cm),
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        xticklabels=classes,
        yticklabels=classes,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc_pr_curves(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], path: Path, title: str
) -> Path:
    """ROC (left) and precision-recall (right); one curve per class for multiclass."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.6))
    targets = [1] if len(classes) == 2 else [i for i in range(len(classes)) if (y_true == i).any()]
    for k in targets:
        truth = (y_true == k).astype(int)
        if truth.min() == truth.max():
            continue
        fpr, tpr, _ = roc_curve(truth, proba[:, k])
        prec, rec, _ = precision_recall_curve(truth, proba[:, k])
        a1.plot(fpr, tpr, label=f"{classes[k]} (AUC {auc(fpr, tpr):.4f})")
        a2.plot(rec, prec, label=classes[k])
    a1.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    a1.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    a2.set(xlabel="recall", ylabel="precision", title="precision-recall")
    for a in (a1, a2):
        a.legend(fontsize=7, loc="lower right" if a is a1 else "lower left")
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_plot(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], path: Path, title: str
) -> Path:
    """Reliability diagram of the attack probability 1 − P(benign) (the score the decision
    threshold acts on): per equal-width bin (as the expected calibration error counts them)
    the share of attack rows against the mean probability, above the rows per bin."""
    plt = _plt()
    attack = np.asarray(y_true) != 0
    score = 1.0 - np.asarray(proba, dtype=np.float64)[:, 0]
    count, mean, share = reliability(attack, score)
    filled = count > 0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="perfectly calibrated")
    label = f"{classes[1] if len(classes) == 2 else 'any attack'} (ECE {ece(attack, score):.4f})"
    top.plot(mean[filled], share[filled], marker="o", label=label)
    top.set(ylabel="share of attack rows", title="reliability", xlim=(0, 1), ylim=(0, 1))
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    bottom.bar(edges[:-1], count, width=np.diff(edges), align="edge", color="#3b75af")
    bottom.set(xlabel="P(attack) = 1 − P(benign)", ylabel="rows", yscale="log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def feature_importance(
    pipeline: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    seconds_per_row: float | None = None,
    budget_seconds: float = 30.0,
) -> pd.Series:
    """``X`` holds exactly the model's input columns.

    The estimator's own importances (mapped to the columns it saw) or |coefficients|; for a
    model with neither, permutation importance on the input columns (F1, 2 repeats, ≤ 1,000
    test rows; fewer, down to 100, when ``seconds_per_row`` — the model's measured prediction
    time per row — says 1,000 would take longer than ``budget_seconds``: k-NN with a Minkowski
    ``p`` ≥ 3 scores a few hundred rows per second)."""
    model = pipeline[-1]
    own = getattr(model, "feature_importances_", None)
    if own is None and hasattr(model, "coef_") and "pca" not in pipeline.named_steps:
        own = np.abs(np.asarray(model.coef_)).mean(axis=0)
    if own is not None and "pca" not in pipeline.named_steps:
        try:
            names = pipeline[:-1].get_feature_names_out()
        except (AttributeError, ValueError):
            names = None
        if names is not None and len(names) == len(own):
            return pd.Series(np.asarray(own, dtype=float), index=names).sort_values(ascending=False)
    rng = np.random.default_rng(seed)
    rows = 1000
    if seconds_per_row:  # every feature and repeat scores the sample once more
        rows = int(budget_seconds / (seconds_per_row * 2 * max(1, X.shape[1])))
        rows = max(100, min(1000, rows))
    take = rng.choice(len(X), size=min(rows, len(X)), replace=False)
    scoring = "f1" if len(np.unique(y)) == 2 and set(np.unique(y)) <= {0, 1} else "f1_macro"
    result = sklearn.inspection.permutation_importance(
        pipeline, X.iloc[take], y[take], scoring=scoring, n_repeats=2, random_state=seed, n_jobs=1
    )
    return pd.Series(result.importances_mean, index=list(X.columns)).sort_values(ascending=False)


def importance_bar(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    plt = _plt()
    head = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(head) + 1.5))
    ax.barh([str(i) for i in head.index], head.to_numpy(), color="#3b75af")
    ax.set_title(title)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
