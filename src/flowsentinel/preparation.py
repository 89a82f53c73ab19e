"""Preparation of cleaned flows, as the first seed describes it, with its mistakes fixed.

The seed undersampled the whole frame before splitting, and dropped correlated features from a
frame other than the one it saved. Here the rows are split first (stratified, seeded); the
undersampler and the correlated-feature list are fitted on the training part only, and the same
feature list is applied to the test part and saved (``preparation.json``), so that training and
serving see the same columns. Three correlation heatmaps are drawn as in the seed (coolwarm):
after cleaning, after resampling, after dropping correlated features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from imblearn.under_sampling import RandomUnderSampler
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import train_test_split

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError


def correlation_matrix(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns (0 where a column is constant), via one BLAS product."""
    values = np.asarray(X, dtype=np.float64)
    if values.shape[0] < 2:
        return np.eye(values.shape[1])
    centred = values - values.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (centred.T @ centred) / np.outer(norms, norms)
    corr[~np.isfinite(corr)] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


class CorrelatedFeatureDropper(TransformerMixin, BaseEstimator):
    """Drop every column whose absolute correlation with an earlier column exceeds ``threshold``.

    The rule of the first seed (upper triangle of ``|corr|``), as a scikit-learn transformer so
    that it is fitted on training rows inside a pipeline and travels with the model.
    Non-numeric columns of a DataFrame are passed through untouched.
    """

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> CorrelatedFeatureDropper:
        if isinstance(X, pd.DataFrame):
            names = np.asarray(X.columns, dtype=object)
            numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
            values = X[numeric].to_numpy(dtype=np.float64)
        else:
            values = np.asarray(X, dtype=np.float64)
            names = np.asarray([f"x{i}" for i in range(values.shape[1])], dtype=object)
            numeric = list(names)
        corr = np.abs(correlation_matrix(values))
        upper = np.triu(corr, k=1)
        drop_mask = (upper > self.threshold).any(axis=0)
        partner = upper.argmax(axis=0)
        self.dropped_ = {
            str(numeric[j]): (str(numeric[partner[j]]), float(upper[partner[j], j]))
            for j in np.flatnonzero(drop_mask)
        }
        self.feature_names_in_ = names
        self.n_features_in_ = len(names)
        self.keep_ = np.array([str(n) not in self.dropped_ for n in names])
        return self

    def transform(self, X: Any) -> Any:
        if isinstance(X, pd.DataFrame):
            return X[[str(n) for n in self.get_feature_names_out()]]
        return np.asarray(X)[:, self.keep_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_in_[self.keep_], dtype=object)


