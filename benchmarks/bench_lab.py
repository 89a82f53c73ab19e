"""The built-in lab: how long it takes to build, and how the demo model it trains judges real
captures, against a baseline tree's demo model measured in the same run.

Run ``flowsentinel demo`` once per tree with its own ``FLOWSENTINEL_HOME`` (the baseline tree
through ``PYTHONPATH=BASELINE/src``), then::

    python benchmarks/bench_lab.py --home HOME --baseline-home BASELINE_HOME

Prints the lab build time (seed 42, scale 1) and, for the benign and the attack captures of
``../shared/datasets/pcaps``, the share of flows each model flags as DoS and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections import Counter
from pathlib import Path

from flowsentinel.core.errors import InputError
from flowsentinel.core.settings import Settings
from flowsentinel.datasets.lab import build_lab
from flowsentinel.scanning import iter_capture_frames, scan_frames
from flowsentinel.scoring import Detector

PCAPS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "pcaps"
MODEL = "models:/flowsentinel-lab-dos@champion"


def flagged(home: Path, group: str) -> tuple[int, int]:
    """(flows flagged DoS, flows) over the readable captures of one folder."""
    det = Detector.load(MODEL, Settings(home=home))
    total: Counter[str] = Counter()
    for path in sorted((PCAPS / group).glob("*.pcap*")):
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                summary = scan_frames(iter_capture_frames(path), det, io.StringIO())
        except InputError:  # a capture the reader refuses is left out
            continue
        total.update(summary.by_label)
    n = sum(total.values())
    return n - total.get("BENIGN", 0), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--baseline-home", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    data, sessions = build_lab(42)
    print(f"lab build: {time.perf_counter() - started:.1f} s, {len(data) / 1e6:.0f} MB, "
          f"{len(sessions):,} sessions")  # fmt: skip
    for group in ("benign", "attack"):
        ours, n = flagged(args.home, group)
        base, _ = flagged(args.baseline_home, group)
        ratio = ours / base if base else float("nan")
        print(f"{group}: {n:,} flows; flagged DoS {ours / n:.1%} (baseline {base / n:.1%}, "
              f"ratio {ratio:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
