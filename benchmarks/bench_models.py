"""Model quality and training time on the shared real data (`../shared/datasets`).

Runs the real ``flowsentinel train --json`` commands in a temporary FLOWSENTINEL_HOME and prints
one Markdown table per experiment (and writes them to ``--out``):

1. UNSW-NB15 82,332 rows, ``--protocol seed`` (the second seed's split): every model, our best
   against the second seed's pipeline (``seed-b``) on the same split, in one run.
   Targets: F1 ≥ 0.985, ROC-AUC ≥ 0.998, FPR ≤ 1.5%.
2. The same data under ``holdout``: every model; the five seed models (lr, rf, knn, dt, xgb,
   ``--n-iter 5``) are one timed ``train`` command (target: under 10 minutes on 2 cores).
3. CIC-IDS2017 DoS vs BENIGN on the shared CIC CSVs (DoS rows only in the grouped sample file),
   ``seed`` protocol (target F1 ≥ 0.99) and ``holdout`` (FPR at the natural ratio).

Usage: ``python benchmarks/bench_models.py [--n-iter 5] [--out results.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
UNSW = SHARED / "unsw-nb15" / "UNSW_NB15_training-set.csv.gz"
CIC = [
    SHARED / "cicids2017" / "cicids2017-sample-grouped-labels.csv.gz",
    SHARED / "cicids2017" / "friday-ddos-machinelearningcve-head9998.csv.gz",
    SHARED / "cicids2017" / "thursday-webattacks-trafficlabelling.csv.gz",
]
COLS = ["f1", "precision", "recall", "roc_auc", "pr_auc", "balanced_accuracy", "fpr"]


def train(home: Path, *args: str) -> tuple[dict[str, Any], float]:
    env = {**os.environ, "FLOWSENTINEL_HOME": str(home)}
    cmd = [sys.executable, "-m", "flowsentinel", "train", *args, "--json"]
    started = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return json.loads(res.stdout), seconds


def table(title: str, results: list[dict[str, Any]], seconds: float | None = None) -> str:
    first = results[0]
    lines = [
        f"### {title}",
        "",
        f"{first['dataset']} / {first['task']}, protocol `{first['protocol']}`: "
        f"{first['n_train']:,} training rows, {first['n_test']:,} test rows"
        + (f"; whole command {seconds:.0f} s" if seconds is not None else ""),
        "",
        "| model | " + " | ".join(COLS) + " | fit s | tuning s | predict s |",
        "|---|" + "---|" * (len(COLS) + 3),
    ]
    for r in results:
        for m in r["models"]:
            mt = m["metrics"]
            cells = ["n/a" if mt.get(c) is None else f"{mt[c]:.4f}" for c in COLS]
            lines.append(
                f"| {m['name']} | "
                + " | ".join(cells)
                + f" | {mt['fit_seconds']:.1f} | {mt.get('tuning_seconds', 0):.1f}"
                f" | {mt['predict_seconds']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-iter", default="5")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--skip-cic", action="store_true")
    args = ap.parse_args()
    if not UNSW.exists():
        raise SystemExit(f"needs the shared data sets at {SHARED}")
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        common = ["--task", "attack", "--n-iter", args.n_iter]
        seed_r, _ = train(home, str(UNSW), *common, "--protocol", "seed", "--models", "all")
        out.append(table("UNSW-NB15, seed protocol (second seed's split)", [seed_r]))
        print(out[-1], flush=True)
        five, five_s = train(home, str(UNSW), *common, "--models", "lr,rf,knn,dt,xgb")
        rest, _ = train(home, str(UNSW), *common, "--models", "seed-b,hgb,lgbm")
        out.append(
            table(
                "UNSW-NB15, holdout (five seed models timed as one command)", [five, rest], five_s
            )
        )
        print(out[-1], flush=True)
        if not args.skip_cic:
            cic = [str(p) for p in CIC]
            for protocol in ("seed", "holdout"):
                r, s = train(
                    home,
                    *cic,
                    "--task",
                    "dos",
                    "--mixed",
                    "intersect",
                    "--n-iter",
                    args.n_iter,
                    "--protocol",
                    protocol,
                    "--models",
                    "lr,rf,knn,dt,xgb,lgbm",
                )
                out.append(table(f"CIC-IDS2017 DoS vs BENIGN, {protocol}", [r], s))
                print(out[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(out))


if __name__ == "__main__":
    main()
