"""Benchmark of the prediction service against ``mlflow models serve`` on the same model.

Both servers run as real processes on 127.0.0.1 with the same number of workers, in the same
run, with the same champion model (by default a random forest trained here with
``--features seed-a`` on generated CIC-IDS2017-style flows, tuned with ``--n-iter``, in a
temporary store; or ``--model`` from your store). The load generator is a raw asyncio client
in this process (``_http_load.py``).

Measured:
- single flow: ``POST /reports/`` (ours) vs ``POST /invocations`` (mlflow, ``dataframe_split``
  with one row): p50/p99 latency and requests per second at concurrency 10;
- batches of 1,000 and 10,000 flows: ``POST /v1/predict`` vs ``/invocations``: flows per second
  over ``--repeats`` batches sent one after the other on one keep-alive connection.

Targets (the service issue): ours ≥ 2× mlflow's requests per second, p99 ≤ 20 ms for one flow,
≥ 50k flows/s in batches.

    python benchmarks/bench_service.py [--requests 2000] [--workers 1] [--json out.json]
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http_load import encode, load


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


CIC_NAME = "flowsentinel-cicids2017-dos"
UNSW_NAME = "flowsentinel-unsw-nb15-attack"
UNSW_DEFAULT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "datasets"
    / "unsw-nb15"
    / "UNSW_NB15_training-set.csv.gz"
)


def _registered(uri: str, settings: Any) -> bool:
    from flowsentinel.scoring import Detector

    try:
        Detector.load(uri, settings)
    except Exception:
        return False
    return True


def train_models(home: Path, n_iter: int, rows: int, unsw: Path | None) -> tuple[str, str | None]:
    """The two champions in ``home``'s store, trained unless they are there already."""
    from flowsentinel.core.settings import Settings
    from flowsentinel.datasets.synthetic import generate_flows, write_cic_csv
    from flowsentinel.models.training import TrainConfig, train

    settings = Settings(home=home)
    cic = f"models:/{CIC_NAME}@champion"
    if not _registered(cic, settings):
        print(f"training a seed-a random forest in {home} ...", file=sys.stderr)
        csv = write_cic_csv(generate_flows(rows, seed=11), home / "bench-flows.csv")
        common = {"near_constant": "none", "registered_name": CIC_NAME}
        train(
            TrainConfig(
                sources=[str(csv)], task="dos", models=["rf"], n_iter=n_iter, features="seed-a",
                **common,
            ),
            settings,
        )  # fmt: skip
    if unsw is None or not unsw.exists():
        return cic, None
    uri = f"models:/{UNSW_NAME}@champion"
    if not _registered(uri, settings):
        print(f"training a seed-b XGBoost on {unsw} ...", file=sys.stderr)
        train(
            TrainConfig(
                sources=[str(unsw)], task="attack", models=["xgb"], n_iter=0,
                features="seed-b", registered_name=UNSW_NAME,
            ),
            settings,
        )  # fmt: skip
    return cic, uri


def batch_rate(
    host: str, port: int, path: str, body: bytes, flows: int, repeats: int
) -> dict[str, float]:
    """Throughput of ``repeats`` batches sent one after the other on one keep-alive connection
    (after a warm-up batch): flows per second over the whole sequence, and the batches'
    median latency."""
    request = encode(host, port, path, body, {"Content-Type": "application/json"})
    warm = load(host, port, [request], 1)  # warm-up
    if warm["errors"]:
        raise RuntimeError(f"{path}: a batch of {flows} flows was refused")
    run = load(host, port, [request] * repeats, 1)
    return {
        "flows": flows,
        "batches": repeats,
        "seconds": run["seconds"],
        "flows_per_s": flows * repeats / run["seconds"],
        "median_ms": run["p50_ms"],
    }


