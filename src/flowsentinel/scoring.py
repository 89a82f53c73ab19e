"""Scoring: the one place where flows meet a model (shared by the CLI, the service and capture).

A :class:`Detector` is a fitted flowsentinel pipeline loaded from MLflow (``models:/NAME@alias``,
``models:/NAME/VERSION``, a bare registered name meaning its ``champion``, ``runs:/…`` or a
local model folder) together with what it was trained on: data set, task, classes and the exact
input columns. It maps any known spelling of a column to the canonical name, checks that every
input column is present, and returns one verdict per flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from flowsentinel.core.errors import InputError, ModelError
from flowsentinel.core.settings import Settings, get_settings

DEFAULT_MODEL = "models:/flowsentinel-cicids2017-dos@champion"
DEMO_MODEL = "models:/flowsentinel-lab-dos@champion"  # registered by `flowsentinel demo`


def resolve_uri(model: str | None, settings: Settings | None = None) -> str:
    """A model reference as an MLflow URI (``None``: the configured default model)."""
    settings = settings or get_settings()
    ref = model or settings.default_model or DEFAULT_MODEL
    if "://" in ref or ref.startswith(("models:/", "runs:/")):
        return ref
    if Path(ref).expanduser().exists():
        return str(Path(ref).expanduser().resolve())
    if "@" in ref:
        return f"models:/{ref}"
    if "/" in ref and ref.rsplit("/", 1)[1].isdigit():
        return f"models:/{ref}"
    return f"models:/{ref}@champion"


def _registered(mlflow: Any, uri: str) -> bool:
    name, alias = uri.removeprefix("models:/").split("@", 1)
    try:
        mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except Exception:
        return False
    return True


@dataclass
class Verdicts:
    """Per-flow results of one model call."""

    labels: np.ndarray  # class name per flow
    probability: np.ndarray  # probability of the assigned class
    attack_probability: np.ndarray  # 1 - P(BENIGN)
    proba: np.ndarray  # all class probabilities

    def summary(self) -> dict[str, int]:
        names, counts = np.unique(self.labels, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


@dataclass
class Detector:
    """A loaded model and its contract."""

    pipeline: Any
    uri: str
    name: str
    version: str | None
    dataset: str
    task: str
    classes: list[str]
    features: list[str]
    categorical: list[str]
    feature_set: str = "all"
    model: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    @classmethod
    def load(cls, model: str | None = None, settings: Settings | None = None) -> Detector:
        from flowsentinel.models import tracking

        settings = settings or get_settings()
        uri = resolve_uri(model, settings)
        mlflow = tracking.configure(settings)
        if model is None and not settings.default_model and not _registered(mlflow, uri):
            uri = DEMO_MODEL  # no real CIC-IDS2017 champion yet: the demo's model
        name, version = uri, None
        try:
            if uri.startswith("models:/"):
                ref = uri.removeprefix("models:/")
                client = mlflow.MlflowClient()
                if "@" in ref:
                    name, alias = ref.split("@", 1)
                    version = str(client.get_model_version_by_alias(name, alias).version)
                elif "/" in ref:
                    name, version = ref.split("/", 1)
            info = mlflow.models.get_model_info(uri)
            meta = (info.metadata or {}).get("flowsentinel")
            if not meta:
                raise ModelError(f"{uri} is not a flowsentinel model (no flowsentinel metadata)")
            pipeline = mlflow.sklearn.load_model(uri)
        except ModelError:
            raise
        except Exception as exc:  # mlflow raises many types; the user needs one clear line
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(
                f"cannot load model {uri} from {tracking.tracking_uri(settings)}: {text} "
                "(train one with `flowsentinel train`, list them with `flowsentinel models list`)"
            ) from None
        return cls(
            pipeline=pipeline,
            uri=uri,
            name=name,
            version=version,
            dataset=meta["dataset"],
            task=meta["task"],
            classes=list(meta["classes"]),
            features=list(meta["features"]),
            categorical=list(meta.get("categorical", [])),
            feature_set=meta.get("feature_set", "all"),
            model=meta.get("model", ""),
            metrics=dict(meta.get("metrics", {})),
            run_id=getattr(info, "run_id", None),
        )

    # --- inputs -------------------------------------------------------------------------------
    def canonical_columns(self, columns: list[str]) -> tuple[dict[str, str], list[str]]:
        """Map input column names to the model's names; returns (mapping, unknown columns)."""
        from flowsentinel.models.feature_sets import canonical_name

        wanted = set(self.features)
        mapping: dict[str, str] = {}
        unknown: list[str] = []
        for col in columns:
            canonical = col if col in wanted else canonical_name(str(col), self.dataset)
            if canonical in wanted and canonical not in mapping.values():
                mapping[col] = canonical
            elif canonical is None:
                unknown.append(col)
        return mapping, unknown

    def missing(self, columns: list[str]) -> list[str]:
        mapping, _ = self.canonical_columns(columns)
        return self._absent(mapping)

    def _absent(self, mapping: dict[str, str]) -> list[str]:
        present = set(mapping.values())
        return [f for f in self.features if f not in present]

    def align(self, frame: pd.DataFrame | pl.DataFrame) -> pd.DataFrame:
        """The model's input columns, renamed from any known spelling; missing ones are an error."""
        if isinstance(frame, pl.DataFrame):
            frame = frame.to_pandas()
        mapping, _ = self.canonical_columns(list(frame.columns))
        absent = self._absent(mapping)
        if absent:
            raise InputError(
                f"the flows lack {len(absent)} feature(s) the model "
                f"{self.name} needs: {', '.join(absent)}"
            )
        return frame[list(mapping)].rename(columns=mapping)[self.features]

    # --- outputs ------------------------------------------------------------------------------
    def predict(self, frame: pd.DataFrame | pl.DataFrame) -> Verdicts:
        """One vectorised model call for all flows of ``frame``."""
        X = self.align(frame)
        if len(X) == 0:
            empty = np.empty(0)
            no_proba = np.empty((0, len(self.classes)))
            return Verdicts(np.empty(0, dtype=object), empty, empty, no_proba)
        proba = np.asarray(self.pipeline.predict_proba(X), dtype=np.float64)
        if proba.shape[1] < len(self.classes):
            full = np.zeros((len(proba), len(self.classes)))
            full[:, self.pipeline.classes_] = proba
            proba = full
        idx = proba.argmax(axis=1)
        labels = np.asarray(self.classes, dtype=object)[idx]
        return Verdicts(labels, proba[np.arange(len(idx)), idx], 1.0 - proba[:, 0], proba)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "dataset": self.dataset,
            "task": self.task,
            "model": self.model,
            "classes": self.classes,
            "feature_set": self.feature_set,
            "features": self.features,
            "metrics": self.metrics,
        }
