"""Models: the zoo of pipelines, evaluation protocols, metrics, plots, MLflow tracking/registry.

The names below are imported on first use: a process that needs only a light submodule
(``processes`` in a search's worker process, ``registry`` for ``models list``) does not pay
for scikit-learn, polars and the cleaning code at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowsentinel.models.feature_sets import FEATURE_SETS, resolve_features
    from flowsentinel.models.metrics import METRIC_NAMES, compute_metrics
    from flowsentinel.models.protocols import PROTOCOLS, Split
    from flowsentinel.models.training import TrainConfig, train
    from flowsentinel.models.zoo import DEFAULT_MODELS, SEED_MODELS, SPECS, build_pipeline

_HOME = {
    "FEATURE_SETS": "feature_sets",
    "resolve_features": "feature_sets",
    "METRIC_NAMES": "metrics",
    "compute_metrics": "metrics",
    "PROTOCOLS": "protocols",
    "Split": "protocols",
    "TrainConfig": "training",
    "train": "training",
    "DEFAULT_MODELS": "zoo",
    "SEED_MODELS": "zoo",
    "SPECS": "zoo",
    "build_pipeline": "zoo",
}

__all__ = [
    "DEFAULT_MODELS",
    "FEATURE_SETS",
    "METRIC_NAMES",
    "PROTOCOLS",
    "SEED_MODELS",
    "SPECS",
    "Split",
    "TrainConfig",
    "build_pipeline",
    "compute_metrics",
    "resolve_features",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
