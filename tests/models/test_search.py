"""The parameter search: the models whose defaults were chosen on these data sets also score
those defaults; the first seed's models search as the seed wrote them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from modeldata import unsw_frame
from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from flowsentinel.core import schema as sc
from flowsentinel.models import protocols as pr
from flowsentinel.models.training import TrainConfig, _fit, _SearchWithDefaults
from flowsentinel.models.zoo import SPECS

NUM = [c for c in sc.UNSW_FEATURES if c not in sc.UNSW_CATEGORICAL]
CAT = list(sc.UNSW_CATEGORICAL)


def _xy(rows: int = 600) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((rows, 4)), columns=list("abcd"))
    y = ((X.a > 0.5) ^ (X.b > 0.5) ^ (X.c > 0.7)).to_numpy().astype(int)  # needs depth 3
    return X, y


def _search(kind: type, X: pd.DataFrame, y: np.ndarray) -> RandomizedSearchCV:
    return kind(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2], "min_samples_split": [2, 50]},
        n_iter=3,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        random_state=0,
    ).fit(X, y)


def test_defaults_are_the_first_candidate_within_n_iter() -> None:
    X, y = _xy()
    search = _search(_SearchWithDefaults, X, y)
    params = search.cv_results_["params"]
    assert len(params) == 3 and params[0] == {}
    assert search.best_params_ == {}  # unlimited depth beats depth 1-2 on this target
    assert search.best_score_ > _search(RandomizedSearchCV, X, y).best_score_


def test_which_models_score_their_defaults() -> None:
    assert {n for n, s in SPECS.items() if s.search_defaults} == {"xgb", "hgb", "lgbm"}


def test_fit_reports_every_searched_parameter_even_when_the_defaults_win() -> None:
    df = unsw_frame(300, seed=4)
    y = df["label"].to_numpy()
    split = pr.Split(
        protocol="t",
        train=df,
        test=df.head(10),
        y_train=y,
        y_test=y[:10],
        undersample_in_pipeline=True,
        description="test",
    )
    cfg = TrainConfig(sources=[], task="attack", models=["lgbm"], n_iter=2)
    pipe, best, _, _ = _fit("lgbm", split, NUM, CAT, 2, cfg, seed=0, n_jobs=1)
    assert set(best) == set(SPECS["lgbm"].params)
    model = pipe[-1]
    assert all(getattr(model, k) == v for k, v in best.items())
