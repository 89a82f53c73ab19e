"""``evaluate``: score a registered model on new labelled flows.

The data set and the task come from the model.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from flowsentinel.cleaning import CLEAN_FILE, REPORT_FILE, CleaningOptions, clean_to_dir
from flowsentinel.core.errors import InputError
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.models.metrics import compute_metrics
from flowsentinel.models.training import LabelCoder
from flowsentinel.scoring import Detector


def evaluate(
    model: str | None, sources: list[str], settings: Settings | None = None
) -> dict[str, Any]:
    """Metrics of a model on labelled sources, in the shape of ``train``'s JSON (one model)."""
    settings = settings or get_settings()
    det = Detector.load(model, settings)
    # the detector's task is a plain str: validated (against lab.Task) as the options are made
    opts = CleaningOptions.model_validate({"task": det.task, "near_constant": "none"})
    cache = ColumnarCache(settings.resolved_cache_dir) if settings.use_cache else None
    with tempfile.TemporaryDirectory(prefix="flowsentinel-eval-") as tmp:
        clean_to_dir(sources, Path(tmp), dataset=det.dataset, options=opts, cache=cache)
        frame = pl.read_parquet(Path(tmp) / CLEAN_FILE)
        cleaning = json.loads((Path(tmp) / REPORT_FILE).read_text())
    coder = LabelCoder(det.classes, det.task)
    y = coder(frame)
    unseen = int((y < 0).sum())
    frame, y = frame.filter(pl.Series(y >= 0)), y[y >= 0]
    if len(y) == 0:
        raise InputError("no labelled rows of the model's classes in the sources")
    t0 = time.perf_counter()
    verdicts = det.predict(frame)
    seconds = time.perf_counter() - t0
    # the verdicts the model gives when it serves (its decision threshold included)
    m = compute_metrics(y, verdicts.codes, verdicts.proba, det.classes)
    cm = m.pop("confusion_matrix")
    per_class = m.pop("per_class", None)
    m.update(fit_seconds=None, predict_seconds=seconds)
    entry: dict[str, Any] = {
        "name": det.model or det.name,
        "params": {},
        "metrics": m,
        "confusion_matrix": cm,
    }
    if per_class is not None:
        entry["per_class"] = per_class
    return {
        "dataset": det.dataset,
        "task": det.task,
        "protocol": "evaluate",
        "n_train": 0,
        "n_test": len(y),
        "classes": det.classes,
        "rows_of_unknown_classes_dropped": unseen,
        "cleaning": {"rows_in": cleaning["rows_in"], "rows_out": cleaning["rows_out"]},
        "models": [entry],
        "champion": {
            "name": entry["name"],
            "registered_model": det.name if det.uri.startswith("models:/") else None,
            "version": int(det.version) if det.version and det.version.isdigit() else None,
        },
        "model_uri": det.uri,
        "positive_rate": float(np.mean(verdicts.codes != 0)),
    }
