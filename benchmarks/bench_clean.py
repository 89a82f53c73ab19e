"""Benchmark of ``flowsentinel data clean`` against the parsing floor and the seed's method.

Run from the project's root::

    .venv/bin/python benchmarks/bench_clean.py              # full size: 8 x 350,000 rows
    .venv/bin/python benchmarks/bench_clean.py --rows 20000 --skip-seed   # quick look

What it does, in one run:

1. Generates (once; reused while the parameters are the same, ``--regen`` to force) ``--files``
   CSV files ``day1.csv`` ... of ``--rows`` rows each in the CIC-IDS2017 MachineLearningCVE
   dialect (the exact original header, CRLF line ends, ``Infinity``/``NaN`` texts), by seeded
   resampling of the real rows in ``../shared/datasets/cicids2017`` with jitter, a class mix like
   the Wednesday file and about 10 % exact duplicates. Eight files of 350,000 rows are about the
   size of the full CIC-IDS2017 (~900 MB). Data go to ``--workdir`` (default
   ``/tmp/flowsentinel-bench``), never into the repository.
2. Measures, each in a fresh child process (wall time seen by the parent, peak RSS and CPU
   times by ``wait4``): the first seed's method once (``_seed_clean.py``: concatenate in a loop,
   then the same steps in pandas, then Parquet); then ``--repeat`` times (default 3): the floor
   (``pyarrow.csv.read_csv`` of every file, default options), ``flowsentinel data clean FILES
   --dataset cicids2017 --task dos --out OUT`` cold (fresh ``FLOWSENTINEL_HOME``), the same again
   (warm columnar cache), again with other options (``--near-constant seed --keep-identifiers``),
   and the *write floors*: the time this machine takes to write new files of the sizes those runs
   wrote (``_write_floor.py``: ``os.write`` of a reused buffer, nothing of ours), which is the
   operating system's share of any program that writes them.
3. Prints one table (medians over the repetitions, with the range) and checks the issue's
   targets: cold run within 1.5x the floor; peak RSS within 2x the CSV bytes on disk; each re-run
   at least 20x faster than the seed's method; and puts the write floors beside the time each
   target leaves. Results also go to ``--results`` as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from _common import Measurement, human_bytes, run_measured

HERE = Path(__file__).resolve().parent
DEFAULT_DATASETS = HERE.parent.parent / "shared" / "datasets" / "cicids2017"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "flowsentinel-bench"

FRIDAY = "friday-ddos-machinelearningcve-head9998.csv.gz"
SAMPLE = "cicids2017-sample-grouped-labels.csv.gz"
THURSDAY = "thursday-webattacks-trafficlabelling.csv.gz"

#: Bump when the generated rows change, so that files made by an older generator are rebuilt.
GENERATOR_VERSION = 2

# Targets of the issue, and what it measured on its machine (for the record only).
FLOOR_RATIO_MAX = 1.5
RSS_RATIO_MAX = 2.0
RERUN_SPEEDUP_MIN = 20.0
ISSUE_REFERENCE = {"seed_seconds": 17.6, "seed_peak_gb": 3.8, "floor_seconds": 7.0}

# Generation parameters.
JITTER_ROW_SHARE = 0.70  # rows whose float columns get x (1 + N(0, JITTER_SD))
JITTER_SD = 0.01
DUPLICATE_SHARE = 0.10  # exact duplicate rows within a file (natural ones plus copies)
NONFINITE_SHARE = 0.001  # rows with Infinity / NaN rates (natural ones plus injected)
# Time columns (integer microseconds) scaled together by one factor per row, rounded: keeps
# integers integer and makes the rows that keep their float values distinct from their source.
TIME_COLUMNS = (
    "Flow Duration",
    "Flow IAT Max",
    "Flow IAT Min",
    "Fwd IAT Total",
    "Fwd IAT Max",
    "Fwd IAT Min",
    "Bwd IAT Total",
    "Bwd IAT Max",
    "Bwd IAT Min",
    "Active Max",
    "Active Min",
    "Idle Max",
    "Idle Min",
)
RATE_COLUMNS = ("Flow Bytes/s", "Flow Packets/s")
# TrafficLabelling identifiers dropped (Destination Port is kept: the MLCVE files have it).
TRAFFIC_LABELLING_IDS = (
    "Flow ID",
    "Source IP",
    "Source Port",
    "Destination IP",
    "Protocol",
    "Timestamp",
)

EN_DASH = "\u2013"
# Label written -> (group of real rows it is drawn from, share of all rows). BENIGN and the DoS
# family follow the Wednesday file (BENIGN 440,031; Hulk 231,073; GoldenEye 10,293; slowloris
# 5,796; Slowhttptest 5,499), the other attacks share 5 % as in the whole CIC-IDS2017.
_DOS = {
    "DoS Hulk": 231_073,
    "DoS GoldenEye": 10_293,
    "DoS slowloris": 5_796,
    "DoS Slowhttptest": 5_499,
}
_OTHER = {
    "PortScan": ("PortScan", 158_930),
    "FTP-Patator": ("BruteForce", 7_938),
    "SSH-Patator": ("BruteForce", 5_897),
    "Bot": ("Bot", 1_966),
    f"Web Attack {EN_DASH} Brute Force": (f"Web Attack {EN_DASH} Brute Force", 1_507),
    f"Web Attack {EN_DASH} XSS": (f"Web Attack {EN_DASH} XSS", 652),
    "Infiltration": ("Infiltration", 36),
    f"Web Attack {EN_DASH} Sql Injection": (f"Web Attack {EN_DASH} Sql Injection", 21),
}
LABEL_MIX: dict[str, tuple[str, float]] = {"BENIGN": ("BENIGN", 0.65)}
LABEL_MIX |= {k: ("DoS", 0.30 * v / sum(_DOS.values())) for k, v in _DOS.items()}
_other_total = sum(v for _, v in _OTHER.values())
LABEL_MIX |= {k: (g, 0.05 * v / _other_total) for k, (g, v) in _OTHER.items()}

FLOOR_CODE = """
import json, sys, time
import pyarrow.csv
start = time.perf_counter()
rows = 0
for path in sys.argv[1:]:
    rows += pyarrow.csv.read_csv(path).num_rows
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows}))
"""


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


@dataclass
class Pool:
    """The real rows that generated rows are drawn from, aligned on the MLCVE columns."""

    raw_header: list[str]  # the 79 names as written in the original files
    numeric: list[str]  # the 78 feature names, stripped (the copy is ``Fwd Header Length.1``)
    is_int: np.ndarray  # bool per numeric column
    values: np.ndarray  # float64 (rows x 78), integers exact
    groups: np.ndarray  # group name per row (object)
    needs_port: np.ndarray  # bool per row: the source had no Destination Port
    ports: np.ndarray  # Destination Port of every Friday row: the distribution to draw from


def read_raw_header(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return fh.readline().rstrip("\r\n").split(",")


def stripped_unique(names: list[str]) -> list[str]:
    """Strip names and number repeats the way pandas does (``Fwd Header Length.1``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        key = name.strip()
        count = seen.get(key, 0)
        seen[key] = count + 1
        out.append(key if count == 0 else f"{key}.{count}")
    return out


def load_pool(datasets: Path) -> Pool:
    raw_header = read_raw_header(datasets / FRIDAY)
    names = stripped_unique(raw_header)
    if len(raw_header) != 79 or names[0] != "Destination Port" or names[-1] != "Label":
        raise SystemExit(f"unexpected header in {datasets / FRIDAY}: {raw_header[:3]}...")
    numeric = names[:-1]

    friday = pd.read_csv(datasets / FRIDAY)
    friday.columns = friday.columns.str.strip()
    sample = pd.read_csv(datasets / SAMPLE)
    sample.columns = sample.columns.str.strip()
    sample["Destination Port"] = 0  # drawn per generated row from the Friday ports
    thursday = pd.read_csv(datasets / THURSDAY)
    thursday.columns = thursday.columns.str.strip()
    thursday = thursday.drop(columns=list(TRAFFIC_LABELLING_IDS))
    if "Fwd Header Length.1" not in thursday.columns:
        thursday["Fwd Header Length.1"] = thursday["Fwd Header Length"]

    is_int = np.array([pd.api.types.is_integer_dtype(friday[c]) for c in numeric])
    frames = [friday, sample, thursday]
    values = np.concatenate([f[numeric].to_numpy(np.float64) for f in frames])
    int_idx = np.flatnonzero(is_int)
    values[:, int_idx] = np.round(values[:, int_idx])  # Thursday writes integers as floats
    groups = np.concatenate([f["Label"].astype(str).str.strip().to_numpy(object) for f in frames])
    needs_port = np.concatenate(
        [np.zeros(len(friday), bool), np.ones(len(sample), bool), np.zeros(len(thursday), bool)]
    )
    return Pool(
        raw_header=raw_header,
        numeric=numeric,
        is_int=is_int,
        values=values,
        groups=groups,
        needs_port=needs_port,
        ports=friday["Destination Port"].to_numpy(np.float64),
    )


def excel_round(x: np.ndarray) -> np.ndarray:
    """Round like the original files (Excel's General format: at most 11 characters)."""
    a = np.abs(x)
    ok = np.isfinite(x) & (a > 0)
    int_digits = np.ones_like(x)
    np.floor(np.log10(a, out=np.zeros_like(x), where=ok), out=int_digits, where=ok)
    int_digits = np.maximum(int_digits + 1, 1)  # digits before the point (at least one)
    scale = 10.0 ** np.clip(10 - int_digits, 0, 9)
    out = np.where(ok, np.round(x * scale) / scale, x)
    return out + 0.0  # no negative zeros


def row_hashes(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of the final values (exact duplicates hash alike)."""
    canon = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
    bits = np.ascontiguousarray(canon).view(np.uint64)
    mult = np.random.default_rng(12345).integers(1, 2**63, size=bits.shape[1], dtype=np.uint64)
    mult |= np.uint64(1)
    h = (bits * mult).sum(axis=1, dtype=np.uint64)
    return h ^ (codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def duplicate_count(values: np.ndarray, codes: np.ndarray) -> int:
    return int(len(values) - np.unique(row_hashes(values, codes)).size)


def generate_rows(
    pool: Pool, rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """Draw ``rows`` rows: (values, label codes, label names, stats). Vectorised throughout."""
    labels = list(LABEL_MIX)
    weights = np.array([w for _, w in LABEL_MIX.values()])
    codes = rng.choice(len(labels), size=rows, p=weights / weights.sum())
    source = np.empty(rows, dtype=np.int64)
    for code, (_, (group, _)) in enumerate(LABEL_MIX.items()):
        members = np.flatnonzero(pool.groups == group)
        where = np.flatnonzero(codes == code)
        if len(members) == 0:
            raise SystemExit(f"no real rows for group {group!r}")
        source[where] = members[rng.integers(0, len(members), size=len(where))]
    values = pool.values[source]
    col = {name: j for j, name in enumerate(pool.numeric)}

    # Sources without a port (the grouped sample): a port from the Friday distribution.
    port_rows = np.flatnonzero(pool.needs_port[source])
    values[port_rows, col["Destination Port"]] = pool.ports[
        rng.integers(0, len(pool.ports), size=len(port_rows))
    ]

    # Time columns: one factor per row, rounded to integers.
    time_idx = np.array([col[c] for c in TIME_COLUMNS])
    factor = 1.0 + rng.normal(0.0, JITTER_SD, size=(rows, 1))
    values[:, time_idx] = np.round(values[:, time_idx] * factor)

    # Float columns: x (1 + N(0, sd)) per value on ~70 % of the rows, then rounded as Excel did.
    # Integral values stay as they are (a mean of equal packet sizes is a whole number).
    float_idx = np.flatnonzero(~pool.is_int)
    jitter_rows = np.flatnonzero(rng.random(rows) < JITTER_ROW_SHARE)
    block = values[np.ix_(jitter_rows, float_idx)]
    noise = 1.0 + rng.normal(0.0, JITTER_SD, size=block.shape)
    with np.errstate(invalid="ignore"):
        block *= np.where(np.mod(block, 1.0) == 0.0, 1.0, noise)
    values[np.ix_(jitter_rows, float_idx)] = block
    values[:, float_idx] = excel_round(values[:, float_idx])

    # Non-finite rates: the real ones come along; top up to NONFINITE_SHARE of the rows.
    rate_idx = np.array([col[c] for c in RATE_COLUMNS])
    natural_nonfinite = int((~np.isfinite(values[:, rate_idx])).any(axis=1).sum())
    extra = max(0, round(NONFINITE_SHARE * rows) - natural_nonfinite)
    finite_rows = np.flatnonzero(np.isfinite(values[:, rate_idx]).all(axis=1))
    chosen = rng.choice(finite_rows, size=min(extra, len(finite_rows)), replace=False)
    # As in the whole CIC-IDS2017 (Flow Bytes/s: 1,358 NaN, 1,509 Infinity), about half NaN.
    values[chosen, col["Flow Bytes/s"]] = np.where(rng.random(len(chosen)) < 0.5, np.nan, np.inf)
    values[chosen, col["Flow Packets/s"]] = np.inf

    # Exact duplicates: count the natural ones, then copy rows over others up to the target.
    # A copy may land on a row that already had a twin: top up again (two passes at most).
    natural_dups = duplicates = duplicate_count(values, codes)
    copies = 0
    for _ in range(3):
        missing = round(DUPLICATE_SHARE * rows) - duplicates
        if missing <= 0:
            break
        order = rng.permutation(rows)
        targets, keep = order[:missing], order[missing:]
        origins = keep[rng.integers(0, len(keep), size=missing)]
        values[targets] = values[origins]
        codes[targets] = codes[origins]
        copies += missing
        duplicates = duplicate_count(values, codes)
    nonfinite = int((~np.isfinite(values[:, rate_idx])).any(axis=1).sum())
    stats = {
        "rows": rows,
        "duplicates_natural": natural_dups,
        "duplicates_copied": copies,
        "duplicates": duplicates,
        "nonfinite_rows": nonfinite,
        "labels": {labels[i]: int(n) for i, n in enumerate(np.bincount(codes, None, len(labels)))},
    }
    return values, codes, labels, stats


def write_mlcve_csv(
    path: Path, pool: Pool, values: np.ndarray, codes: np.ndarray, labels: list[str]
) -> None:
    """Write in the original dialect: raw header, integers without ``.0``, CRLF, no quotes."""
    columns = np.asfortranarray(values)  # contiguous columns
    arrays: list[pa.Array] = []
    for j in range(len(pool.numeric)):
        column = columns[:, j]
        if pool.is_int[j]:
            arrays.append(pa.array(column.astype(np.int64)))
        elif np.isfinite(column).all():
            arrays.append(pa.array(column))
        else:  # the originals spell them Infinity and NaN (pyarrow would write inf / nan)
            text = pc.cast(pa.array(np.where(np.isfinite(column), column, 0.0)), pa.string())
            text = pc.if_else(pa.array(np.isposinf(column)), "Infinity", text)
            text = pc.if_else(pa.array(np.isneginf(column)), "-Infinity", text)
            arrays.append(pc.if_else(pa.array(np.isnan(column)), "NaN", text))
    arrays.append(pc.take(pa.array(labels), pa.array(codes)))
    names = [f"c{j}" for j in range(len(arrays))]  # the header is written by hand below
    table = pa.Table.from_arrays(arrays, names=names)
    buffer = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65536)
    pacsv.write_csv(table, buffer, options)
    body = buffer.getvalue().replace(b"\n", b"\r\n")
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        fh.write((",".join(pool.raw_header) + "\r\n").encode("utf-8"))
        fh.write(body)
    tmp.replace(path)


def ensure_data(
    data_dir: Path, datasets: Path, files: int, rows: int, seed: int, regen: bool
) -> dict[str, Any]:
    """Generate the CSV files unless the same parameters produced them already."""
    params = {"files": files, "rows": rows, "seed": seed, "generator": GENERATOR_VERSION}
    meta_path = data_dir.parent / "data.json"  # outside data_dir: the seed walks that folder
    paths = [data_dir / f"day{i}.csv" for i in range(1, files + 1)]
    if not regen and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        sizes = {p.name: p.stat().st_size for p in paths if p.exists()}
        if meta.get("params") == params and meta.get("sizes") == sizes:
            print(f"Reusing {files} CSV files in {data_dir} ({human_bytes(sum(sizes.values()))})")
            return meta | {"reused": True}
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    meta_path.unlink(missing_ok=True)
    print(f"Generating {files} CSV files of {rows:,} rows in {data_dir} ...", flush=True)
    start = time.perf_counter()
    pool = load_pool(datasets)
    per_file = []
    for i, path in enumerate(paths, start=1):
        rng = np.random.default_rng([seed, i])
        values, codes, labels, stats = generate_rows(pool, rows, rng)
        write_mlcve_csv(path, pool, values, codes, labels)
        stats["bytes"] = path.stat().st_size
        per_file.append(stats)
        print(
            f"  {path.name}: {human_bytes(stats['bytes'])}, {stats['duplicates']:,} duplicates, "
            f"{stats['nonfinite_rows']:,} rows with Infinity/NaN",
            flush=True,
        )
    seconds = time.perf_counter() - start
    sizes = {p.name: p.stat().st_size for p in paths}
    labels_total: dict[str, int] = {}
    for stats in per_file:
        for k, v in stats["labels"].items():
            labels_total[k] = labels_total.get(k, 0) + v
    meta = {
        "params": params,
        "sizes": sizes,
        "bytes": sum(sizes.values()),
        "generation_seconds": seconds,
        "labels": labels_total,
        "per_file": per_file,
    }
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    print(f"Generated {human_bytes(meta['bytes'])} in {seconds:.1f} s")
    return meta | {"reused": False}


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def child_env(home: Path | None = None) -> dict[str, str]:
    """The parent's environment without FLOWSENTINEL_* settings, plus the given home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWSENTINEL_")}
    if home is not None:
        env["FLOWSENTINEL_HOME"] = str(home)
    return env


def warm_page_cache(paths: list[Path]) -> None:
    """Read every file once, so that every measured step starts with the same (warm) cache."""
    for path in paths:
        with path.open("rb") as fh:
            while fh.read(1 << 24):
                pass


def parquet_rows(path: Path) -> int | None:
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException):
        return None


def report_failure(m: Measurement) -> None:
    print(f"\n{m.name} failed (exit {m.returncode}): {' '.join(m.command[:3])} ...")
    tail = (m.stderr or m.stdout).strip().splitlines()[-25:]
    print("\n".join("    " + line for line in tail) or "    (no output)")


OUR_RUNS = [
    ("ours, cold (CSV, empty cache)", "ours-cold", "OUT1", []),
    ("ours, re-run (same options)", "ours-rerun", "OUT2", []),
    (
        "ours, re-run (other options)",
        "ours-rerun-options",
        "OUT3",
        ["--near-constant", "seed", "--keep-identifiers"],
    ),
]


def run_ours(
    flowsentinel: Path,
    files: list[Path],
    out_root: Path,
    home: Path,
    log_dir: Path,
    rep: int,
    after: Callable[[int, Path], None],
) -> list[tuple[Measurement, Path]]:
    """One sequence of our three runs sharing the (fresh) ``home``: cold, same, other options.
    ``after(i, out)`` runs after the i-th of them (the write floor that mirrors it)."""
    results = []
    for i, (label, name, out_name, extra) in enumerate(OUR_RUNS):
        out = out_root / out_name
        shutil.rmtree(out, ignore_errors=True)
        command = [
            flowsentinel,
            "data",
            "clean",
            *files,
            "--dataset",
            "cicids2017",
            "--task",
            "dos",
            *extra,
            "--out",
            out,
        ]
        print(f"Running {label} ...", flush=True)
        m = run_measured(f"{name}-{rep}", command, env=child_env(home), log_dir=log_dir)
        if not m.ok:
            report_failure(m)
        results.append((m, out / "clean.parquet"))
        after(i, out)
    return results


def tree_bytes(*folders: Path) -> int:
    """Bytes of the regular files under ``folders`` (an inode once: hard links count once)."""
    seen: set[int] = set()
    total = 0
    for folder in folders:
        for path in folder.rglob("*"):
            st = path.lstat()
            if path.is_file() and not path.is_symlink() and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def write_floor(name: str, sizes: list[int], scratch: Path, log_dir: Path) -> Measurement:
    """The time to write ``sizes`` bytes into new files on this machine (``_write_floor.py``)."""
    command = [sys.executable, HERE / "_write_floor.py", scratch, *map(str, sizes)]
    m = run_measured(name, command, log_dir=log_dir)
    if not m.ok:
        report_failure(m)
    return m


def earlier_seed(results_path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """A seed measurement from an earlier run on the same files (used with --skip-seed)."""
    try:
        earlier = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if earlier.get("data", {}).get("fingerprint") != fingerprint:
        return None
    for row in earlier.get("rows", []):
        if row.get("key") == "seed" and row.get("ok"):
            return row | {"measured_at": row.get("measured_at") or earlier.get("finished_at")}
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def print_report(
    rows: list[dict[str, Any]], targets: list[dict[str, Any]], title: str, notes: list[str]
) -> None:
    headers = [
        "step",
        "seconds",
        "range",
        "user s",
        "sys s",
        "peak RSS MB",
        "x floor",
        "RSS / CSV",
        "speed-up",
        "rows out",
    ]
    body = [
        [
            r["step"] + ("" if r["ok"] else " (FAILED)"),
            fmt(r["seconds"], ".2f"),
            "-"
            if r.get("seconds_min") is None
            else f"{r['seconds_min']:.2f}-{r['seconds_max']:.2f}",
            fmt(r.get("user_seconds"), ".2f"),
            fmt(r.get("sys_seconds"), ".2f"),
            fmt(r["peak_rss_mb"], ",.0f"),
            fmt(r["x_floor"], ".2f", "x"),
            fmt(r["rss_over_csv"], ".2f", "x"),
            fmt(r["speedup_vs_seed"], ".1f", "x"),
            fmt(r["rows_out"], ",d"),
        ]
        for r in rows
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        widths = [max(len(str(x)) for x in col) for col in zip(headers, *body, strict=True)]
        for line in [headers, *body]:
            print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))
        print()
        for t in targets:
            print(f"{t['status']:5} {t['target']}: {t['detail']}")
        print("\n".join(notes))
        return
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for line in body:
        table.add_row(*line)
    console.print(table)
    checks = Table(title="Targets of the issue (medians of the repetitions)")
    for h in ("", "target", "measured"):
        checks.add_column(h)
    colour = {"PASS": "green", "FAIL": "red"}
    for t in targets:
        style = colour.get(t["status"], "yellow")
        checks.add_row(f"[{style}]{t['status']}[/]", t["target"], t["detail"])
    console.print(checks)
    for note in notes:
        console.print(note, highlight=False)


def make_targets(
    floor: dict[str, Any],
    seed: dict[str, Any] | None,
    ours: list[dict[str, Any]],
    writes: list[dict[str, Any]],
    csv_bytes: int,
) -> list[dict[str, Any]]:
    def status(ok: bool | None) -> str:
        return "N/A" if ok is None else ("PASS" if ok else "FAIL")

    cold, reruns = ours[0], ours[1:]
    targets = []
    x = ratio(cold["seconds"], floor["seconds"]) if cold["ok"] and floor["ok"] else None
    targets.append(
        {
            "target": f"ours cold <= {FLOOR_RATIO_MAX}x the floor",
            "status": "N/A" if not floor["ok"] else status(x is not None and x <= FLOOR_RATIO_MAX),
            "value": x,
            "detail": (
                f"{cold['seconds']:.2f} s vs {floor['seconds']:.2f} s = {x:.2f}x"
                if x is not None
                else ("floor failed" if not floor["ok"] else "cold run failed")
            ),
        }
    )
    measured = [r for r in ours if r["ok"]]
    if measured:
        worst = max(measured, key=lambda r: r["peak_rss_bytes"])
        rss_x = worst["peak_rss_bytes"] / csv_bytes
        ok_rss: bool | None = rss_x <= RSS_RATIO_MAX and cold["ok"]
        detail = (
            f"max {worst['peak_rss_mb']:,.0f} MB ({worst['step']}) for "
            f"{csv_bytes / 2**20:,.0f} MB of CSV = {rss_x:.2f}x"
        )
    else:
        rss_x, ok_rss, detail = None, False, "no run of ours succeeded"
    if not cold["ok"] and measured:
        detail += " (cold run failed)"
    targets.append(
        {
            "target": f"our peak RSS <= {RSS_RATIO_MAX}x the CSV bytes",
            "status": status(ok_rss),
            "value": rss_x,
            "detail": detail,
        }
    )
    for r in reruns:
        name = r["step"].removeprefix("ours, ")
        if seed is None:
            sx, st, detail = None, "N/A", "seed method not measured (--skip-seed)"
        elif not r["ok"]:
            sx, st, detail = None, "FAIL", "run failed"
        else:
            sx = seed["seconds"] / r["seconds"]
            st = status(sx >= RERUN_SPEEDUP_MIN)
            detail = f"{r['seconds']:.2f} s vs seed {seed['seconds']:.2f} s = {sx:.1f}x faster"
        targets.append(
            {
                "target": f"{name}: >= {RERUN_SPEEDUP_MIN:.0f}x faster than the seed",
                "status": st,
                "value": sx,
                "detail": detail,
            }
        )
    # What the machine charges for the new files alone, against the time each target leaves.
    cold_write, other_write = writes
    if floor["ok"] and cold_write["ok"]:
        room = (FLOOR_RATIO_MAX - 1) * floor["seconds"]
        targets.append(
            {
                "target": "context: cold, room above the floor vs writing its new files",
                "status": "INFO",
                "value": cold_write["seconds"],
                "detail": (
                    f"the target leaves {room:.2f} s above the floor; writing the "
                    f"{cold_write['bytes'] / 2**20:,.0f} MB of new files of a cold run "
                    f"(cache entries + clean.parquet) alone takes {cold_write['seconds']:.2f} s "
                    f"({cold_write['sys_seconds']:.2f} s system time) here; ours cold / "
                    "(floor + write floor) = "
                    f"{ratio(cold['seconds'], floor['seconds'] + cold_write['seconds']) or 0:.2f}"
                ),
            }
        )
    if seed is not None and other_write["ok"]:
        budget = seed["seconds"] / RERUN_SPEEDUP_MIN
        targets.append(
            {
                "target": "context: other options, budget vs writing its output",
                "status": "INFO",
                "value": other_write["seconds"],
                "detail": (
                    f"the target leaves {budget:.2f} s for the whole run; writing its "
                    f"{other_write['bytes'] / 2**20:,.0f} MB clean.parquet alone takes "
                    f"{other_write['seconds']:.2f} s ({other_write['sys_seconds']:.2f} s "
                    "system time) here"
                ),
            }
        )
    return targets


def row_of(
    key: str, step: str, runs: list[Measurement], csv_bytes: int, rows_out: int | None = None
) -> dict[str, Any]:
    """One table row from the repetitions of a step: median wall and CPU times, the range of
    the wall times, and the largest peak RSS (the memory target is judged on the worst)."""
    ok = bool(runs) and all(m.ok for m in runs)
    seconds = [m.seconds for m in runs]
    peak = max((m.peak_rss_bytes for m in runs), default=0)
    return {
        "key": key,
        "step": step,
        "ok": ok,
        "repetitions": len(runs),
        "seconds": statistics.median(seconds) if ok else None,
        "seconds_min": min(seconds) if ok else None,
        "seconds_max": max(seconds) if ok else None,
        "user_seconds": statistics.median(m.user_seconds for m in runs) if ok else None,
        "sys_seconds": statistics.median(m.sys_seconds for m in runs) if ok else None,
        "peak_rss_bytes": peak,
        "peak_rss_mb": peak / 2**20 if ok else None,
        "rss_over_csv": peak / csv_bytes if ok else None,
        "rows_out": rows_out,
        "child_report": runs[-1].last_json_line() if runs else None,
        "measurements": [m.as_dict() for m in runs],
    }


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark `flowsentinel data clean` against the CSV parsing floor and the "
        "seed's pandas method, on generated full-size CIC-IDS2017 CSV files."
    )
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="scratch folder")
    p.add_argument("--rows", type=int, default=350_000, help="rows per file")
    p.add_argument("--files", type=int, default=8, help="number of CSV files")
    p.add_argument("--seed", type=int, default=42, help="seed of the generator")
    p.add_argument("--regen", action="store_true", help="generate the files even if present")
    p.add_argument("--results", type=Path, default=None, help="JSON results (default: in workdir)")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="repetitions of the floor and of our three runs (medians are reported)",
    )
    p.add_argument(
        "--skip-seed",
        action="store_true",
        help="do not run the seed's method (an earlier measurement on the same files is reused)",
    )
    p.add_argument(
        "--flowsentinel",
        type=Path,
        default=Path(sys.executable).parent / "flowsentinel",
        help="the flowsentinel command (default: next to this Python)",
    )
    p.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="real CIC rows")
    p.add_argument("--keep-home", action="store_true", help="keep the FLOWSENTINEL_HOME used")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every target passes")
    args = p.parse_args(argv)
    if args.rows < 1000 or args.files < 1 or args.repeat < 1:
        p.error("--rows must be >= 1000, --files and --repeat >= 1")
    args.workdir = args.workdir.resolve()
    if args.results is None:
        args.results = args.workdir / "bench_clean.json"
    return args


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    args = parse_args(argv)
    repo = HERE.parent.resolve()
    if args.workdir == repo or repo in args.workdir.parents:
        raise SystemExit(f"--workdir must be outside the repository ({repo})")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    workdir: Path = args.workdir
    data_dir, out_root, log_dir = workdir / "data", workdir / "out", workdir / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    out_root.mkdir(exist_ok=True)

    data = ensure_data(data_dir, args.datasets, args.files, args.rows, args.seed, args.regen)
    files = [data_dir / name for name in sorted(data["sizes"], key=lambda n: int(n[3:-4]))]
    csv_bytes = sum(p.stat().st_size for p in files)
    fingerprint = {"params": data["params"], "sizes": data["sizes"]}
    warm_page_cache(files)

    seed: dict[str, Any] | None = None
    seed_row: dict[str, Any] | None = None
    if not args.skip_seed:
        print("Running the seed's method (pandas, concat in a loop) ...", flush=True)
        seed_out = out_root / "seed.parquet"
        seed_out.unlink(missing_ok=True)
        command = [sys.executable, HERE / "_seed_clean.py", data_dir, seed_out]
        m = run_measured("seed", command, env=child_env(), log_dir=log_dir)
        if not m.ok:
            report_failure(m)
        seed_row = row_of("seed", "seed method (pandas)", [m], csv_bytes)
        seed_row["rows_out"] = parquet_rows(seed_out) if m.ok else None
        seed = seed_row if m.ok else None
    else:
        seed = earlier_seed(args.results, fingerprint)
        if seed is not None:
            seed = seed_row = seed | {"step": f"seed (earlier run, {seed['measured_at']})"}

    # Each repetition: the floor, then our three runs on a fresh home, each write floor right
    # after the run whose bytes it writes (the time this machine takes to write new files of
    # those sizes, no encoding, no Python of ours): every ratio compares steps of one minute.
    floors: list[Measurement] = []
    runs: list[list[Measurement]] = [[], [], []]
    rows_out: list[int | None] = [None, None, None]
    cold_writes: list[Measurement] = []
    other_writes: list[Measurement] = []
    cold_bytes = other_bytes = 0
    if not args.flowsentinel.exists():
        print(f"\n{args.flowsentinel} does not exist: the rows of ours will fail.")
    scratch = workdir / "write-floor"
    for rep in range(args.repeat):
        print(f"Repetition {rep + 1} of {args.repeat}", flush=True)
        print("Running floor: pyarrow.csv.read_csv ...", flush=True)
        m = run_measured(
            f"floor-{rep}", [sys.executable, "-c", FLOOR_CODE, *files], log_dir=log_dir
        )
        if not m.ok:
            report_failure(m)
        floors.append(m)
        home = Path(tempfile.mkdtemp(prefix="home-", dir=workdir))

        def mirror(i: int, out: Path, rep: int = rep, home: Path = home) -> None:
            # right after the run it mirrors: the cold run's new files (cache entries, its
            # output), then the other-options run's output (its cache entries exist already)
            nonlocal cold_bytes, other_bytes
            if i == 0:
                cold_bytes = tree_bytes(home / "cache", out)
                print("Running write floor (new files of the cold run's size) ...", flush=True)
                cold_writes.append(write_floor(f"write-cold-{rep}", [cold_bytes], scratch, log_dir))
            elif i == 2:
                other_bytes = tree_bytes(out)
                print("Running write floor (the other-options output's size) ...", flush=True)
                other_writes.append(
                    write_floor(f"write-other-{rep}", [other_bytes], scratch, log_dir)
                )

        try:
            sequence = run_ours(args.flowsentinel, files, out_root, home, log_dir, rep, mirror)
            for i, (m, out) in enumerate(sequence):
                runs[i].append(m)
                rows_out[i] = parquet_rows(out) if m.ok else None
        finally:
            if not args.keep_home:
                shutil.rmtree(home, ignore_errors=True)

    floor = row_of("floor", "floor: pyarrow.csv.read_csv", floors, csv_bytes)
    ours = [
        row_of(f"ours{i}", label, runs[i], csv_bytes, rows_out[i])
        for i, (label, *_rest) in enumerate(OUR_RUNS)
    ]
    writes = [
        row_of("write-cold", "write floor: new files of a cold run", cold_writes, csv_bytes)
        | {"bytes": cold_bytes},
        row_of("write-other", "write floor: output of other options", other_writes, csv_bytes)
        | {"bytes": other_bytes},
    ]
    rows = [floor, *([seed_row] if seed_row else []), *ours, *writes]
    for r in rows:
        r["x_floor"] = ratio(r["seconds"], floor["seconds"]) if floor["ok"] else None
        r["speedup_vs_seed"] = (
            ratio(seed["seconds"], r["seconds"]) if seed and r["key"].startswith("ours") else None
        )
    targets = make_targets(floor, seed, ours, writes, csv_bytes)
    title = (
        f"data clean on {len(files)} CSV files x {args.rows:,} rows = "
        f"{csv_bytes / 2**20:,.0f} MB ({os.cpu_count()} CPUs, {args.repeat} repetitions)"
    )
    notes = [
        "seconds: median wall time of a fresh child (start-up included) over the repetitions; "
        "range: fastest-slowest; user/sys s: median CPU times of the child (wait4); peak RSS: "
        "largest over the repetitions; x floor: seconds / floor seconds; RSS / CSV: peak RSS / "
        "CSV bytes on disk; speed-up: seed seconds / seconds; MB = 2**20 bytes.",
        f"ours: {args.flowsentinel} data clean FILES --dataset cicids2017 --task dos "
        "[--near-constant seed --keep-identifiers] --out OUT, FLOWSENTINEL_HOME a fresh folder "
        "per repetition, shared by its three runs.",
        f"write floors: {HERE / '_write_floor.py'} writes new files of the bytes our cold run "
        f"left ({cold_bytes / 2**20:,.0f} MB: cache entries + clean.parquet) and of the "
        f"other-options clean.parquet ({other_bytes / 2**20:,.0f} MB) with os.write, no "
        "encoding: the operating system's share of any program that writes those bytes.",
    ]
    print()
    print_report(rows, targets, title, notes)

    results = {
        "started_at": started,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
            "numpy": np.__version__,
        },
        "data": {
            "folder": str(data_dir),
            "files": [str(p) for p in files],
            "csv_bytes": csv_bytes,
            "fingerprint": fingerprint,
            "generation_seconds": data.get("generation_seconds"),
            "generated_this_run": not data["reused"],
            "labels": data.get("labels"),
            "per_file": data.get("per_file"),
        },
        "targets_spec": {
            "cold_over_floor_max": FLOOR_RATIO_MAX,
            "peak_rss_over_csv_max": RSS_RATIO_MAX,
            "rerun_speedup_min": RERUN_SPEEDUP_MIN,
            "issue_reference": ISSUE_REFERENCE,
        },
        "rows": rows,
        "targets": targets,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    print(f"Results written to {args.results}")
    scored = [t for t in targets if t["status"] != "INFO"]
    if args.strict and any(t["status"] != "PASS" for t in scored):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