def save_heatmap(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """A coolwarm correlation heatmap of the numeric columns (as the seed's figures)."""
    # lazy: matplotlib + seaborn cost 1.0 s, and the zoo (every training) imports this module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    numeric = frame.select_dtypes(include="number")
    corr = pd.DataFrame(correlation_matrix(numeric), index=numeric.columns, columns=numeric.columns)
    size = max(8.0, 0.28 * len(corr))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(
        corr,
        cmap="coolwarm",
        vmin=-1,
        vmax=1,
        annot=False,
        square=True,
        ax=ax,
        xticklabels=True,
        yticklabels=True,
    )
    ax.set_title(f"{title} ({numeric.shape[1]} columns, {len(numeric):,} rows)")
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def prepare(
    clean_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    test_size: float = 0.2,
    seed: int = 42,
    undersample: bool = True,
    correlation_threshold: float | None = 0.9,
    heatmaps: bool = True,
) -> dict[str, Any]:
    """Split, undersample and drop correlated features of ``clean_dir/clean.parquet``.

    Writes ``train.parquet`` (resampled), ``test.parquet`` (natural class ratio),
    ``preparation.json`` and the three heatmaps into ``out_dir`` (default ``clean_dir``).
    """
    clean_dir = Path(clean_dir)
    out = Path(out_dir) if out_dir is not None else clean_dir
    source = clean_dir / "clean.parquet"
    if not source.is_file():
        raise InputError(
            "no clean.parquet here: run `flowsentinel data clean` first", path=clean_dir
        )
    try:
        frame = pl.read_parquet(source)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"cannot read clean.parquet ({exc})", path=source) from None
    meta_cols = [c for c in sc.META_COLUMNS if c in frame.columns]
    features = [c for c in frame.columns if c not in meta_cols]
    if sc.TARGET not in frame.columns:
        raise InputError("clean.parquet has no Target column", path=source)
    counts = frame.get_column(sc.TARGET).value_counts()
    if counts.height < 2:
        raise InputError("only one class left after cleaning: nothing to learn", path=source)
    fewest = counts.get_column("count").min()
    if not isinstance(fewest, int) or fewest < 2:
        raise InputError("a class has fewer than 2 rows: cannot split it", path=source)
    data = frame.to_pandas()
    binary = data[sc.TARGET].dtype.kind in "iu"
    idx_train, idx_test = train_test_split(
        np.arange(len(data)), test_size=test_size, random_state=seed, stratify=data[sc.TARGET]
    )
    train, test = data.iloc[np.sort(idx_train)], data.iloc[np.sort(idx_test)]
    plots: dict[str, str] = {}

    def corr_frame(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        return df[[*cols, sc.TARGET]] if binary else df[cols]

    if heatmaps:
        plots["after_cleaning"] = str(
            save_heatmap(
                corr_frame(train, features),
                out / "corr_after_cleaning.png",
                "Correlations after cleaning (training rows)",
            )
        )
    rows_before = len(train)
    if undersample:
        sampler = RandomUnderSampler(sampling_strategy="majority", random_state=seed)
        sampler.fit_resample(np.zeros((len(train), 1)), train[sc.TARGET])
        train = train.iloc[np.sort(sampler.sample_indices_)]
        if heatmaps:
            plots["after_resampling"] = str(
                save_heatmap(
                    corr_frame(train, features),
                    out / "corr_after_resampling.png",
                    "Correlations after undersampling (training rows)",
                )
            )
    kept, dropped = features, {}
    if correlation_threshold is not None:
        numeric = [c for c in features if pd.api.types.is_numeric_dtype(train[c])]
        dropper = CorrelatedFeatureDropper(correlation_threshold).fit(train[numeric])
        dropped = dropper.dropped_
        kept = [c for c in features if c not in dropped]
        if heatmaps:
            plots["after_correlation_drop"] = str(
                save_heatmap(
                    corr_frame(train, kept),
                    out / "corr_after_correlation_drop.png",
                    f"Correlations after dropping |r| > {correlation_threshold}",
                )
            )
    out.mkdir(parents=True, exist_ok=True)
    pl.from_pandas(train[[*kept, *meta_cols]]).write_parquet(out / "train.parquet")
    pl.from_pandas(test[[*kept, *meta_cols]]).write_parquet(out / "test.parquet")
    summary: dict[str, Any] = {
        "source": str(source),
        "split": {"test_size": test_size, "seed": seed, "stratified": True},
        "rows": {
            "clean": len(data),
            "train_before_resampling": rows_before,
            "train": len(train),
            "test": len(test),
        },
        "train_classes": {str(k): int(v) for k, v in train[sc.TARGET].value_counts().items()},
        "test_classes": {str(k): int(v) for k, v in test[sc.TARGET].value_counts().items()},
        "undersampling": {
            "enabled": undersample,
            "strategy": "majority",
            "random_state": seed,
            "fitted_on": "training rows only",
        },
        "correlation_threshold": correlation_threshold,
        "correlated_dropped": {
            k: {"with": v[0], "abs_r": round(v[1], 4)} for k, v in dropped.items()
        },
        "features": kept,
        "plots": plots,
    }
    (out / "preparation.json").write_text(json.dumps(summary, indent=2))
    return summary
