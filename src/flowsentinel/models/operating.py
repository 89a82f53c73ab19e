"""The operating point of a detector: the decision threshold that keeps its false-positive rate
at most a target (``train --max-fpr``).

A flow is an attack when its attack probability ``1 − P(benign)`` reaches the threshold
(:meth:`~flowsentinel.models.detector.Verdicts.from_proba`). The threshold is chosen on
out-of-fold probabilities of the training rows (every training row scored by a copy of the
model fitted without it), never on the test rows: it is the smallest value at which the share
of benign training rows flagged is at most the target.

With ``n`` benign rows a rate ``r`` allows ``k = ⌊r·n⌋`` flags. The benign scores sorted from
the highest, ``s(1) ≥ s(2) ≥ …``, flag at most ``k`` rows exactly when the threshold is above
``s(k+1)``: the threshold is the next float above ``s(k+1)``. Ties make the rate discrete: when
``s(k) = s(k+1)`` the threshold flags fewer than ``k`` rows (every row of a tied score is
flagged or none is). With fewer than ``1/r`` benign rows, ``k = 0`` and the threshold lies above
every benign score.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from flowsentinel.core.errors import InputError


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold chosen for a false-positive rate, and what it rests on."""

    threshold: float
    max_fpr: float
    benign_rows: int  # benign training rows scored out of fold
    allowed_flags: int  # ⌊max_fpr · benign_rows⌋
    flagged: int  # benign training rows at or above the threshold (≤ allowed_flags)
    folds: int

    @property
    def oof_fpr(self) -> float:
        """The false-positive rate of the threshold on the out-of-fold benign scores."""
        return self.flagged / self.benign_rows

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "oof_fpr": self.oof_fpr}

    def describe(self) -> str:
        """One line for the ``train`` output."""
        return (
            f"threshold {self.threshold:.6g} for FPR ≤ {self.max_fpr:g}: {self.flagged} of "
            f"{self.benign_rows:,} benign training rows flagged out of fold "
            f"(the rate allows {self.allowed_flags})"
        )


def check_max_fpr(max_fpr: float) -> None:
    """A target rate must lie strictly between 0 and 1 (one line naming the option otherwise)."""
    if not 0.0 < max_fpr < 1.0:  # NaN fails too
        raise InputError(f"--max-fpr must be between 0 and 1 (exclusive), got {max_fpr}")


def allowed_flags(max_fpr: float, benign_rows: int) -> int:
    """``⌊max_fpr · benign_rows⌋``, robust to the rounding of the product (0.001 · 3000 is
    2.9999999999999996 in floating point and allows 3 flags)."""
    return min(math.floor(max_fpr * benign_rows * (1 + 1e-12)), benign_rows - 1)


def threshold_for_fpr(benign_scores: np.ndarray, max_fpr: float, folds: int = 0) -> OperatingPoint:
    """The smallest threshold whose share of ``benign_scores`` at or above it is ≤ ``max_fpr``
    (see the module docstring)."""
    check_max_fpr(max_fpr)
    scores = np.asarray(benign_scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0:
        raise InputError("the training rows hold no benign row: --max-fpr cannot be met")
    k = allowed_flags(max_fpr, len(scores))
    ordered = np.sort(scores)[::-1]
    threshold = float(np.nextafter(ordered[k], np.inf))
    flagged = int(np.count_nonzero(scores >= threshold))
    return OperatingPoint(threshold, float(max_fpr), len(scores), k, flagged, folds)


def out_of_fold_proba(
    pipeline: Any, X: Any, y: np.ndarray, folds: int, seed: int, n_jobs: int = 1
) -> np.ndarray:
    """Probabilities of every training row from a copy of ``pipeline`` (unfitted, with its
    chosen parameters) fitted on the other stratified folds (``n_jobs`` folds at a time);
    columns in the order of ``np.unique(y)``."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(clone(pipeline), X, y, cv=cv, method="predict_proba", n_jobs=n_jobs)
    return np.asarray(proba, dtype=np.float64)
