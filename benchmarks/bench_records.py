"""Benchmark: building verdict records (``scanning.flow_records``) against the former records.

The flows are those of a real capture (``slowloris-lab.pcap``, 300 flows) repeated to ``--flows``;
the verdicts are fixed probabilities, so only the records are timed, in this process. Rows:

- baseline: the former ``scan`` records (the raw CIC identifier columns copied as they were,
  then the verdict set per flow), reproduced here;
- ``flow_records``: the identity (addresses, ports, protocol keyword, ISO start in UTC,
  duration, packets and bytes each way) and the verdict;
- the verdict part alone (what ``/v1/predict`` answers).

Rounds alternate between the rows; the table shows medians and the ratio to the baseline.

    .venv/bin/python benchmarks/bench_records.py --flows 100000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsentinel.capture import iter_flow_batches
from flowsentinel.core import schema as sc
from flowsentinel.scanning import flow_records
from flowsentinel.scoring import Verdicts

CAPTURE = Path(__file__).resolve().parents[2] / "shared/datasets/pcaps/attack/slowloris-lab.pcap"


def former_records(frame: pd.DataFrame, verdicts: Verdicts) -> list[dict[Any, Any]]:
    """The records ``scan`` wrote before: raw identifier columns, then the verdict per flow."""
    ids = [c for c in sc.CIC_IDENTIFIERS if c in frame.columns]
    records = frame[ids].astype(object).where(frame[ids].notna(), None).to_dict("records")
    for rec, label, p, pa in zip(
        records, verdicts.labels, verdicts.probability, verdicts.attack_probability, strict=True
    ):
        rec["label"] = str(label)
        rec["probability"] = round(float(p), 6)
        rec["attack_probability"] = round(float(pa), 6)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=CAPTURE)
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    one = pd.concat(list(iter_flow_batches(args.capture)), ignore_index=True)
    frame = pd.concat([one] * -(-args.flows // len(one)), ignore_index=True).head(args.flows)
    rng = np.random.default_rng(7)
    attack = rng.uniform(size=len(frame))
    verdicts = Verdicts.from_proba(np.column_stack([1 - attack, attack]), ["BENIGN", "DoS"])
    rows: dict[str, Callable[[], object]] = {
        "former records (raw CIC identifiers), baseline": lambda: former_records(frame, verdicts),
        "flow_records (identity + verdict)": lambda: flow_records(verdicts, frame),
        "verdict part alone (/v1/predict)": lambda: flow_records(verdicts),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(next(iter(times.values())))
    print(f"{len(frame):,} flows, {args.rounds} rounds, medians")
    print(f"| {'records':<48} | {'seconds':>8} | {'µs/flow':>8} | {'ratio':>6} |")
    print(f"|{'-' * 50}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    for name, values in times.items():
        median = statistics.median(values)
        per_flow = 1e6 * median / len(frame)
        print(f"| {name:<48} | {median:>8.3f} | {per_flow:>8.2f} | {median / base:>6.2f} |")


if __name__ == "__main__":
    main()
