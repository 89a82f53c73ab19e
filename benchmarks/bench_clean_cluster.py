"""Benchmark of ``flowsentinel data clean`` in-process against the same on a Dask cluster.

Run from the project's root::

    .venv/bin/python benchmarks/bench_clean_cluster.py               # 8 x 350,000 rows
    .venv/bin/python benchmarks/bench_clean_cluster.py --rows 100000 # quicker

The CSV files are those of ``bench_clean.py`` (generated once in ``--workdir``, reused). Every
run is a fresh child measured by ``_common.run_measured`` (wall time, peak RSS), without the
columnar cache (``--no-cache``: the cluster path does not use it):

1. in-process: ``data clean FILES --dataset cicids2017 --task dos`` (the baseline);
2. ``--cluster ADDR`` on a ``dask scheduler`` and ``--workers`` ``dask worker`` processes
   started beforehand (one thread each): the measured process is the client alone, so its peak
   RSS is the client's;
3. ``--workers N``: the same with a local cluster started by the command (start-up included;
   its peak RSS is the largest of the client and its worker processes).

The outputs are compared (the reports without their time, and an order-sensitive checksum of
every column of ``clean.parquet``), and the ratios printed against the in-process run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from _common import Measurement, human_bytes, run_measured
from bench_clean import DEFAULT_DATASETS, child_env, ensure_data, report_failure, warm_page_cache

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from dask_cluster import start_cluster  # noqa: E402  # the tests' real scheduler and workers

DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "flowsentinel-bench-cluster"


def checksum(path: Path) -> dict[str, int]:
    """Per column: the wrapping sum of (row number + 1) x the value's hash (order-sensitive)."""
    weight = pl.int_range(1, pl.len() + 1, dtype=pl.UInt64)
    row = pl.all().hash(seed=1) * weight
    frame = pl.scan_parquet(path).select(row.sum()).collect()
    return {c: int(frame[c][0]) for c in frame.columns}


def report_of(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "cleaning_report.json").read_text())
    report.pop("seconds")
    return report


def clean(
    name: str, flowsentinel: Path, files: list[Path], out: Path, extra: list[str], logs: Path
) -> Measurement:
    shutil.rmtree(out, ignore_errors=True)
    command = [flowsentinel, "data", "clean", *files, "--dataset", "cicids2017", "--task", "dos"]
    print(f"Running {name} ...", flush=True)
    home = out.parent / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    m = run_measured(
        name, [*command, "--no-cache", "--out", out, *extra], env=child_env(home), log_dir=logs
    )
    if not m.ok:
        report_failure(m)
    return m


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="data clean in-process against on a Dask cluster")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="scratch folder")
    p.add_argument("--rows", type=int, default=350_000, help="rows per file")
    p.add_argument("--files", type=int, default=8, help="number of CSV files")
    p.add_argument("--seed", type=int, default=42, help="seed of the generator")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    p.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="real CIC rows")
    p.add_argument(
        "--flowsentinel", type=Path, default=Path(sys.executable).parent / "flowsentinel"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    data_dir, out_root, logs = workdir / "data", workdir / "out", workdir / "logs"
    out_root.mkdir(parents=True, exist_ok=True)
    data = ensure_data(data_dir, args.datasets, args.files, args.rows, args.seed, False)
    files = [data_dir / name for name in sorted(data["sizes"], key=lambda n: int(n[3:-4]))]
    warm_page_cache(files)
    fs = args.flowsentinel
    local = out_root / "local"
    runs = [("in-process", local, clean("in-process", fs, files, local, [], logs))]
    cluster = start_cluster(logs / "dask", workers=args.workers)
    try:
        out = out_root / "cluster"
        extra = ["--cluster", cluster.address]
        runs.append(
            (
                f"--cluster ({args.workers} workers)",
                out,
                clean("cluster", fs, files, out, extra, logs),
            )
        )
    finally:
        cluster.stop()
    out = out_root / "workers"
    extra = ["--workers", str(args.workers)]
    runs.append(
        (
            f"--workers {args.workers} (start-up included)",
            out,
            clean("workers", fs, files, out, extra, logs),
        )
    )
    if not all(m.ok for _, _, m in runs):
        return 1
    base = runs[0][2]
    reference = (report_of(local), checksum(local / "clean.parquet"))
    print(f"\n{args.files} files x {args.rows:,} rows, {reference[0]['rows_out']:,} rows kept\n")
    print(f"{'run':<34} {'seconds':>8} {'speed-up':>9} {'peak RSS':>10} {'RSS ratio':>10} same")
    for label, out, m in runs:
        same = (report_of(out), checksum(out / "clean.parquet")) == reference
        print(
            f"{label:<34} {m.seconds:8.2f} {base.seconds / m.seconds:9.2f} "
            f"{human_bytes(m.peak_rss_bytes):>10} {m.peak_rss_bytes / base.peak_rss_bytes:10.2f} "
            f"{'yes' if same else 'NO'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
