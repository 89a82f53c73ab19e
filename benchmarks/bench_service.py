"""Benchmark of the prediction service against ``mlflow models serve`` on the same model.

Both servers run as real processes on 127.0.0.1 with the same number of workers, in the same
run, with the same champion model (by default a random forest trained here with
``--features seed-a`` on generated CIC-IDS2017-style flows, tuned with ``--n-iter``, in a
temporary store; or ``--model`` from your store). The load generator is an asyncio httpx client
in this process.

Measured:
- single flow: ``POST /reports/`` (ours) vs ``POST /invocations`` (mlflow, ``dataframe_split``
  with one row): p50/p99 latency and requests per second at concurrency 10;
- batches of 1,000 and 10,000 flows: ``POST /v1/predict`` vs ``/invocations``: flows per second.

Targets (the service issue): ours ≥ 2× mlflow's requests per second, p99 ≤ 20 ms for one flow,
≥ 50k flows/s in batches.

    python benchmarks/bench_service.py [--requests 2000] [--workers 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def train_model(home: Path, n_iter: int, rows: int) -> str:
    from flowsentinel.core.settings import Settings
    from flowsentinel.datasets.synthetic import generate_flows, write_cic_csv
    from flowsentinel.models.training import TrainConfig, train

    csv = write_cic_csv(generate_flows(rows, seed=11), home / "bench-flows.csv")
    out = train(
        TrainConfig(
            sources=[str(csv)],
            task="dos",
            models=["rf"],
            n_iter=n_iter,
            features="seed-a",
            near_constant="none",
        ),
        Settings(home=home),
    )
    return f"models:/{out['champion']['registered_model']}@champion"


async def load(
    url: str, bodies: list[bytes], concurrency: int, headers: dict[str, str]
) -> dict[str, float]:
    """Send every body once with ``concurrency`` requests in flight; latency per request."""
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while queue:
                body = queue.pop()
                t0 = time.perf_counter()
                r = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(bodies),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(bodies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def batch_rate(url: str, body: bytes, flows: int, repeats: int) -> dict[str, float]:
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=300) as client:
        r = client.post(url, content=body, headers=headers)  # warm-up
        r.raise_for_status()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            client.post(url, content=body, headers=headers).raise_for_status()
            times.append(time.perf_counter() - t0)
    best, median = min(times), float(np.median(times))
    return {"flows": flows, "median_s": median, "flows_per_s": flows / median, "best_s": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", help="model URI in your store (default: train one here)")
    ap.add_argument("--requests", type=int, default=2000, help="single-flow requests per server")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1, help="workers of each server")
    ap.add_argument("--n-iter", type=int, default=5, help="tuning candidates of the trained RF")
    ap.add_argument("--rows", type=int, default=20_000, help="generated training flows")
    ap.add_argument("--repeats", type=int, default=5, help="repeats per batch size")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()

    from flowsentinel.datasets import schema as sc
    from flowsentinel.datasets.synthetic import generate_flows

    tmp = Path(tempfile.mkdtemp(prefix="flowsentinel-bench-service-"))
    env = dict(os.environ)
    if args.model:
        uri = args.model
    else:
        env["FLOWSENTINEL_HOME"] = str(tmp)
        print(f"training a seed-a random forest in {tmp} ...", file=sys.stderr)
        uri = train_model(tmp, args.n_iter, args.rows)
    from flowsentinel.core.settings import Settings
    from flowsentinel.models.tracking import tracking_uri
    from flowsentinel.scoring import Detector

    settings = Settings(home=Path(env.get("FLOWSENTINEL_HOME", Settings().home)))
    env.setdefault("MLFLOW_TRACKING_URI", tracking_uri(settings))
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    # mlflow models serve execs `uvicorn` from PATH: this interpreter's bin folder first
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    detector = Detector.load(uri, settings)
    features = detector.features

    flows = generate_flows(12_000, seed=99).to_pandas()
    flows = flows[np.isfinite(flows[features].to_numpy(dtype=float)).all(axis=1)]  # JSON: finite
    records = [{sc.snake_case(f): float(row[f]) for f in features} for _, row in flows.iterrows()]
    matrix = flows[features].to_numpy(dtype=float).tolist()

    ours_port, theirs_port = free_port(), free_port()
    ours = subprocess.Popen(
        [sys.executable, "-m", "flowsentinel", "serve", "--model", uri, "--port", str(ours_port),
         "--workers", str(args.workers), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    theirs = subprocess.Popen(
        [mlflow_bin, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(theirs_port), "-w", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ours_url, theirs_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{theirs_port}"
    results: dict[str, Any] = {
        "model": uri,
        "estimator": detector.model,
        "features": len(features),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
    }
    try:
        wait_ready(ours_url + "/readyz", ours)
        wait_ready(theirs_url + "/ping", theirs)
        n = args.requests
        single_ours = [json.dumps(records[i % len(records)]).encode() for i in range(n)]
        single_theirs = [
            json.dumps(
                {"dataframe_split": {"columns": features, "data": [matrix[i % len(matrix)]]}}
            ).encode()
            for i in range(n)
        ]
        headers = {"content-type": "application/json"}
        for url, bodies in ((ours_url + "/reports/", single_ours[:200]),
                            (theirs_url + "/invocations", single_theirs[:200])):  # fmt: skip
            asyncio.run(load(url, bodies, args.concurrency, headers))  # warm-up
        m = min(n, 500)
        results["sequential_ours"] = asyncio.run(
            load(ours_url + "/reports/", single_ours[:m], 1, headers)
        )
        results["sequential_mlflow"] = asyncio.run(
            load(theirs_url + "/invocations", single_theirs[:m], 1, headers)
        )
        results["single_ours"] = asyncio.run(
            load(ours_url + "/reports/", single_ours, args.concurrency, headers)
        )
        results["single_mlflow"] = asyncio.run(
            load(theirs_url + "/invocations", single_theirs, args.concurrency, headers)
        )
        for size in (1_000, 10_000):
            ours_body = json.dumps({"flows": records[:size]}).encode()
            theirs_body = json.dumps(
                {"dataframe_split": {"columns": features, "data": matrix[:size]}}
            ).encode()
            results[f"batch{size}_ours"] = batch_rate(
                ours_url + "/v1/predict", ours_body, size, args.repeats
            )
            results[f"batch{size}_mlflow"] = batch_rate(
                theirs_url + "/invocations", theirs_body, size, args.repeats
            )
    finally:
        stop(ours)
        stop(theirs)

    so, sm = results["single_ours"], results["single_mlflow"]
    print(f"model {uri} ({detector.model}, {len(features)} features), {args.workers} worker(s)")
    print(f"{'':28} {'flowsentinel':>14} {'mlflow serve':>14}")
    qo, qm = results["sequential_ours"], results["sequential_mlflow"]
    print(f"{'one at a time p50 (ms)':28} {qo['p50_ms']:14.2f} {qm['p50_ms']:14.2f}")
    print(f"{'one at a time p99 (ms)':28} {qo['p99_ms']:14.2f} {qm['p99_ms']:14.2f}")
    print(f"{'concurrency 10 p50 (ms)':28} {so['p50_ms']:14.2f} {sm['p50_ms']:14.2f}")
    print(f"{'concurrency 10 p99 (ms)':28} {so['p99_ms']:14.2f} {sm['p99_ms']:14.2f}")
    print(f"{'requests/s (concurrency 10)':28} {so['rps']:14.0f} {sm['rps']:14.0f}")
    for size in (1_000, 10_000):
        o, m = results[f"batch{size}_ours"], results[f"batch{size}_mlflow"]
        print(f"{f'batch {size:,} flows/s':28} {o['flows_per_s']:14,.0f} {m['flows_per_s']:14,.0f}")
    ratio = so["rps"] / sm["rps"]
    results["rps_ratio"] = ratio
    print(f"requests/s ratio: {ratio:.1f}x (target ≥ 2x); p99 target ≤ 20 ms; batch ≥ 50k/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
