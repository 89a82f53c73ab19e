"""Benchmark: which novelty detector notices traffic from another network?

Each detector is fitted on the built-in lab's flows (seed ``--seed``), with its threshold set so
that 2 % of held-out lab rows are novel, then asked about: a second lab capture (another seed:
same network, must stay near 2 %), real captures (``../shared/datasets/pcaps``: benign, floods)
and CIC-IDS2017 rows (another network). Detectors:

- ``distance`` (shipped: :class:`flowsentinel.models.profile.TrainingProfile`): distance to
  the nearest of 1,024 training rows, signed-log1p and robust-scaled;
- ``iforest``: scikit-learn's isolation forest (200 trees) on the same transformed values;
- ``range``: any value outside the training rows' 0.5-99.5 % range of its feature.

Also the cost of each per 1,000 flows. Run from the project root:

    .venv/bin/python benchmarks/bench_novelty.py [--seed 42] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from flowsentinel.core import schema as sc
from flowsentinel.datasets.lab import write_lab
from flowsentinel.datasets.reader import read_file
from flowsentinel.models.profile import TrainingProfile, _slog
from flowsentinel.scanning import iter_capture_frames

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
FEATURES = list(sc.CIC_FEATURES)


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    present = [c for c in FEATURES if c in frame.columns]
    out = np.full((len(frame), len(FEATURES)), np.nan)
    out[:, [FEATURES.index(c) for c in present]] = frame[present].to_numpy(
        np.float64, na_value=np.nan
    )
    return out


def _captures(pattern: str) -> np.ndarray | None:
    frames = [f for p in sorted(SHARED.glob(pattern)) for f in iter_capture_frames(p)]
    return _matrix(pd.concat(frames, ignore_index=True)) if frames else None


def _sources(seed: int, scale: float, work: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    lab = write_lab(work / "lab", seed=seed, scale=scale)
    train = pd.read_csv(lab.flows)
    y = (train["Label"] != "BENIGN").to_numpy().astype(int)
    unseen = pd.read_csv(write_lab(work / "unseen", seed=seed + 1, scale=scale).flows)
    sources: dict[str, np.ndarray | None] = {"lab, another seed": _matrix(unseen)}
    sources["real benign captures"] = _captures("pcaps/benign/*")
    sources["real floods (stopddos)"] = _captures("pcaps/attack/stopddos-*")
    sources["slowloris-lab capture"] = _captures("pcaps/attack/slowloris-lab.pcap")
    cic = SHARED / "cicids2017" / "thursday-webattacks-trafficlabelling.csv.gz"
    if cic.exists():
        sources["CIC-IDS2017 rows"] = _matrix(read_file(cic, dataset=sc.CIC.name)[0].to_pandas())
    return _matrix(train), y, {k: v for k, v in sources.items() if v is not None}


def _detectors(
    X: np.ndarray, y: np.ndarray, seed: int
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each detector's ``novel(X) -> bool``, thresholds at 2 % of the same held-out rows."""
    profile = TrainingProfile.fit(X, y, FEATURES, ["BENIGN", "DoS"], seed=seed)
    order = np.random.default_rng(seed).permutation(len(X))
    held, fit = X[order[: len(X) // 5]], X[order[len(X) // 5 :]]

    def clean(A: np.ndarray) -> np.ndarray:
        Z = (_slog(A) - profile.median) / profile.iqr
        return np.where(np.isfinite(Z), Z, 1e3)

    forest = IsolationForest(n_estimators=200, random_state=seed).fit(clean(fit))
    cut = np.quantile(-forest.score_samples(clean(held)), 0.98)
    low, high = np.nanpercentile(fit, [0.5, 99.5], axis=0)
    return {
        "distance": lambda A: ~profile.assess(A).in_distribution,
        "iforest": lambda A: -forest.score_samples(clean(A)) > cut,
        "range": lambda A: ((low > A) | (high < A) | ~np.isfinite(A)).any(axis=1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        X, y, sources = _sources(args.seed, args.scale, Path(tmp))
    detectors = _detectors(X, y, args.seed)
    names = list(detectors)
    print(f"fitted on {len(X):,} lab flows (seed {args.seed}); novel share per source:")
    print(f"{'source':28} {'flows':>7} " + " ".join(f"{n:>9}" for n in names))
    for source, A in sources.items():
        shares = [float(np.mean(detectors[n](A))) for n in names]
        print(f"{source:28} {len(A):>7,} " + " ".join(f"{s:>9.1%}" for s in shares))
    probe = np.resize(sources["lab, another seed"], (1000, X.shape[1]))
    costs = []
    for n in names:
        detectors[n](probe)
        t = time.perf_counter()
        for _ in range(5):
            detectors[n](probe)
        costs.append((time.perf_counter() - t) / 5 * 1000)
    print(f"{'ms per 1,000 flows':28} {'':>7} " + " ".join(f"{c:>9.1f}" for c in costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
