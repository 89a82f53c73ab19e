"""Benchmark: the alert outputs against writing the records as JSON lines.

The records are the flow records of a real capture (``slowloris-lab.pcap``, 300 flows) with
fixed verdicts, repeated to ``--flows``; everything runs in this process. Rows, each writing
every record to a file in a temporary folder:

- baseline: ``json_line`` of every record to the file (what ``scan -o`` writes as ``jsonl``);
- ``eve``/``ecs``: the same lines through :class:`FlowWriter` (each record parsed back and
  rewritten as an EVE ``flow`` record or an ECS document);
- ``queued file sink``: every EVE record submitted to a :class:`QueuedSink` over a
  :class:`FileSink` (the queue, the worker thread, rotation checks), timed until it is flushed.

Rounds alternate between the rows; the table shows medians, records per second and the ratio
of each row's time to the baseline's.

    .venv/bin/python benchmarks/bench_alerts.py --flows 30000 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsentinel.alerts import eve
from flowsentinel.alerts.outputs import FlowWriter
from flowsentinel.alerts.sinks import FileSink, QueuedSink
from flowsentinel.capture import iter_flow_batches
from flowsentinel.scanning import flow_records, json_line
from flowsentinel.scoring import Verdicts

CAPTURE = Path(__file__).resolve().parents[2] / "shared/datasets/pcaps/attack/slowloris-lab.pcap"


def records_of(capture: Path, flows: int) -> list[dict[str, Any]]:
    one = pd.concat(list(iter_flow_batches(capture)), ignore_index=True)
    frame = pd.concat([one] * -(-flows // len(one)), ignore_index=True).head(flows)
    attack = np.random.default_rng(7).uniform(size=len(frame))
    verdicts = Verdicts.from_proba(np.column_stack([1 - attack, attack]), ["BENIGN", "DoS"])
    return flow_records(verdicts, frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=CAPTURE)
    parser.add_argument("--flows", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = records_of(args.capture, args.flows)
    text = "".join(json_line(r) for r in records)
    events = [eve.flow_event(r) for r in records]

    def baseline(folder: Path) -> None:
        with (folder / "a.jsonl").open("w") as fh:
            fh.write("".join(json_line(r) for r in records))

    def rewrite(fmt: Any) -> Callable[[Path], None]:
        def run(folder: Path) -> None:
            with (folder / f"a.{fmt}").open("w") as fh:
                FlowWriter(fh, fmt).write(text)

        return run

    def queued(folder: Path) -> None:
        sink = QueuedSink(FileSink(folder / "q.json"), folder / "spool.jsonl",
                          queue_size=len(events) + 1).start()  # fmt: skip
        for e in events:
            sink.submit(e)
        assert sink.flush(600)
        sink.close()
        assert sink.counters.delivered == len(events), sink.counters

    rows: dict[str, Callable[[Path], None]] = {
        "baseline: json lines": baseline,
        "eve flow records": rewrite("eve"),
        "ecs documents": rewrite("ecs"),
        "queued file sink (eve)": queued,
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                run(Path(folder))
                times[name].append(time.perf_counter() - started)
    base = statistics.median(times["baseline: json lines"])
    out = io.StringIO()
    out.write(f"{len(records):,} flow records, {args.rounds} rounds (medians)\n\n")
    out.write("| row | seconds | records/s | × baseline time |\n|---|---|---|---|\n")
    for name, found in times.items():
        median = statistics.median(found)
        rate = len(records) / median
        out.write(f"| {name} | {median:.3f} | {rate:,.0f} | {median / base:.2f} |\n")
    print(out.getvalue())


if __name__ == "__main__":
    main()
