"""Benchmark: what one single-flow ``/reports/`` request costs inside the app, without sockets.

The app is called directly as ASGI (the same middleware, routing, body decoding, model call and
answer as under uvicorn), one request after another, over a few hundred generated flows: the
median over repeats of the cost per request, in microseconds, as elapsed time and as the
process's CPU time (the steadier figure when other jobs share the cores). With ``--baseline
DIR`` (a source tree of another version, e.g. ``git worktree add ../before REV``) the same
measurement runs for that tree in a child process, alternating with ours, and the ratios are
printed. Far steadier on a shared 2-core VM than the HTTP figures of ``bench_service.py``,
whose medians still move by 20-30 % from run to run.

Needs a store with a CIC-IDS2017 champion (``bench_service.py --home DIR`` trains one):

    FLOWSENTINEL_HOME=DIR .venv/bin/python benchmarks/bench_request_path.py --baseline ../before

``--batch N`` measures ``/v1/predict`` with one batch of N flows instead (CPU time counts the
thread pool that scores bodies above 16 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "models:/flowsentinel-cicids2017-dos@champion"


def _bodies(features: list[str], snake: Any, batch: int) -> list[bytes]:
    """A few hundred single-flow bodies or, with ``batch``, one body of that many flows."""
    from flowsentinel.datasets.synthetic import generate_flows

    flows = generate_flows(max(300, batch + batch // 4), seed=99).to_pandas()
    finite = np.isfinite(flows[features].to_numpy(dtype=float)).all(axis=1)
    records = [{snake(f): float(r[f]) for f in features} for _, r in flows[finite].iterrows()]
    if batch:
        return [json.dumps({"flows": records[:batch]}).encode()]
    return [json.dumps(record).encode() for record in records]


async def _call(app: Any, body: bytes, path: str, query: bytes = b"") -> None:
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"{path} answered {status}")


def measure(repeats: int, batch: int = 0) -> tuple[float, float]:
    """Median microseconds per request of this interpreter's flowsentinel: elapsed time and
    this process's CPU time (steadier when other jobs share the cores)."""
    from flowsentinel.core.settings import Settings
    from flowsentinel.service.app import create_app
    from flowsentinel.service.config import ServiceSettings
    from flowsentinel.service.engine import ModelSet

    try:
        from flowsentinel.core.schema import snake_case
    except ImportError:  # older trees kept the schema in the data-set layer
        from flowsentinel.datasets.schema import snake_case  # type: ignore[no-redef]

    settings = Settings()
    models = ModelSet.load([MODEL], settings)
    app = create_app(ServiceSettings(models=[MODEL]), settings, models=models)
    bodies = _bodies(models.models[0].detector.features, snake_case, batch)
    path = "/v1/predict" if batch else "/reports/"

    async def run() -> tuple[float, float]:
        async with app.router.lifespan_context(app):
            for body in bodies[:100]:  # warm-up
                await _call(app, body, path)
            elapsed, cpu = [], []
            for _ in range(repeats):
                started, cpu_started = time.perf_counter(), time.process_time()
                for body in bodies:
                    await _call(app, body, path)
                elapsed.append((time.perf_counter() - started) / len(bodies) * 1e6)
                cpu.append((time.process_time() - cpu_started) / len(bodies) * 1e6)
            return float(np.median(elapsed)), float(np.median(cpu))

    return asyncio.run(run())


def _child(tree: Path | None, repeats: int, batch: int) -> tuple[float, float]:
    env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
    if tree is not None:
        env["PYTHONPATH"] = str(tree.resolve() / "src")
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
    code += f"import bench_request_path as b; print(*b.measure({repeats}, {batch}))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    elapsed, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(elapsed), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="a source tree of another version")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each tree")
    ap.add_argument("--repeats", type=int, default=9, help="passes over the flows per run")
    ap.add_argument(
        "--batch", type=int, default=0, help="/v1/predict with one batch of this many flows"
    )
    args = ap.parse_args()
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for _ in range(args.rounds if args.baseline else 1):
        ours.append(_child(None, args.repeats, args.batch))
        if args.baseline:
            theirs.append(_child(args.baseline, args.repeats, args.batch))
    what = f"/v1/predict request of {args.batch:,} flows" if args.batch else "/reports/ request"
    o = _report("flowsentinel", ours, what)
    if args.baseline:
        b = _report("baseline", theirs, what)
        for i, what in enumerate(("elapsed", "CPU")):
            print(f"ratio of {what} (baseline / ours, > 1: ours faster): {b[i] / o[i]:.2f}")


def _report(name: str, runs: list[tuple[float, float]], what: str) -> tuple[float, float]:
    """Print and return the medians over runs of the elapsed and CPU µs per request."""
    elapsed, cpu = (float(np.median([run[i] for run in runs])) for i in (0, 1))
    print(
        f"{name + ':':13} {elapsed:.0f} µs elapsed, {cpu:.0f} µs CPU per {what} in the app "
        f"(runs: {', '.join(f'{e:.0f}/{c:.0f}' for e, c in runs)})"
    )
    return elapsed, cpu


if __name__ == "__main__":
    main()
