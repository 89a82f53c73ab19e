"""Benchmark of training xgb on a Dask cluster against training it in one process.

Run from the project's root::

    .venv/bin/python benchmarks/bench_scale_train.py                    # 8 x 350,000 rows
    .venv/bin/python benchmarks/bench_scale_train.py --rows 50000       # quick look

What it does, in one run:

1. Generates (or reuses) the CIC-IDS2017-like CSV files of ``bench_clean.py`` (``--files`` x
   ``--rows``, seeded resampling of the real rows in ``../shared/datasets/cicids2017``), cleans
   them with flowsentinel (task ``dos``) and splits the rows once (holdout, 20 % test, seed 42);
   the training and test rows go to parquet files in ``--workdir``.
2. Fits the ``xgb`` pipeline with its defaults (no search) on the same training rows twice,
   each in a fresh child process measured by ``wait4`` (wall time, peak RSS): in-process, and on
   a local Dask cluster of ``--workers`` worker processes (``models.scaleout.fit_on_cluster``:
   the rows in blocks on the workers, ``xgboost.dask``). Each worker reports its own peak RSS
   (``getrusage`` in the worker, through ``client.run``).
3. Prints the test F1 of both and their difference (target ≤ 0.002), and each worker's peak RSS
   against the in-process peak (target ≤ 60 %). Results also go to ``--results`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _common import Measurement, run_measured

HERE = Path(__file__).resolve().parent
DEFAULT_DATASETS = HERE.parent.parent / "shared" / "datasets" / "cicids2017"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "flowsentinel-bench"
F1_DIFF_MAX = 0.002
WORKER_RSS_SHARE_MAX = 0.60
SEED = 42


def prepare_split(data_dir: Path, split_dir: Path) -> dict[str, Any]:
    """Clean the CSV files and write the holdout split's rows (features + ``y``)."""
    # imported here, not at module level: the measured children must not load the cleaning
    # stack (polars, the readers), which would raise the in-process peak the workers face
    import polars as pl

    from flowsentinel.cleaning import CLEAN_FILE, CleaningOptions, clean_to_dir
    from flowsentinel.core import schema as sc
    from flowsentinel.models import protocols as pr
    from flowsentinel.models.training import LabelCoder

    files = sorted(str(p) for p in data_dir.glob("day*.csv"))
    clean_dir = split_dir / "clean"
    opts = CleaningOptions.model_validate({"task": "dos"})
    clean_to_dir(files, clean_dir, dataset=sc.CIC.name, options=opts)
    frame = pl.read_parquet(clean_dir / CLEAN_FILE)
    features = [c for c in sc.CIC.features if c in frame.columns]
    split = pr.holdout(frame, features, LabelCoder.for_frame(frame, "dos"), seed=SEED)
    parts = (("train", split.train, split.y_train), ("test", split.test, split.y_test))
    for name, rows, y in parts:
        rows[features].assign(y=y).to_parquet(split_dir / f"{name}.parquet", index=False)
    return {"features": len(features), "train": len(split.y_train), "test": len(split.y_test)}


def _load(split_dir: Path, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    rows = pd.read_parquet(split_dir / f"{name}.parquet")
    y = rows.pop("y").to_numpy()
    return rows, y


def _pipeline(features: list[str]) -> Any:
    from flowsentinel.models.zoo import SPECS, build_pipeline

    return build_pipeline(SPECS["xgb"], features, [], seed=SEED)


def _f1(pipe: Any, X: pd.DataFrame, y: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, np.asarray(pipe.predict_proba(X)).argmax(axis=1)))


def _peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def child_in_process(split_dir: Path) -> dict[str, Any]:
    """Fit in this process; its F1 and fit time."""
    X, y = _load(split_dir, "train")
    pipe = _pipeline(list(X.columns))
    started = time.perf_counter()
    pipe.fit(X, y)
    fit_s = time.perf_counter() - started
    X_test, y_test = _load(split_dir, "test")
    return {"f1": _f1(pipe, X_test, y_test), "fit_seconds": fit_s, "peak_rss": _peak_rss()}


def child_cluster(split_dir: Path, workers: int) -> dict[str, Any]:
    """Fit on a local cluster of ``workers`` processes; F1, fit time and each worker's peak."""
    from flowsentinel.core.cluster import Cluster
    from flowsentinel.models.scaleout import fit_on_cluster

    X, y = _load(split_dir, "train")
    pipe = _pipeline(list(X.columns))
    with Cluster(workers=workers).client() as client:
        assert client is not None
        started = time.perf_counter()
        fit_on_cluster(pipe, X, y, client)
        fit_s = time.perf_counter() - started
        peaks = client.run(_peak_rss)
    del X, y
    X_test, y_test = _load(split_dir, "test")
    return {
        "f1": _f1(pipe, X_test, y_test),
        "fit_seconds": fit_s,
        "peak_rss": _peak_rss(),
        "worker_peak_rss": sorted(peaks.values()),
    }


