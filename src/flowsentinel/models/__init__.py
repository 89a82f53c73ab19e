"""Models: the zoo of pipelines, evaluation protocols, metrics, plots, MLflow tracking/registry."""

from flowsentinel.models.feature_sets import FEATURE_SETS, resolve_features
from flowsentinel.models.metrics import METRIC_NAMES, compute_metrics
from flowsentinel.models.protocols import PROTOCOLS, Split
from flowsentinel.models.training import TrainConfig, train
from flowsentinel.models.zoo import DEFAULT_MODELS, SEED_MODELS, SPECS, build_pipeline

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
