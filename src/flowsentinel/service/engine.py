"""The models one server serves, loaded once at start-up, and the scoring calls of the routes."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pandas as pd
import polars as pl

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import ModelError
from flowsentinel.core.settings import Settings
from flowsentinel.scoring import Detector, Explain, Verdicts, resolve_uri
from flowsentinel.service.bodies import FlowBody, FlowInputError, Parsed, clamp

log = logging.getLogger("flowsentinel.service")


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
    """A loaded :class:`Detector` (compiled when loaded) and its request declaration."""

    detector: Detector
    body: FlowBody
    loaded_seconds: float
    key: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, ref: str, settings: Settings) -> ServedModel:
        started = time.perf_counter()
        d = Detector.load(ref, settings)
        _single_threaded(d.pipeline)
        body = FlowBody(d.name, d.features, d.categorical, d.dataset)
        return cls(d, body, time.perf_counter() - started, d.name)

    def rename(self, key: str) -> None:
        """Serve under another name (two versions of one registered model)."""
        d = self.detector
        self.key = key
        self.body = FlowBody(key, d.features, d.categorical, d.dataset, d.name)

    # --- scoring ------------------------------------------------------------------------------
    def score(self, parsed: Parsed, explain: Explain = "none") -> Verdicts:
        """One model call for checked JSON flows, with their novelty, and reasons for the
        ``explain`` flows."""
        d = self.detector
        if len(parsed) == 0:
            return Verdicts.empty(len(d.classes))
        verdicts = d.verdicts(d.proba_matrix(parsed.numeric, parsed.categorical))
        d.assess(verdicts, parsed.numeric)
        if explain != "none":
            X = pd.DataFrame(parsed.numeric, columns=d.numeric)
            for name, values in parsed.categorical.items():
                X[name] = values
            d.explain(verdicts, X[d.features], explain)
        return verdicts

    def score_frame(
        self, frame: pd.DataFrame | pl.DataFrame, explain: Explain = "flagged"
    ) -> Verdicts:
        """One model call for flows read from a file (any known column spelling), with their
        novelty and reasons for the ``explain`` flows (the flagged ones by default, as scan)."""
        return self.detector.predict(frame, explain, bound=clamp)

    # --- description --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = self.detector.describe()
        info["request_fields"] = [self.body.display[f] for f in self.detector.features]
        info["categorical"] = list(self.detector.categorical)
        info["dataset_title"] = sc.dataset(self.detector.dataset).title
        info["compiled"] = list(self.detector.compiled.replay)
        return info


class ModelSet:
    """Every model of one server, by name; the first of a data set answers its seed route."""

    def __init__(self, models: list[ServedModel]) -> None:
        if not models:
            raise ModelError("no model to serve")
        self.models = models
        self.by_key: dict[str, ServedModel] = {}
        self.by_dataset: dict[str, ServedModel] = {}  # the first of each: its seed route's
        for m in models:
            self.by_dataset.setdefault(m.detector.dataset, m)
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
                "loaded %s version %s (%s, %s, %d features; compiled: %s) in %.2fs",
                model.detector.name,
                model.detector.version,
                model.detector.dataset,
                model.detector.task,
                len(model.detector.features),
                " → ".join(model.detector.compiled.replay),
                model.loaded_seconds,
            )
            loaded.append(model)
        keys = [m.key for m in loaded]
        for i, m in enumerate(loaded):  # two versions of one registered model: tell them apart
            if keys.count(m.key) > 1 and m.detector.version:
                m.rename(f"{m.detector.name}/{m.detector.version}")
            elif keys.count(m.key) > 1:
                m.rename(f"{m.detector.name}#{i}")
        return cls(loaded)

    @property
    def default(self) -> ServedModel:
        return self.models[0]

    def get(self, name: str | None) -> ServedModel | None:
        if name is None:
            return self.default
        return self.by_key.get(name)

    def for_dataset(self, dataset: str) -> ServedModel | None:
        return self.by_dataset.get(dataset)

    def decode_batch(self, raw: bytes, max_batch: int) -> tuple[ServedModel, Parsed]:
        """The model a ``/v1/predict`` body is for and its flows: the first served model whose
        declaration accepts it; a body none accepts is explained by the model it names, else
        by the one whose fields its first flow holds most of."""
        for served in self.models:
            parsed = served.body.decode_batch(raw, max_batch)
            if parsed is not None:
                return served, parsed
        raise FlowInputError(self._meant_for(raw).body.explain(raw, single=False))

    def _meant_for(self, raw: bytes) -> ServedModel:
        try:
            doc = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return self.default
        name = doc.get("model") if type(doc) is dict else None
        named = self.by_key.get(name) if isinstance(name, str) else None
        if named is not None:
            return named
        return max(self.models, key=lambda m: m.body.fits(raw))