def _measure(name: str, args: list[str], log_dir: Path) -> tuple[Measurement, dict[str, Any]]:
    m = run_measured(name, [sys.executable, str(Path(__file__).resolve()), *args], log_dir=log_dir)
    found = m.last_json_line()
    if not m.ok or found is None:
        raise SystemExit(f"{name} failed ({m.returncode}): {m.stderr[-2000:]}")
    return m, found


def report(
    sizes: dict[str, Any], local: tuple[Measurement, dict[str, Any]], remote: Any, workers: int
) -> dict[str, Any]:
    """Print the comparison; return it as JSON values."""
    (lm, lres), (rm, rres) = local, remote
    diff = abs(rres["f1"] - lres["f1"])
    shares = [p / lm.peak_rss_bytes for p in rres["worker_peak_rss"]]
    mb = 2**20
    print(f"\nxgb defaults, {sizes['train']:,} training rows x {sizes['features']} features, "
          f"{sizes['test']:,} test rows")  # fmt: skip
    print(f"{'':24}{'F1':>10}{'fit s':>10}{'wall s':>10}{'peak RSS MB':>14}")
    print(f"{'in-process':24}{lres['f1']:>10.5f}{lres['fit_seconds']:>10.1f}{lm.seconds:>10.1f}"
          f"{lm.peak_rss_bytes / mb:>14.0f}")  # fmt: skip
    print(f"{f'{workers} Dask workers':24}{rres['f1']:>10.5f}{rres['fit_seconds']:>10.1f}"
          f"{rm.seconds:>10.1f}{rres['peak_rss'] / mb:>14.0f}  (client process)")  # fmt: skip
    for k, peak in enumerate(rres["worker_peak_rss"]):
        print(f"{f'  worker {k}':24}{'':30}{peak / mb:>14.0f}  ({shares[k]:.0%} of in-process)")
    ok_f1, ok_rss = diff <= F1_DIFF_MAX, max(shares) <= WORKER_RSS_SHARE_MAX
    print(f"F1 difference {diff:.5f} (target <= {F1_DIFF_MAX}): {'ok' if ok_f1 else 'MISSED'}")
    print(f"largest worker peak / in-process peak {max(shares):.2f} "
          f"(target <= {WORKER_RSS_SHARE_MAX}): {'ok' if ok_rss else 'MISSED'}")  # fmt: skip
    print(f"fit time ratio cluster / in-process {rres['fit_seconds'] / lres['fit_seconds']:.2f}")
    return {
        "sizes": sizes,
        "in_process": {**lres, "wall_seconds": lm.seconds, "wait4_peak_rss": lm.peak_rss_bytes},
        "cluster": {**rres, "wall_seconds": rm.seconds, "wait4_peak_rss": rm.peak_rss_bytes},
        "f1_difference": diff,
        "worker_rss_shares": shares,
        "targets_met": {"f1": ok_f1, "worker_rss": ok_rss},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--rows", type=int, default=350_000, help="rows per generated file")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=7, help="seed of the generated rows")
    p.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--results", type=Path, default=None)
    p.add_argument("--regen", action="store_true")
    p.add_argument("--child", choices=["in-process", "cluster"], help=argparse.SUPPRESS)
    p.add_argument("--split", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "in-process":
        print(json.dumps(child_in_process(args.split)))
        return 0
    if args.child == "cluster":
        print(json.dumps(child_cluster(args.split, args.workers)))
        return 0
    from bench_clean import ensure_data

    data_dir = args.workdir / "data"
    ensure_data(data_dir, args.datasets, args.files, args.rows, args.seed, args.regen)
    split_dir = args.workdir / f"scale-train-{args.files}x{args.rows}"
    split_dir.mkdir(parents=True, exist_ok=True)
    print("cleaning and splitting ...", flush=True)
    sizes = prepare_split(data_dir, split_dir)
    logs = split_dir / "logs"
    local = _measure("in-process", ["--child", "in-process", "--split", str(split_dir)], logs)
    remote = _measure(
        "cluster",
        ["--child", "cluster", "--split", str(split_dir), "--workers", str(args.workers)],
        logs,
    )
    result = report(sizes, local, remote, args.workers)
    results = args.results or split_dir / "results.json"
    results.write_text(json.dumps(result, indent=2))
    print(f"results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
