"""What a model was trained on, kept with the model: per-class quantiles of every numeric input
and a novelty detector, so that every verdict can say where its values lie among the training
rows and whether the flow looks like anything the model has seen.

The novelty score is the distance of a flow to its nearest training row in a robust-scaled
space (each value signed-``log1p``-transformed, centred on the training median and divided by the
interquartile range, so that heavy-tailed counters and rates weigh alike). The reference rows
are a class-stratified sample (at most 1,024) of the fitting part of the training rows; the
threshold is the quantile of the distances of the *held-out* part (rows the reference never saw)
that leaves at most ``novel_share`` of rows like them above it, with 95 % confidence (default
2 %). ``novelty`` is reported as the ratio
to that threshold: above 1 is outside the training distribution. A flow with a non-finite value,
or a negative value where every training row was non-negative (a negative duration), is novel
whatever its distance.

Chosen by measurement (``benchmarks/bench_novelty.py``; figures in ``docs/trust.md``): with every
threshold at 2 % of held-out lab rows, an isolation forest on the same values marked 3 % of
CIC-IDS2017 rows and 9 % of real benign captures novel, the distance 99.9 % and 75 %: only the
distance notices traffic from another network. The nearest row (``k = 1``) separates the
sources as well as the mean of the 5 nearest and costs a reduction instead of a partition; 1,024
reference rows separate them as well as 4,096 at a quarter of the cost.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.lognormal(3, 1, size=(2000, 3))
>>> y = rng.integers(0, 2, 2000)
>>> p = TrainingProfile.fit(X, y, ["a", "b", "c"], ["BENIGN", "DoS"], seed=0)
>>> a = p.assess(np.array([[20.0, 20.0, 20.0], [1e9, 1e9, 1e9]]))
>>> a.in_distribution.tolist()
[True, False]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: percentiles kept per class and feature (0, 1, ..., 100)
GRID = np.arange(101, dtype=np.float64)
#: the attribute of a fitted pipeline that carries its profile (pickled with the model)
ATTRIBUTE = "flowsentinel_profile_"
#: a non-finite value counts as this many interquartile ranges from the median
_FAR = 1e3


def _slog(X: np.ndarray) -> np.ndarray:
    return np.sign(X) * np.log1p(np.abs(X))


@dataclass
class Assessment:
    """Novelty of a batch of flows."""

    novelty: np.ndarray  # distance / threshold (> 1: novel)
    in_distribution: np.ndarray  # bool
    out_of_range: np.ndarray  # (flows, features) bool: outside the training rows' 0.5-99.5 %

    def out_of_range_counts(self, features: list[str]) -> dict[str, int]:
        """Per feature with any, the number of flows whose value is out of range, most first."""
        counts = self.out_of_range.sum(axis=0)
        order = np.argsort(-counts, kind="stable")
        return {features[j]: int(counts[j]) for j in order if counts[j]}


@dataclass
class TrainingProfile:
    """Per-class quantiles and a nearest-rows novelty detector over a model's numeric inputs."""

    features: list[str]
    classes: list[str]
    quantiles: np.ndarray  # (classes, features, len(GRID)), NaN where a class has no value
    counts: np.ndarray  # training rows per class
    median: np.ndarray  # of the transformed values
    iqr: np.ndarray
    low: np.ndarray  # 0.5 % and 99.5 % of the raw values, all classes
    high: np.ndarray
    nonnegative: np.ndarray  # bool: no training row was negative
    reference: np.ndarray  # scaled reference rows (float32)
    threshold: float
    k: int = 1
    novel_share: float = 0.02
    held_out_novel_share: float = field(default=0.0)

    # --- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        features: list[str],
        classes: list[str],
        *,
        seed: int,
        novel_share: float = 0.02,
        k: int = 1,
        max_reference: int = 1024,
    ) -> TrainingProfile:
        """Describe the training rows ``X`` (numeric inputs, NaN allowed) of classes ``y``
        (indices into ``classes``); ``novel_share`` of held-out rows will score as novel."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        finite = np.where(np.isfinite(X), X, np.nan)
        quantiles = np.full((len(classes), X.shape[1], len(GRID)), np.nan)
        counts = np.zeros(len(classes), dtype=np.int64)
        for c in range(len(classes)):
            rows = finite[y == c]
            counts[c] = len(rows)
            if len(rows):
                quantiles[c] = _nanpercentile(rows, GRID).T
        T = _slog(finite)
        median = np.nan_to_num(np.nanmedian(T, axis=0))
        q1, q3 = np.nan_to_num(np.nanpercentile(T, [25, 75], axis=0))
        spread = q3 - q1
        # a feature constant on most rows: the spread of all its values, else 1
        full = np.nan_to_num(np.nanmax(T, axis=0) - np.nanmin(T, axis=0))
        iqr = np.where(spread > 0, spread, np.where(full > 0, full / 4, 1.0))
        low, high = np.nan_to_num(np.nanpercentile(finite, [0.5, 99.5], axis=0))
        profile = cls(
            features=list(features),
            classes=list(classes),
            quantiles=quantiles,
            counts=counts,
            median=median,
            iqr=iqr,
            low=low,
            high=high,
            nonnegative=~np.any(finite < 0, axis=0),
            reference=np.empty((0, X.shape[1]), dtype=np.float32),
            threshold=1.0,
            k=k,
            novel_share=novel_share,
        )
        profile._fit_novelty(X, y, seed, max_reference)
        return profile

    def _fit_novelty(self, X: np.ndarray, y: np.ndarray, seed: int, max_reference: int) -> None:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(X))
        held = order[: max(1, len(X) // 5)]
        fit = order[len(held) :]
        if len(fit) > max_reference:
            fit = _stratified(fit, y, max_reference, rng)
        self.reference = self._scaled(X[fit]).astype(np.float32)
        distances = self._distance(X[held])
        self.threshold = float(np.quantile(distances, _upper_quantile(self.novel_share, len(held))))
        if self.threshold <= 0:
            self.threshold = float(np.max(distances)) or 1.0
        self.held_out_novel_share = float(np.mean(distances > self.threshold))

    # --- scoring ------------------------------------------------------------------------------
    def _scaled(self, X: np.ndarray) -> np.ndarray:
        Z = (_slog(np.asarray(X, dtype=np.float64)) - self.median) / self.iqr
        return np.where(np.isfinite(Z), Z, _FAR)

    def _distance(self, X: np.ndarray) -> np.ndarray:
        """Mean Euclidean distance to the ``k`` nearest reference rows (exact, by blocks).

        ``|z - r|² = |z|² + (|r|² - 2 z·r)``: the bracket for every reference row is one matrix
        product of ``[z, 1]`` with ``[-2 r, |r|²]`` (a broadcast subtraction over the whole
        distance matrix cost five times the product)."""
        Z = self._scaled(X).astype(np.float32)
        ref = self.reference
        augmented = np.hstack([-2 * ref, np.einsum("ij,ij->i", ref, ref)[:, None]]).T
        k = min(self.k, len(ref))
        out = np.empty(len(Z))
        for start in range(0, len(Z), 1024):
            block = np.ones((min(1024, len(Z) - start), Z.shape[1] + 1), dtype=np.float32)
            block[:, :-1] = Z[start : start + len(block)]
            partial = block @ augmented
            if k == 1:  # a reduction: several times cheaper than a partition
                nearest = partial.argmin(axis=1)[:, None]
            else:
                nearest = np.argpartition(partial, k - 1, axis=1)[:, :k]
            # the product finds the neighbours; their distances are taken directly, as the
            # product's cancellation (and its blocking, which follows the batch size) would
            # put noise in the distance of a flow very close to a reference row
            diff = block[:, None, :-1].astype(np.float64) - ref[nearest]
            d2 = np.einsum("ijk,ijk->ij", diff, diff)
            out[start : start + len(block)] = np.sqrt(d2).mean(axis=1)
        return out

    def assess(self, X: np.ndarray) -> Assessment:
        """Novelty of the flows ``X`` (numeric inputs in :attr:`features` order)."""
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 0:
            empty = np.empty(0)
            return Assessment(empty, empty.astype(bool), np.empty((0, X.shape[1]), dtype=bool))
        novelty = self._distance(X) / self.threshold
        impossible = ~np.isfinite(X) | ((X < 0) & self.nonnegative)
        # NaN compares False: a missing value is reported by ``impossible``, not here
        out_of_range = impossible | (self.low > X) | (self.high < X)
        inside = (novelty <= 1.0) & ~impossible.any(axis=1)
        return Assessment(novelty, inside, out_of_range)

    def percentile(self, feature: int, values: np.ndarray) -> np.ndarray:
        """Where ``values`` of one feature lie among each class's training rows: the share (in
        %) of the class's rows below each value, shape (classes, values); NaN when unknown."""
        values = np.asarray(values, dtype=np.float64)
        return self.ranks(np.full(values.shape, feature), values)

    def ranks(self, features: np.ndarray, values: np.ndarray) -> np.ndarray:
        """:meth:`percentile` for any array of (feature index, value) pairs at once: shape
        (classes, *values.shape); NaN for a non-finite value or a class without rows."""
        values = np.asarray(values, dtype=np.float64)
        grids = self.quantiles[:, features, :]  # (classes, *shape, grid)
        v = values[None, ..., None]
        below = (grids < v).sum(axis=-1)
        at_or_below = (grids <= v).sum(axis=-1)
        out = np.clip((below + at_or_below) / 2.0 - 0.5, 0.0, 100.0)
        unknown = ~np.isfinite(grids).all(axis=-1) | ~np.isfinite(values)[None, ...]
        return np.where(unknown, np.nan, out)

    # --- with the model -----------------------------------------------------------------------
    def attach(self, pipeline: Any) -> None:
        """Keep the profile with a fitted pipeline (pickled with it, logged with it)."""
        setattr(pipeline, ATTRIBUTE, self)

    @staticmethod
    def of(pipeline: Any) -> TrainingProfile | None:
        """The profile a pipeline carries (``None`` for models trained without one)."""
        found = getattr(pipeline, ATTRIBUTE, None)
        return found if isinstance(found, TrainingProfile) else None

    def describe(self) -> dict[str, Any]:
        return {
            "detector": f"distance to the nearest of {len(self.reference):,} training rows"
            + ("" if self.k == 1 else f" (mean of the {self.k} nearest)")
            + " (signed log1p, robust-scaled)",
            "threshold": self.threshold,
            "novel_share": self.novel_share,
            "held_out_novel_share": self.held_out_novel_share,
        }


def _upper_quantile(share: float, n: int) -> float:
    """The quantile of ``n`` held-out distances above which at most ``share`` of rows like them
    fall, with 95 % confidence (one-sided normal bound of a binomial share): the stated share is
    a ceiling, not an average that half of the models would exceed."""
    return float(min(1.0, 1.0 - share + 1.645 * np.sqrt(share * (1.0 - share) / max(n, 1))))


def _nanpercentile(rows: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Percentiles of each column over its finite values (a column with none: NaN)."""
    out = np.full((len(grid), rows.shape[1]), np.nan)
    present = np.isfinite(rows).any(axis=0)
    if present.any():
        out[:, present] = np.nanpercentile(rows[:, present], grid, axis=0)
    return out


def _stratified(rows: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` of ``rows`` in the class proportions of ``y[rows]`` (every class kept)."""
    labels = y[rows]
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / counts.sum() * size).astype(int))
    picked = [
        rng.choice(rows[labels == c], size=min(q, n), replace=False)
        for c, q, n in zip(classes, quota, counts, strict=True)
    ]
    return np.sort(np.concatenate(picked))
