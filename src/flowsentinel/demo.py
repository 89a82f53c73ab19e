"""``flowsentinel demo``: the whole path on built-in lab traffic, in a few minutes.

lab capture (seed N) → flows → clean → prepare (heatmaps) → train and register
``flowsentinel-lab-dos`` → scan a *second* lab capture (seed N + 1, never seen in training) and
compare the verdicts with its labels. Lab traffic is crafted by the project: a model trained on
it is a demonstration, not a detector for real networks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsentinel.cleaning import CleaningOptions, clean_to_dir
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.datasets.lab import write_lab
from flowsentinel.models.training import TrainConfig, train
from flowsentinel.preparation import prepare
from flowsentinel.scanning import Aggregate, add_incident_ids, iter_capture_frames, scan_frames
from flowsentinel.scoring import Detector

DEMO_NAME = "flowsentinel-lab-dos"
DEMO_MODELS = ("rf", "xgb", "lgbm")


def run_demo(
    out: Path,
    *,
    seed: int | None = None,
    scale: float = 1.0,
    n_iter: int = 3,
    settings: Settings | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    settings = settings or get_settings()
    seed = settings.seed if seed is None else seed
    say(f"crafting the lab capture (seed {seed})")
    lab = write_lab(out / "lab", seed=seed, scale=scale)
    say("cleaning its flows")
    cache = ColumnarCache(settings.resolved_cache_dir) if settings.use_cache else None
    report, _ = clean_to_dir(
        [str(lab.flows)], out / "clean", options=CleaningOptions(task="dos"), cache=cache
    )
    say("preparing (heatmaps)")
    prepared = prepare(out / "clean", seed=seed)
    say("training")
    result = train(
        TrainConfig(
            sources=[str(lab.flows)],
            task="dos",
            models=list(DEMO_MODELS),
            n_iter=n_iter,
            registered_name=DEMO_NAME,
            seed=seed,
        ),
        settings,
        progress=say,
    )
    say(f"crafting a second, unseen lab capture (seed {seed + 1})")
    fresh = write_lab(out / "lab-unseen", seed=seed + 1, scale=scale)
    say("scanning it")
    det = Detector.load(f"models:/{DEMO_NAME}@champion", settings)
    verdict_file = out / "verdicts.jsonl"
    aggregate = Aggregate(benign=det.classes[0])
    with verdict_file.open("w", encoding="utf-8") as fh:
        frames = iter_capture_frames(fresh.pcap, aggregate=aggregate)
        summary = scan_frames(frames, det, fh, aggregate=aggregate)
    placed, _ = aggregate.place()
    add_incident_ids(verdict_file, placed)
    truth = pd.read_csv(fresh.flows, usecols=["Label"])["Label"].to_numpy()
    verdicts = pd.read_json(verdict_file, lines=True)["label"].to_numpy()
    attack_truth = truth != "BENIGN"
    flagged = verdicts != "BENIGN"
    in_incident = placed.notna().to_numpy(dtype=bool)
    return {
        "lab": {"pcap": str(lab.pcap), "packets": lab.packets, "flows": lab.flow_labels},
        "cleaning": {"rows_in": report.rows_in, "rows_out": report.rows_out},
        "prepared": {k: prepared["rows"][k] for k in ("train", "test")},
        "train": result,
        "scan": {
            "pcap": str(fresh.pcap),
            "flows": summary.flows,
            "by_label": summary.by_label,
            "verdicts": str(verdict_file),
            "detection_rate": float(flagged[attack_truth].mean()) if attack_truth.any() else None,
            "false_positive_rate": float(flagged[~attack_truth].mean())
            if (~attack_truth).any()
            else None,
            "agree_with_labels": float(np.mean(flagged == attack_truth)),
            "incidents": len(aggregate.builder.incidents),
            # scan's verdicts in context: a flow is part of an attack when in an incident
            "in_incidents": {
                "detection_rate": _share(in_incident[attack_truth]),
                "false_positive_rate": _share(in_incident[~attack_truth]),
            },
        },
    }


def _share(flags: np.ndarray) -> float | None:
    return float(flags.mean()) if len(flags) else None
