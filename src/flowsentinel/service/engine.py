"""The models one server serves, loaded once at start-up, and the scoring calls of the routes."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from flowsentinel.core.errors import InputError, ModelError
from flowsentinel.core.settings import Settings
from flowsentinel.scoring import Detector, Verdicts, resolve_uri
from flowsentinel.service.batches import HotBatch
from flowsentinel.service.fastpath import FastScorer, compile_pipeline
from flowsentinel.service.inputs import FlowParser, Parsed, clamp

log = logging.getLogger("flowsentinel.service")

DATASET_TITLES = {"cicids2017": "CIC-IDS2017", "unsw-nb15": "UNSW-NB15"}


def _single_threaded(pipeline: Any) -> None:
    """One request, one core: thread pools inside an estimator only add latency here
    (the server runs several workers for parallelism)."""
    steps = getattr(pipeline, "steps", [])
    for _, step in steps:
        params = step.get_params(deep=False) if hasattr(step, "get_params") else {}
        if "n_jobs" in params and params["n_jobs"] not in (1, None):
            with contextlib.suppress(Exception):  # an estimator that refuses keeps its setting
                step.set_params(n_jobs=1)


@dataclass
class ServedModel:
    """A loaded :class:`Detector`, its request parser and (when possible) its fast path."""

    detector: Detector
    parser: FlowParser
    fast: FastScorer | None
    loaded_seconds: float
    key: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, ref: str, settings: Settings) -> ServedModel:
        started = time.perf_counter()
        detector = Detector.load(ref, settings)
        _single_threaded(detector.pipeline)
        parser = FlowParser(
            detector.features, detector.categorical, detector.dataset, detector.canonical_columns
        )
        fast = compile_pipeline(detector.pipeline, detector.features, detector.categorical)
        return cls(detector, parser, fast, time.perf_counter() - started, detector.name)

    # --- scoring ------------------------------------------------------------------------------
    def _verdicts(self, proba: np.ndarray) -> Verdicts:
        classes = self.detector.classes
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape[1] < len(classes):
            full = np.zeros((len(proba), len(classes)))
            full[:, self.detector.pipeline.classes_] = proba
            proba = full
        idx = proba.argmax(axis=1)
        labels = np.asarray(classes, dtype=object)[idx]
        return Verdicts(labels, proba[np.arange(len(idx)), idx], 1.0 - proba[:, 0], proba)

    def _empty(self) -> Verdicts:
        empty = np.empty(0)
        return Verdicts(
            np.empty(0, dtype=object), empty, empty, np.empty((0, len(self.detector.classes)))
        )

    def score(self, parsed: Parsed) -> Verdicts:
        """One model call for validated JSON flows."""
        if len(parsed) == 0:
            return self._empty()
        if self.fast is not None:
            return self._fast(parsed.numeric, parsed.categorical)
        frame = pd.DataFrame(parsed.numeric, columns=self.parser.numeric)
        for name, values in parsed.categorical.items():
            frame[name] = pd.Series(values, dtype=object)
        return self._predict_frame(frame[self.detector.features])

    def score_frame(self, frame: pd.DataFrame | pl.DataFrame) -> Verdicts:
        """One model call for flows read from a file (any known column spelling)."""
        X = self.detector.align(frame)
        if len(X) == 0:
            return self._empty()
        numeric = clamp(X[self.parser.numeric].to_numpy(dtype=np.float64, na_value=np.nan))
        if self.fast is not None:
            categorical = {  # the text FrameSelector makes of them
                c: X[c].astype("string").fillna("-").astype(object).tolist()
                for c in self.parser.categorical
            }
            return self._fast(numeric, categorical)
        X = X.copy()
        X[self.parser.numeric] = numeric
        return self._predict_frame(X)

    def _fast(self, numeric: np.ndarray, categorical: dict[str, list[str]]) -> Verdicts:
        assert self.fast is not None
        try:
            proba = self.fast.proba(numeric, categorical)
        except Exception as exc:  # e.g. an encoder refusing an unknown category
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the model could not score these flows: {text}") from None
        return self._verdicts(proba)

    def _predict_frame(self, X: pd.DataFrame) -> Verdicts:
        try:
            proba = self.detector.pipeline.predict_proba(X)
        except Exception as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the model could not score these flows: {text}") from None
        return self._verdicts(proba)

    # --- description --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = self.detector.describe()
        info["request_fields"] = [self.parser.display[f] for f in self.detector.features]
        info["categorical"] = list(self.detector.categorical)
        info["dataset_title"] = DATASET_TITLES.get(self.detector.dataset, self.detector.dataset)
        info["fast_path"] = self.fast is not None
        return info


class ModelSet:
    """Every model of one server, by name; the first of a data set answers its seed route."""

    def __init__(self, models: list[ServedModel]) -> None:
        if not models:
            raise ModelError("no model to serve")
        self.models = models
        self.hot_batch = HotBatch()  # the typed decode of the common /v1/predict body
        self.by_key: dict[str, ServedModel] = {}
        for m in models:
            for key in (m.key, m.detector.uri, m.detector.name):
                self.by_key.setdefault(key, m)
            if m.detector.version:
                self.by_key.setdefault(f"{m.detector.name}/{m.detector.version}", m)

    @classmethod
    def load(cls, refs: list[str], settings: Settings) -> ModelSet:
        loaded: list[ServedModel] = []
        seen: set[str] = set()
        for ref in refs:
            uri = resolve_uri(ref, settings)
            if uri in seen:
                continue
            seen.add(uri)
            model = ServedModel.load(ref, settings)
            log.info(
                "loaded %s version %s (%s, %s, %d features, fast path %s) in %.2fs",
                model.detector.name,
                model.detector.version,
                model.detector.dataset,
                model.detector.task,
                len(model.detector.features),
                "on" if model.fast else "off",
                model.loaded_seconds,
            )
            loaded.append(model)
        keys = [m.key for m in loaded]
        for i, m in enumerate(loaded):  # two versions of one registered model: tell them apart
            if keys.count(m.key) > 1 and m.detector.version:
                m.key = f"{m.detector.name}/{m.detector.version}"
            elif keys.count(m.key) > 1:
                m.key = f"{m.detector.name}#{i}"
        return cls(loaded)

    @property
    def default(self) -> ServedModel:
        return self.models[0]

    def get(self, name: str | None) -> ServedModel | None:
        if name is None:
            return self.default
        return self.by_key.get(name)

    def for_dataset(self, dataset: str) -> ServedModel | None:
        return next((m for m in self.models if m.detector.dataset == dataset), None)
