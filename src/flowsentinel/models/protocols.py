"""Evaluation protocols: how rows are split into training and test parts.

- ``holdout`` (default): exact duplicate feature rows dropped first (whatever their label), a
  stratified split, the test part at the natural class ratio; the undersampler and the
  correlated-feature rule live in the model pipeline, so they only ever see training rows.
- ``seed``: the protocol of each seed, to reproduce its figures (not an honest estimate):
  CIC-IDS2017 as the first seed (undersample the whole frame, then 70/30, random_state 25);
  UNSW-NB15 as the second seed (``is_ftp_login == 2`` dropped, 80/20, random_state 1,
  duplicates kept, no resampling).
- ``files``: train on some files, test on others; test rows whose features also occur in the
  training files are dropped and counted.
- ``official``: the UNSW-NB15 training partition → the testing partition, as published
  (overlapping rows are counted, not dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl
from imblearn.under_sampling import RandomUnderSampler
from sklearn.model_selection import train_test_split

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError

Protocol = Literal["holdout", "seed", "files", "official"]
PROTOCOLS: tuple[str, ...] = ("holdout", "seed", "files", "official")


@dataclass
class Split:
    """Training and test rows (features and meta columns) and what the protocol did."""

    protocol: str
    train: pd.DataFrame
    test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    undersample_in_pipeline: bool
    description: str
    details: dict[str, Any] = field(default_factory=dict)


def _dedupe_features(frame: pl.DataFrame, features: list[str]) -> tuple[pl.DataFrame, int]:
    keep = pl.struct(features).is_first_distinct()
    out = frame.filter(keep)
    return out, frame.height - out.height


def _split_rows(
    frame: pl.DataFrame,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    protocol: str,
    undersample_in_pipeline: bool,
    description: str,
    details: dict[str, Any],
) -> Split:
    pdf = frame.to_pandas()
    return Split(
        protocol,
        pdf.iloc[train_idx].reset_index(drop=True),
        pdf.iloc[test_idx].reset_index(drop=True),
        y[train_idx],
        y[test_idx],
        undersample_in_pipeline,
        description,
        details,
    )


def _check_classes(y: np.ndarray, where: str) -> None:
    if len(np.unique(y)) < 2:
        raise InputError(f"the {where} rows hold a single class; a detector needs both")


def holdout(
    frame: pl.DataFrame,
    features: list[str],
    encode: Any,
    *,
    test_size: float = 0.2,
    seed: int = 42,
) -> Split:
    deduped, dropped = _dedupe_features(frame, features)
    y = encode(deduped)
    _check_classes(y, "cleaned")
    counts = np.bincount(y)
    if counts[counts > 0].min() < 2:
        raise InputError("a class has a single row: too few rows for a stratified split")
    idx = np.arange(deduped.height)
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)
    return _split_rows(
        deduped,
        y,
        np.sort(tr),
        np.sort(te),
        "holdout",
        True,
        f"duplicate feature rows dropped, stratified {1 - test_size:.0%}/{test_size:.0%} split "
        f"(seed {seed}), undersampling and feature selection fitted on training rows only",
        {"duplicate_feature_rows_dropped": dropped, "test_size": test_size, "seed": seed},
    )


def seed_protocol(frame: pl.DataFrame, features: list[str], encode: Any, dataset: str) -> Split:
    if sc.dataset(dataset) is sc.CIC:
        y = encode(frame)
        _check_classes(y, "cleaned")
        sampler = RandomUnderSampler(random_state=17, sampling_strategy="majority")
        idx, _ = sampler.fit_resample(np.arange(frame.height).reshape(-1, 1), y)
        idx = np.sort(idx.ravel())
        tr, te = train_test_split(idx, test_size=0.3, random_state=25)
        return _split_rows(
            frame,
            y,
            tr,
            te,
            "seed",
            False,
            "first seed: whole frame undersampled (random_state 17) before a 70/30 split "
            "(random_state 25); the test part is balanced, not at the natural ratio",
            {"rows_after_undersampling": len(idx), "rows_before": frame.height},
        )
    dropped = 0
    if "is_ftp_login" in frame.columns:
        before = frame.height
        frame = frame.filter(pl.col("is_ftp_login") != 2)
        dropped = before - frame.height
    y = encode(frame)
    _check_classes(y, "cleaned")
    tr, te = train_test_split(np.arange(frame.height), test_size=0.2, random_state=1)
    return _split_rows(
        frame,
        y,
        tr,
        te,
        "seed",
        False,
        "second seed: rows with is_ftp_login = 2 dropped, duplicates kept, 80/20 split "
        "(random_state 1), no resampling",
        {"is_ftp_login_2_dropped": dropped},
    )


def file_protocol(
    train: pl.DataFrame,
    test: pl.DataFrame,
    features: list[str],
    encode: Any,
    *,
    official: bool = False,
) -> Split:
    missing = [c for c in features if c not in test.columns]
    if missing:
        raise InputError(f"the test files lack feature columns: {', '.join(missing)}")
    train, dup_train = _dedupe_features(train, features) if not official else (train, 0)
    test = test.with_columns(
        pl.col(c).cast(train.schema[c]) for c in features if test.schema[c] != train.schema[c]
    )
    key = train.select(features).unique()
    overlap = test.height - test.join(key, on=features, how="anti", nulls_equal=True).height
    if not official:
        test = test.join(key, on=features, how="anti", nulls_equal=True)
    y_train, y_test = encode(train), encode(test)
    _check_classes(y_train, "training")
    if len(y_test) == 0:
        raise InputError("no test rows left (every test row also occurs in the training files)")
    name = "official" if official else "files"
    text = (
        "UNSW-NB15 training partition → testing partition as published"
        if official
        else "trained on some files, tested on others; test rows seen in training dropped"
    )
    return Split(
        name,
        train.to_pandas(),
        test.to_pandas(),
        y_train,
        y_test,
        True,
        text,
        {
            "duplicate_feature_rows_dropped": dup_train,
            "test_rows_also_in_training": overlap,
            "test_rows_dropped_as_seen": 0 if official else overlap,
        },
    )