def single(
    host: str, port: int, path: str, bodies: list[bytes], concurrency: int
) -> dict[str, float]:
    requests = [encode(host, port, path, b, {"Content-Type": "application/json"}) for b in bodies]
    result = load(host, port, requests, concurrency)
    if result["errors"]:
        raise RuntimeError(f"{path}: {result['errors']} requests were refused")
    return result


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def mlflow_serve(uri: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen:
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    return start(
        [mlflow_bin, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(port), "-w", str(workers)],
        env,
    )  # fmt: skip


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "n/a"


def main() -> None:  # noqa: C901, PLR0915
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", help="CIC-IDS2017 model URI in your store (default: train one)")
    ap.add_argument("--unsw-model", help="UNSW-NB15 model URI in your store (default: train one)")
    ap.add_argument("--unsw", type=Path, default=UNSW_DEFAULT, help="UNSW-NB15 training CSV")
    ap.add_argument("--home", type=Path, help="store to train into and reuse (default: temp)")
    ap.add_argument("--requests", type=int, default=2000, help="single-flow requests per server")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1, help="workers of each server")
    ap.add_argument("--n-iter", type=int, default=5, help="tuning candidates of the trained RF")
    ap.add_argument("--rows", type=int, default=20_000, help="generated training flows")
    ap.add_argument("--repeats", type=int, default=20, help="batches per batch size")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="with --baseline: interleaved rounds of ours and the baseline (medians reported)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="a source tree of another version (e.g. `git worktree add ../before REV`): its "
        "server is measured in the same run, beside ours, and the ratios are printed",
    )
    args = ap.parse_args()

    from flowsentinel.core import schema as sc
    from flowsentinel.core.settings import Settings
    from flowsentinel.datasets.synthetic import generate_flows
    from flowsentinel.models.tracking import tracking_uri
    from flowsentinel.scoring import Detector

    env = dict(os.environ)
    if args.model:
        uri, unsw_uri = args.model, args.unsw_model
    else:
        home = args.home or Path(tempfile.mkdtemp(prefix="flowsentinel-bench-service-"))
        home.mkdir(parents=True, exist_ok=True)
        env["FLOWSENTINEL_HOME"] = str(home)
        env.pop("FLOWSENTINEL_MLFLOW_TRACKING_URI", None)
        env.pop("MLFLOW_TRACKING_URI", None)
        uri, unsw_uri = train_models(home, args.n_iter, args.rows, args.unsw)
        unsw_uri = args.unsw_model or unsw_uri
    settings = Settings(home=Path(env.get("FLOWSENTINEL_HOME", Settings().home)))
    env.setdefault("MLFLOW_TRACKING_URI", tracking_uri(settings))
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    # mlflow models serve execs `uvicorn` from PATH: this interpreter's bin folder first
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    detector = Detector.load(uri, settings)
    features = detector.features
    estimator = detector.pipeline.steps[-1][1]
    trees = getattr(estimator, "estimators_", None)
    shape = (
        f"{len(trees)} trees, depth {max(t.get_depth() for t in trees)}, "
        f"{sum(t.tree_.node_count for t in trees):,} nodes"
        if trees
        else type(estimator).__name__
    )

    flows = generate_flows(12_000, seed=99).to_pandas()
    flows = flows[np.isfinite(flows[features].to_numpy(dtype=float)).all(axis=1)]  # JSON: finite
    records = [{sc.snake_case(f): float(row[f]) for f in features} for _, row in flows.iterrows()]
    matrix = flows[features].to_numpy(dtype=float).tolist()

    unsw_records: list[dict[str, Any]] = []
    unsw_features: list[str] = []
    if unsw_uri:
        import pandas as pd

        unsw_detector = Detector.load(unsw_uri, settings)
        unsw_features = unsw_detector.features
        frame = pd.read_csv(args.unsw).sample(n=2000, random_state=5)
        for _, row in frame[unsw_features].iterrows():
            unsw_records.append(
                {
                    f: (str(v) if f in unsw_detector.categorical else float(v))
                    for f, v in row.items()
                }
            )

    host = "127.0.0.1"
    ports = {"ours": free_port(), "mlflow": free_port(), "mlflow_unsw": free_port()}
    served = ["--model", uri] + (["--model", unsw_uri] if unsw_uri else [])
    ours_cmd = [sys.executable, "-m", "flowsentinel", "serve", *served, "--workers",
                str(args.workers), "--port", str(ports["ours"]),
                "--log-level", "warning"]  # fmt: skip
    procs = {
        "ours": start(ours_cmd, env),
        "mlflow": mlflow_serve(uri, ports["mlflow"], args.workers, env),
    }
    if args.baseline:
        ports["before"] = free_port()
        before_cmd = [*ours_cmd[:-4], "--port", str(ports["before"]), "--log-level", "warning"]
        before_env = env | {"PYTHONPATH": str(args.baseline.resolve() / "src")}
        procs["before"] = start(before_cmd, before_env)
    if unsw_uri:
        procs["mlflow_unsw"] = mlflow_serve(unsw_uri, ports["mlflow_unsw"], args.workers, env)
    results: dict[str, Any] = {
        "model": uri,
        "estimator": detector.model,
        "shape": shape,
        "unsw_model": unsw_uri,
        "features": len(features),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "load_average_before": load_average(),
    }
    try:
        for name in ("ours", "before"):
            if name in procs:
                wait_ready(f"http://{host}:{ports[name]}/readyz", procs[name])
        for name in ("mlflow", "mlflow_unsw"):
            if name in procs:
                wait_ready(f"http://{host}:{ports[name]}/ping", procs[name])
        n, m, c = args.requests, min(args.requests, 500), args.concurrency

        def split(columns: list[str], row: list[Any]) -> bytes:
            return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()

        ours_bodies = [json.dumps(records[i % len(records)]).encode() for i in range(n)]
        theirs_bodies = [split(features, matrix[i % len(matrix)]) for i in range(n)]
        cases = {  # name: (server, path, bodies)
            "reports": ("ours", "/reports/", ours_bodies),
            "reports_mlflow": ("mlflow", "/invocations", theirs_bodies),
        }
        if unsw_uri:
            k = len(unsw_records)
            cases["classify"] = (
                "ours", "/classify", [json.dumps(unsw_records[i % k]).encode() for i in range(n)]
            )  # fmt: skip
            cases["classify_mlflow"] = (
                "mlflow_unsw",
                "/invocations",
                [split(unsw_features, list(unsw_records[i % k].values())) for i in range(n)],
            )
        if "before" in procs:
            for name, (server, path, bodies) in list(cases.items()):
                if server == "ours":
                    cases[f"{name}_before"] = ("before", path, bodies)
        for server, path, bodies in cases.values():  # warm-up
            single(host, ports[server], path, bodies[:200], c)
        for name, (server, path, bodies) in cases.items():
            if server in ("ours", "before"):
                continue
            results[f"sequential_{name}"] = single(host, ports[server], path, bodies[:m], 1)
            results[f"concurrent_{name}"] = single(host, ports[server], path, bodies, c)
        # ours and the baseline: interleaved rounds (the order flips each round), medians
        ours = [
            (name, path, bodies) for name, (srv, path, bodies) in cases.items() if srv == "ours"
        ]
        servers = ["ours", "before"] if "before" in procs else ["ours"]
        runs: dict[str, list[dict[str, float]]] = {}
        for r in range(args.rounds if "before" in procs else 1):
            for server in servers if r % 2 == 0 else servers[::-1]:
                suffix = "" if server == "ours" else "_before"
                for name, path, bodies in ours:
                    runs.setdefault(f"sequential_{name}{suffix}", []).append(
                        single(host, ports[server], path, bodies[:m], 1)
                    )
                    runs.setdefault(f"concurrent_{name}{suffix}", []).append(
                        single(host, ports[server], path, bodies, c)
                    )
                for size in (1_000, 10_000):
                    body = json.dumps({"flows": records[:size]}).encode()
                    runs.setdefault(f"batch{size}_{server}", []).append(
                        batch_rate(host, ports[server], "/v1/predict", body, size, args.repeats)
                    )
        results.update({key: _median(values) for key, values in runs.items()})
        for size in (1_000, 10_000):
            theirs_body = json.dumps(
                {"dataframe_split": {"columns": features, "data": matrix[:size]}}
            ).encode()
            results[f"batch{size}_mlflow"] = batch_rate(
                host, ports["mlflow"], "/invocations", theirs_body, size, args.repeats
            )
    finally:
        for proc in procs.values():
            stop(proc)
    results["load_average_after"] = load_average()

    print(f"model {uri} ({detector.model}: {shape}; {len(features)} features)")
    if unsw_uri:
        print(f"/classify model {unsw_uri} ({len(unsw_features)} features)")
    print(
        f"{args.workers} worker(s) each; load average before {results['load_average_before']}, "
        f"after {results['load_average_after']} ({os.cpu_count()} cpus)"
    )
    print(f"{'':34} {'flowsentinel':>14} {'mlflow serve':>14}")
    routes = [("reports", "/reports/")] + ([("classify", "/classify")] if unsw_uri else [])
    for name, route in routes:
        qo, qm = results[f"sequential_{name}"], results[f"sequential_{name}_mlflow"]
        so, sm = results[f"concurrent_{name}"], results[f"concurrent_{name}_mlflow"]
        rows = [
            ("one at a time p50 (ms)", qo["p50_ms"], qm["p50_ms"], ".2f"),
            ("one at a time p99 (ms)", qo["p99_ms"], qm["p99_ms"], ".2f"),
            (f"concurrency {c} p50 (ms)", so["p50_ms"], sm["p50_ms"], ".2f"),
            (f"concurrency {c} p99 (ms)", so["p99_ms"], sm["p99_ms"], ".2f"),
            (f"requests/s (concurrency {c})", so["rps"], sm["rps"], ".0f"),
        ]
        for label, a, b, fmt in rows:
            print(f"{route + ' ' + label:34} {a:14{fmt}} {b:14{fmt}}")
        results[f"rps_ratio_{name}"] = so["rps"] / sm["rps"]
    for size in (1_000, 10_000):
        o, m_ = results[f"batch{size}_ours"], results[f"batch{size}_mlflow"]
        label = f"batch {size:,} flows/s"
        print(f"{label:34} {o['flows_per_s']:14,.0f} {m_['flows_per_s']:14,.0f}")
        label = f"batch {size:,} median latency (ms)"
        print(f"{label:34} {o['median_ms']:14.1f} {m_['median_ms']:14.1f}")
    ratios = ", ".join(f"{route} {results[f'rps_ratio_{name}']:.1f}x" for name, route in routes)
    print(f"requests/s ratio: {ratios} (target ≥ 2x); p99 target ≤ 20 ms; batch ≥ 50k/s")
    if args.baseline:
        _print_baseline(results, routes, c)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over rounds."""
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]}


def _print_baseline(results: dict[str, Any], routes: list[tuple[str, str]], c: int) -> None:
    """Ours against the baseline tree, measured in the same run (ratio > 1: ours better)."""
    print(f"\n{'':34} {'flowsentinel':>14} {'baseline':>14} {'ratio':>7}")
    for name, route in routes:
        now, before = results[f"concurrent_{name}"], results[f"concurrent_{name}_before"]
        one, one_before = results[f"sequential_{name}"], results[f"sequential_{name}_before"]
        rows = [
            ("one at a time p50 (ms)", one["p50_ms"], one_before["p50_ms"], False),
            ("one at a time p99 (ms)", one["p99_ms"], one_before["p99_ms"], False),
            (f"concurrency {c} p50 (ms)", now["p50_ms"], before["p50_ms"], False),
            (f"concurrency {c} p99 (ms)", now["p99_ms"], before["p99_ms"], False),
            (f"requests/s (concurrency {c})", now["rps"], before["rps"], True),
        ]
        for label, a, b, higher in rows:
            ratio = a / b if higher else b / a
            print(f"{route + ' ' + label:34} {a:14.2f} {b:14.2f} {ratio:7.2f}")
    for size in (1_000, 10_000):
        a = results[f"batch{size}_ours"]["flows_per_s"]
        b = results[f"batch{size}_before"]["flows_per_s"]
        print(f"{f'batch {size:,} flows/s':34} {a:14,.0f} {b:14,.0f} {a / b:7.2f}")
        a = results[f"batch{size}_ours"]["median_ms"]
        b = results[f"batch{size}_before"]["median_ms"]
        print(f"{f'batch {size:,} median latency (ms)':34} {a:14.1f} {b:14.1f} {b / a:7.2f}")


if __name__ == "__main__":
    main()
