"""Benchmark: one small capture alone, ``flowsentinel flows small.pcap -o out.csv``, start to exit.

Rows, measured in turns in this run (``--rounds`` of each, median and range; wall time of the
whole process from spawn to exit, and its CPU time):

- **bare interpreter** — ``python -c pass``: the floor of any Python command;
- **command line** — ``flowsentinel --help``: the interpreter, typer and our command line;
- **flows, compiled kernels** — the command as shipped (``capture.kernels``' module, built
  before the first timed run);
- **flows, numba JIT** — the same command with ``FLOWSENTINEL_KERNELS=jit``: numba's import,
  its typing and target contexts and its on-disk cache (filled before the first timed run).

The small capture is the first of 1,000 record-aligned slices of the bench capture (about 1,200
packets), as in ``bench_scale.py``; any capture can be given with ``--small``. Python's own
bytecode cache is kept (``PYTHONDONTWRITEBYTECODE`` is removed from the children's
environment), as an installed package has it.

    .venv/bin/python benchmarks/bench_startup.py --capture /tmp/bench.pcap --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _common import Measurement, run_measured
from bench_scale import cut

PYTHON = sys.executable
FLOWS = [PYTHON, "-m", "flowsentinel", "flows"]


def summary(runs: list[Measurement]) -> dict[str, object]:
    seconds = [m.seconds for m in runs]
    return {
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
        "cpu_median_s": round(statistics.median(m.user_seconds + m.sys_seconds for m in runs), 3),
        "ok": all(m.ok for m in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=Path("/tmp/bench.pcap"))
    parser.add_argument("--small", type=Path, help="the small capture (default: cut one)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    jit_env = {**env, "FLOWSENTINEL_KERNELS": "jit"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small = args.small
        if small is None:
            if not args.capture.exists():
                raise SystemExit(
                    f"{args.capture}: make it with ../shared/tools/make-bench-capture.sh"
                )
            small = Path(cut(args.capture, 1000, work / "slices", min_bytes=1)[0])
        out = work / "out.csv"
        rows: dict[str, tuple[list[str], dict[str, str]]] = {
            "bare_interpreter": ([PYTHON, "-c", "pass"], env),
            "command_line_help": ([PYTHON, "-m", "flowsentinel", "--help"], env),
            "flows_compiled_kernels": ([*FLOWS, str(small), "-o", str(out)], env),
            "flows_numba_jit": ([*FLOWS, str(small), "-o", str(out)], jit_env),
        }
        logs = work / "logs"
        for name, (command, child_env) in rows.items():  # warm-up: builds, caches, page cache
            warm = run_measured(f"warm-{name}", command, env=child_env, log_dir=logs)
            if not warm.ok:
                raise SystemExit(f"{name} failed: {warm.stderr.strip().splitlines()[-1:]}")
        runs: dict[str, list[Measurement]] = {name: [] for name in rows}
        for k in range(args.rounds):  # in turns: a busy moment weighs on every row alike
            for name, (command, child_env) in rows.items():
                runs[name].append(run_measured(f"{name}-{k}", command, env=child_env, log_dir=logs))
        report: dict[str, object] = {"small_capture_bytes": small.stat().st_size}
        report.update({name: summary(measured) for name, measured in runs.items()})
        medians = {name: statistics.median(m.seconds for m in measured)
                   for name, measured in runs.items()}  # fmt: skip
        report["ratio_jit_over_compiled"] = round(
            medians["flows_numba_jit"] / medians["flows_compiled_kernels"], 2
        )
        report["compiled_over_bare_interpreter_s"] = round(
            medians["flows_compiled_kernels"] - medians["bare_interpreter"], 3
        )
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
