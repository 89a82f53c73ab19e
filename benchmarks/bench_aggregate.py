"""Benchmark: what the aggregate detector adds to a scan, and whether its memory stays flat.

Three rows, each in its own child (``_common.run_measured``): the scan pipeline (meter + model
verdicts) without the aggregate detector (the baseline), the same with it (packet tap, windows,
incidents), then both on two time-shifted copies of the capture back to back (the detector's
memory should not grow with the capture: windows expire). The time is the scan itself,
measured in the child (model loading excluded); the ratio is against the baseline of the same
run; "in the detector" is the time spent in the tap (windows), in handing it the flagged flows
and at its finish (the last windows, the incidents), and in placing every flow in its incident
(the ledger of flows and ``Aggregate.place``, which ``scan`` runs before it reports; counted in
the scan's time too), timed in the same child (robust to a busy
machine, where the ratio of two runs is not), with its share of the scan. Each row runs
``--repeat`` times (the rows interleaved) and shows its median run (by scan time).

    FLOWSENTINEL_HOME=... .venv/bin/python benchmarks/bench_aggregate.py \
        --capture /tmp/bench.pcap --model flowsentinel-lab-dos
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import human_bytes, run_measured
from bench_flows import shifted_copies

CHILD = """
import contextlib, json, sys, time
from pathlib import Path
from flowsentinel.capture import CaptureStats
from flowsentinel.scanning import Aggregate, iter_capture_frames, scan_frames
from flowsentinel.scoring import Detector
path, model, with_aggregate = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
with contextlib.redirect_stdout(sys.stderr):
    det = Detector.load(model)
stats = CaptureStats()
aggregate = Aggregate(benign=det.classes[0]) if with_aggregate else None
spent = {"tap": 0.0, "hand_over": 0.0, "finish": 0.0, "place": 0.0}
if aggregate is not None:
    tap, finish = aggregate.tap, aggregate.finish
    def timed(f, part):
        def run(*a):
            t0 = time.perf_counter()
            f(*a)
            spent[part] += time.perf_counter() - t0
        return run
    aggregate.tap, aggregate.finish = timed(tap, "tap"), timed(finish, "finish")
    aggregate.add_ledger = timed(aggregate.add_ledger, "place")
    import flowsentinel.scanning as scanning
    scanning._flagged_to_incidents = timed(scanning._flagged_to_incidents, "hand_over")
t = time.perf_counter()
summary = scan_frames(iter_capture_frames(path, stats, aggregate), det, None, aggregate=aggregate)
if aggregate is not None:  # each flow in its incident, as scan does before it reports
    t0 = time.perf_counter()
    aggregate.place()
    spent["place"] += time.perf_counter() - t0
seconds = time.perf_counter() - t
incidents = aggregate.incidents() if aggregate else []
print(chr(10).join(f"{i['label']} {i['target_ip']} {i['first']} {i['to_target']['packets']}"
                for i in incidents), file=sys.stderr)
print(json.dumps({"seconds": seconds, "in_detector": sum(spent.values()), **spent,
                  "packets": stats.packets, "flows": summary.flows, "incidents": len(incidents)}))
"""


def median_run(runs: list[tuple[dict[str, float], int]]) -> tuple[dict[str, float], int]:
    """The run of median scan time (the upper one of an even count)."""
    ranked = sorted(runs, key=lambda r: r[0]["seconds"])
    return ranked[len(ranked) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=Path("/tmp/bench.pcap"))
    ap.add_argument("--model", default="flowsentinel-lab-dos")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row, the median shown")
    args = ap.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-aggregate-"))
    doubled = logs / "two-copies.pcap"
    shifted_copies(args.capture, doubled, 2)
    rows = [
        ("without aggregate", args.capture, "0"),
        ("with aggregate", args.capture, "1"),
        ("without aggregate, 2 copies", doubled, "0"),
        ("with aggregate, 2 copies", doubled, "1"),
    ]
    runs: dict[str, list[tuple[dict[str, float], int]]] = {name: [] for name, _, _ in rows}
    for k in range(args.repeat):
        for name, path, flag in rows:
            m = run_measured(
                f"{name.replace(' ', '_').replace(',', '')}-{k}",
                [sys.executable, "-c", CHILD, str(path), args.model, flag],
                log_dir=logs,
            )
            if m.returncode:
                raise SystemExit(f"{name} failed: {m.stderr[-2000:]}")
            inner = json.loads(m.stdout.strip().splitlines()[-1])
            runs[name].append((inner, m.peak_rss_bytes))
    results = [(name, *median_run(runs[name])) for name, _, _ in rows]
    base = results[0][1]["seconds"]
    print("| run | packets | flows | incidents | scan s | ratio | in the detector | "
          "tap / hand-over / finish / placing s | peak RSS |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, inner, rss in results:
        ratio = inner["seconds"] / base
        share = inner["in_detector"] / inner["seconds"]
        parts = " / ".join(f"{inner[p]:.2f}" for p in ("tap", "hand_over", "finish", "place"))
        print(f"| {name} | {inner['packets']:,} | {inner['flows']:,} | {inner['incidents']} "
              f"| {inner['seconds']:.2f} | {ratio:.2f} | {inner['in_detector']:.2f} s "
              f"({share:.1%}) | {parts} | {human_bytes(rss)} |")  # fmt: skip
    doubled.unlink()
    print(f"logs (incidents on stderr): {logs}")


if __name__ == "__main__":
    main()
