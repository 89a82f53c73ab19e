"""Benchmark: what reasons and novelty cost.

Two figures, each against a baseline measured in the same run, alternating:

- ``scan`` of a capture (the bench capture of ``../shared/tools/make-bench-capture.sh``) with
  reasons for every flagged flow against the same scan without reasons (both meter the capture,
  score every flow with its novelty and write every record): the ratio of the times (target
  ≤ 1.3);
- ``/v1/predict`` batches of 1,000 flows with ``explain=true`` (reasons for every flow) against
  the same batches without: flows per second of each, called in-process as ASGI (the app's whole
  path, no sockets; target ≥ 20,000 flows/s with reasons).

The model is the demo's (``flowsentinel demo`` registers ``flowsentinel-lab-dos``); without it in
``FLOWSENTINEL_HOME`` the benchmark trains it on the built-in lab first (about a minute):

    FLOWSENTINEL_HOME=DIR .venv/bin/python benchmarks/bench_trust.py --capture /tmp/bench.pcap
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_request_path import _bodies, _call
from flowsentinel.core.schema import snake_case
from flowsentinel.core.settings import Settings
from flowsentinel.scanning import iter_capture_frames, scan_frames
from flowsentinel.scoring import Detector, Explain

MODEL = "models:/flowsentinel-lab-dos@champion"


def _model(settings: Settings) -> Detector:
    try:
        return Detector.load(MODEL, settings)
    except Exception:
        from flowsentinel.demo import run_demo

        print("no demo model in this store: training it on the built-in lab", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            run_demo(Path(tmp), settings=settings)
        return Detector.load(MODEL, settings)


def _scan_seconds(capture: Path, det: Detector, explain: Explain) -> tuple[float, int]:
    out = io.StringIO()
    started = time.perf_counter()
    summary = scan_frames(iter_capture_frames(capture), det, out, explain=explain)
    flagged = summary.flows - summary.by_label.get(det.classes[0], 0)
    return time.perf_counter() - started, flagged


def _batch_rate(det: Detector, settings: Settings, explain: bool, repeats: int) -> float:
    from flowsentinel.service.app import create_app
    from flowsentinel.service.config import ServiceSettings
    from flowsentinel.service.engine import ModelSet

    models = ModelSet.load([MODEL], settings)
    app = create_app(ServiceSettings(models=[MODEL]), settings, models=models)
    (body,) = _bodies(det.features, snake_case, 1000)
    query = b"explain=true" if explain else b""

    async def run() -> float:
        async with app.router.lifespan_context(app):
            await _call(app, body, "/v1/predict", query)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                await _call(app, body, "/v1/predict", query)
                times.append(time.perf_counter() - started)
            return 1000 / float(np.median(times))

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, help="the bench capture (skipped without)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--repeats", type=int, default=20, help="batches per run")
    args = parser.parse_args()
    settings = Settings()
    det = _model(settings)
    print(f"model {det.name} v{det.version} ({det.model})")
    if args.capture is not None:
        plain, explained, flagged = [], [], 0
        _scan_seconds(args.capture, det, "flagged")  # warm-up (numba, caches)
        for _ in range(args.rounds):
            plain.append(_scan_seconds(args.capture, det, "none")[0])
            seconds, flagged = _scan_seconds(args.capture, det, "flagged")
            explained.append(seconds)
        a, b = float(np.median(plain)), float(np.median(explained))
        print(f"scan {args.capture.name}: {a:.2f} s without reasons, {b:.2f} s with reasons "
              f"for its {flagged:,} flagged flows: ratio {b / a:.2f} (target ≤ 1.3)")  # fmt: skip
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for explain in (False, True):
            rates[explain].append(_batch_rate(det, settings, explain, args.repeats))
    off, on = float(np.median(rates[False])), float(np.median(rates[True]))
    print(f"/v1/predict, 1,000 flows: {off:,.0f} flows/s without reasons, {on:,.0f} flows/s "
          f"with explain=true (target ≥ 20,000): ratio {on / off:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
