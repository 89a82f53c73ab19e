"""Private pipeline steps: the column selection every model starts with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class FrameSelector(TransformerMixin, BaseEstimator):
    """Select the model's columns from a DataFrame, numeric as float64 (±inf → NaN), categorical
    as text. Extra columns are ignored; a missing column is an error naming it."""

    def __init__(self, numeric: list[str], categorical: list[str] | None = None) -> None:
        self.numeric = numeric
        self.categorical = categorical

    def fit(self, X: Any, y: Any = None) -> FrameSelector:
        self.transform(X)
        self.n_features_in_ = len(self.numeric) + len(self.categorical or [])
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("flowsentinel models take a pandas DataFrame of named flow features")
        cats = list(self.categorical or [])
        missing = [c for c in [*self.numeric, *cats] if c not in X.columns]
        if missing:
            raise ValueError(f"missing feature columns: {', '.join(missing)}")
        values = X[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        values[~np.isfinite(values)] = np.nan
        out = pd.DataFrame(values, columns=self.numeric, index=X.index)
        for c in cats:
            out[c] = X[c].astype("string").fillna("-").astype(object)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([*self.numeric, *(self.categorical or [])], dtype=object)
