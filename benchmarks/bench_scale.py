"""Benchmark: metering captures on Dask — exactness and speed-up, many small captures, start-up.

Make the capture first (as root): ``../shared/tools/make-bench-capture.sh /tmp/bench.pcap``.
Every figure is measured in this run, against a baseline measured in the same run:

1. **exact** — the capture cut into 8 record-aligned slices (our splitter, as ``editcap -c``
   would cut it) gives the flows of the whole capture, column for column, in-process and on a
   2-worker local cluster.
2. **workers** — 8 slices on a local cluster of 1 worker against 2 workers (the job's time on a
   started, warmed cluster; configurations take turns in each of ``--rounds`` rounds, ratios are
   the median of the rounds' ratios; the clusters' start-up is reported apart),
   and the single capture with 2 workers against the in-process meter (both write a parquet
   dataset folder); for one job of each, its tasks and the CPU seconds of this process (the
   client and the local scheduler) and of the workers, against the in-process run's CPU.
3. **small captures** — ``--small`` captures of about 500 packets each (slices of the bench
   capture) in one ``flows`` call against one ``flows`` process per capture (a sample of
   ``--sample`` processes, extrapolated); and one small capture alone, start to exit (its
   comparison with numba's JIT and the bare interpreter: ``bench_startup.py``).
4. **machine** — the same single-threaded metering alone and as two processes at once: what two
   cores of this machine give at best. **worker allocator** — a job's tasks run in one process
   with glibc's malloc defaults and with ``MALLOC_TRIM_THRESHOLD_=65536``, the setting Dask's
   nanny gives its workers (local clusters drop it, ``core.cluster``).
   **copies** — the speed-ups again on ``--copies`` time-shifted copies of the capture back to
   back (fixed per-job costs weigh less); **large** — and on ``--large``, a larger capture
   recorded the same way (``make-bench-capture.sh /tmp/bench4.pcap 4``: four times the
   traffic, one capture).
5. **projection** — from the measured per-core rate and the scheduler's measured per-task cost:
   workers to meter 500 GB of captures in 30 minutes.

    .venv/bin/python benchmarks/bench_scale.py --capture /tmp/bench.pcap --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from _common import run_measured
from bench_flows import shifted_copies
from flowsentinel.capture import CaptureStats, write_flows
from flowsentinel.capture.partitioned import (
    PARTITIONS_PER_THREAD,
    TASK_BYTES,
    write_flows_on_cluster,
)
from flowsentinel.capture.pcap import split_ranges
from flowsentinel.core.cluster import Cluster

FLOWS = [sys.executable, "-m", "flowsentinel", "flows"]
WARM_JOBS = 3  # jobs of each input on a new cluster before any is timed
KEY = [("Flow ID", "ascending"), ("Timestamp", "ascending"), ("Flow Duration", "ascending"),
       ("Total Fwd Packets", "ascending"), ("Total Backward Packets", "ascending")]  # fmt: skip


def cut(capture: Path, parts: int, folder: Path, min_bytes: int = 16 << 20) -> list[str]:
    """The capture cut into ``parts`` record-aligned slices (files with its header)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = capture.read_bytes()
    paths = []
    for k, (a, b) in enumerate(split_ranges(capture, parts, min_bytes=min_bytes)):
        path = folder / f"slice-{k:05d}.pcap"
        path.write_bytes(data[:24] + data[a:b])
        paths.append(str(path))
    return paths


def table(path: Path) -> pa.Table:
    return pq.read_table(path).sort_by(KEY)


def _clear(out: Path) -> None:
    if out.is_dir():
        shutil.rmtree(out)
    out.unlink(missing_ok=True)


def in_process(sources: list[str] | str, out: Path) -> CaptureStats:
    _clear(out)
    return write_flows(sources if isinstance(sources, str) else list(sources), out)


def on_cluster(client: object, sources: list[str], out: Path) -> CaptureStats:
    _clear(out)
    return write_flows_on_cluster(client, sources, out)  # type: ignore[arg-type]  # a Client


def exactness(capture: Path, slices: list[str], work: Path) -> dict[str, object]:
    whole, parts = work / "whole.parquet", work / "parts.parquet"
    in_process(str(capture), whole)
    in_process(slices, parts)
    reference = table(whole)
    with Cluster(workers=2).client() as client:
        on_cluster(client, slices, work / "cluster.parquet")
    return {
        "flows": reference.num_rows,
        "slices_in_process_identical": table(parts).equals(reference),
        "slices_on_2_workers_identical": table(work / "cluster.parquet").equals(reference),
    }


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def job_cost(client: Any, sources: list[str], out: Path) -> dict[str, object]:
    """One job's tasks and CPU seconds: this process (the client and the local scheduler)
    and the workers (a job on a warmed cluster)."""
    from distributed import get_task_stream

    workers = list(client.run(os.getpid).values())
    here, there = _cpu_seconds([os.getpid()]), _cpu_seconds(workers)
    with get_task_stream(client) as stream:
        on_cluster(client, sources, out)
    return {
        "tasks": len(stream.data),
        "client_and_scheduler_cpu_s": round(_cpu_seconds([os.getpid()]) - here, 3),
        "workers_cpu_s": round(_cpu_seconds(workers) - there, 3),
    }


def _in_process_server(conn: Connection, inputs: dict[str, list[str]], out: Path) -> None:
    """Meter an input in-process on request; answer (wall, CPU seconds)."""
    in_process(inputs["whole"][0], out)  # warm: the page cache and this process's allocator
    conn.send("ready")
    while (name := conn.recv()) is not None:
        sources = inputs[name]
        begin, cpu = time.perf_counter(), time.process_time()
        in_process(sources[0] if len(sources) == 1 else sources, out)
        conn.send((time.perf_counter() - begin, time.process_time() - cpu))


class InProcess:
    """The in-process meter in a process of its own, with no Dask thread beside it: in this
    one, the idle local clusters' schedulers and clients (threads of this process) would take
    the GIL from it now and then (0.75-1.07 s instead of 0.5-0.6 s for the bench capture)."""

    def __init__(self, inputs: dict[str, list[str]], out: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_in_process_server, args=(child, inputs, out))

    def __enter__(self) -> InProcess:
        self.proc.start()
        self.conn.recv()  # warmed
        return self

    def run(self, name: str) -> tuple[float, float]:
        self.conn.send(name)
        wall, cpu = self.conn.recv()
        return float(wall), float(cpu)

    def __exit__(self, *exc: object) -> None:
        self.conn.send(None)
        self.proc.join(timeout=30)


def speedups(capture: Path, slices: list[str], work: Path, rounds: int) -> dict[str, object]:
    """Every run writes a parquet dataset (a folder): on a cluster each worker writes its own
    parts, so that the comparison is of the metering, not of one process writing a file.

    The in-process meter runs in a process of its own (:class:`InProcess`). A local cluster
    of 1 worker and one of 2 are started (their start timed) and warmed by
    ``WARM_JOBS`` jobs of each input (a worker's tasks get faster over its first jobs, as its
    allocator's heap grows); then the configurations take turns within each round
    (in-process, 1 worker, 2 workers), and each ratio is the median of the rounds' own ratios:
    a slow spell of a shared machine falls on every configuration of its round rather than on
    one of them."""
    out = work / "speed"
    inputs = {"slices": slices, "whole": [str(capture)]}
    runs: dict[str, list[float]] = {}
    result: dict[str, object] = {}

    def once(name: str, fn: Callable[[], object]) -> None:
        begin = time.perf_counter()
        fn()
        runs.setdefault(name, []).append(time.perf_counter() - begin)

    with contextlib.ExitStack() as stack:
        alone = stack.enter_context(InProcess(inputs, work / "speed-in-process"))
        clients: dict[int, Any] = {}
        for workers in (1, 2):
            begin = time.perf_counter()
            clients[workers] = stack.enter_context(Cluster(workers=workers).client())
            result[f"cluster_{workers}_start_s"] = round(time.perf_counter() - begin, 2)
            for _ in range(WARM_JOBS):
                for sources in inputs.values():
                    on_cluster(clients[workers], sources, out)
        for _ in range(rounds):
            for name in inputs:
                runs.setdefault(f"in_process_{name}", []).append(alone.run(name)[0])
            for workers, client in clients.items():
                for name, sources in inputs.items():
                    once(f"{name}_{workers}_workers",
                         lambda c=client, s=sources: on_cluster(c, s, out))  # fmt: skip
        for workers, client in clients.items():
            for name, sources in inputs.items():
                result[f"{name}_{workers}_workers_job"] = job_cost(client, sources, out)
        wall, cpu = alone.run("whole")
        result["in_process_whole_cpu_s"] = round(cpu, 3)
        result["in_process_whole_wall_s_of_that_run"] = round(wall, 3)
    result["seconds"] = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    result["seconds_each_round"] = {k: [round(x, 3) for x in v] for k, v in runs.items()}

    def ratio(num: str, den: str, extra: float = 0.0) -> float:
        pairs = zip(runs[num], runs[den], strict=True)
        return round(statistics.median(a / (b + extra) for a, b in pairs), 2)

    result["ratio_slices_2_over_1_workers"] = ratio("slices_1_workers", "slices_2_workers")
    result["ratio_whole_2_workers_over_in_process"] = ratio("in_process_whole", "whole_2_workers")
    start_2 = float(result["cluster_2_start_s"])  # type: ignore[arg-type]  # set above
    result["ratio_whole_2_workers_over_in_process_with_start"] = ratio(
        "in_process_whole", "whole_2_workers", start_2
    )
    return result


_ONE_CORE = """
import sys, time
from flowsentinel.capture import iter_flow_arrays
for _ in iter_flow_arrays(sys.argv[1]):
    pass
t = time.perf_counter()
for _ in iter_flow_arrays(sys.argv[1]):
    pass
print(time.perf_counter() - t)
"""


_WORKER_TASKS = """
import shutil, sys, tempfile, time
from flowsentinel.capture.meter import MeterConfig
from flowsentinel.capture.partitioned import group_parts, meter_task, pick, plan_parts, read_task
from flowsentinel.capture.stream import CaptureStats
groups = group_parts(plan_parts([sys.argv[1]], 2, CaptureStats()), 2)
best = float("inf")
for _ in range(3):
    out = tempfile.mkdtemp()
    start = time.process_time()
    reads = [read_task(g, 4) for g in groups]
    for p in range(4):
        meter_task(MeterConfig(), out, p, *[pick(r, p) for r in reads])
    best = min(best, time.process_time() - start)
    shutil.rmtree(out)
print(best)
"""


def worker_allocator(capture: Path, pairs: int = 3) -> dict[str, object]:
    """The CPU seconds of a 2-worker job's tasks (read, split by key, meter, write parquet),
    run one after the other in one process, with glibc's malloc defaults and with the
    ``MALLOC_TRIM_THRESHOLD_=65536`` Dask's nanny gives its workers (pairs in turn; best of 3
    within each run)."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    trim = {**env, "MALLOC_TRIM_THRESHOLD_": "65536"}
    command = [sys.executable, "-c", _WORKER_TASKS, str(capture)]

    def cpu(environ: dict[str, str]) -> float:
        done = subprocess.run(command, capture_output=True, text=True, env=environ, check=True)
        return float(done.stdout.strip().splitlines()[-1])

    runs = [(cpu(env), cpu(trim)) for _ in range(pairs)]
    return {
        "glibc_defaults_cpu_s": round(statistics.median(a for a, _ in runs), 3),
        "nanny_trim_cpu_s": round(statistics.median(b for _, b in runs), 3),
        "nanny_trim_cost": round(statistics.median(b / a for a, b in runs), 2),
    }


def machine_limit(capture: Path) -> dict[str, object]:
    """The machine's own two-core factor for this work: the same single-threaded metering run
    alone, then as two processes at once (2 x alone / together; 2.0 = two full cores)."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-c", _ONE_CORE, str(capture)]

    def run(n: int) -> float:
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(n)]  # fmt: skip
        return max(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)

    alone = statistics.median(run(1) for _ in range(3))
    together = statistics.median(run(2) for _ in range(3))
    return {"alone_s": round(alone, 3), "two_at_once_s": round(together, 3),
            "two_core_factor": round(2 * alone / together, 2)}  # fmt: skip


def small_captures(capture: Path, work: Path, count: int, sample: int) -> dict[str, object]:
    """``count`` captures of about 500 packets: one call against one process per capture."""
    folder = work / "small"
    slices = cut(capture, count, folder, min_bytes=1)  # 540k packets: about 540 per slice
    total_bytes = sum(Path(s).stat().st_size for s in slices)
    logs = work / "logs"
    one_call = run_measured("one-call", [*FLOWS, str(folder), "-o", str(work / "small.parquet")],
                            log_dir=logs)  # fmt: skip
    step = max(1, len(slices) // sample)
    each = [
        run_measured(f"each-{k}", [*FLOWS, path, "-o", str(work / f"e{k}.parquet")], log_dir=logs)
        for k, path in enumerate(slices[::step])
    ]
    per_process = statistics.median(m.seconds for m in each)
    alone_cmd = [*FLOWS, slices[0], "-o", str(work / "alone.csv")]
    alone = [run_measured(f"alone-{k}", alone_cmd, log_dir=logs).seconds for k in range(5)]
    return {
        "captures": len(slices),
        "mean_bytes": round(total_bytes / len(slices)),
        "one_call_s": round(one_call.seconds, 2),
        "one_call_ok": one_call.ok,
        "per_process_median_s": round(per_process, 3),
        "per_process_total_s_extrapolated": round(per_process * len(slices), 1),
        "ratio_per_process_over_one_call": round(per_process * len(slices) / one_call.seconds, 1),
        "one_small_capture_alone_median_s": round(statistics.median(alone), 3),
    }


def projection(capture: Path, work: Path, seconds_per_core: float) -> dict[str, object]:
    """Workers for 500 GB in 30 minutes, from the per-core rate and the per-task cost; the
    tasks of one job: a read task per TASK_BYTES, a pick per read task and key partition (its
    share of the packets), a metering task per key partition."""
    rate = capture.stat().st_size / seconds_per_core  # bytes per second per core
    with Cluster(workers=2).client() as client:
        n = 2000
        start = time.perf_counter()
        client.gather(client.map(abs, range(n), pure=False))
        per_task = (time.perf_counter() - start) / n
    total, budget = 500e9, 1800.0
    workers = total / rate / budget
    threads = max(2, math.ceil(workers))
    partitions = PARTITIONS_PER_THREAD * threads
    reads = math.ceil(total / TASK_BYTES)
    tasks = reads + reads * partitions + partitions
    return {
        "bytes_per_second_per_core": round(rate),
        "workers_for_500_GB_in_30_min": round(workers, 1),
        "scheduler_seconds_per_task": round(per_task, 5),
        "threads": threads,
        "read_task_bytes": TASK_BYTES,
        "tasks": tasks,
        "scheduler_seconds_for_all_tasks": round(tasks * per_task, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=Path("/tmp/bench.pcap"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--small", type=int, default=1000, help="small captures (about 500 packets)"
    )
    parser.add_argument("--sample", type=int, default=20, help="per-capture processes timed")
    parser.add_argument("--copies", type=int, default=4, help="a larger input: time-shifted copies")
    parser.add_argument("--large", type=Path, help="a larger recorded capture (scale 4, say)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the children keep Python's bytecode cache
    if not args.capture.exists():
        raise SystemExit(f"{args.capture}: make it with ../shared/tools/make-bench-capture.sh")
    if args.large is not None and not args.large.exists():
        raise SystemExit(f"{args.large}: make it with ../shared/tools/make-bench-capture.sh OUT 4")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        slices = cut(args.capture, 8, work / "slices", min_bytes=1)
        report: dict[str, object] = {"capture": str(args.capture), "slices": len(slices)}
        report["exact"] = exactness(args.capture, slices, work)
        print(json.dumps(report["exact"]), flush=True)
        report["machine"] = machine_limit(args.capture)
        print(json.dumps(report["machine"]), flush=True)
        report["worker_allocator"] = worker_allocator(args.capture)
        print(json.dumps(report["worker_allocator"]), flush=True)
        report["workers"] = speed = speedups(args.capture, slices, work, args.rounds)
        print(json.dumps(speed), flush=True)
        if args.copies > 1:
            big = work / "copies.pcap"
            shifted_copies(args.capture, big, args.copies)
            big_slices = cut(big, 8 * args.copies, work / "big", min_bytes=1)
            report["workers_copies"] = speedups(big, big_slices, work, max(1, args.rounds // 2))
            print(json.dumps(report["workers_copies"]), flush=True)
        if args.large is not None:
            large_slices = cut(args.large, 8, work / "large", min_bytes=1)
            report["workers_large"] = speedups(args.large, large_slices, work, args.rounds)
            print(json.dumps(report["workers_large"]), flush=True)
        if args.small > 0:
            report["small"] = small = small_captures(args.capture, work, args.small, args.sample)
            print(json.dumps(small), flush=True)
        per_core = speed["seconds"]["slices_1_workers"]  # type: ignore[index]  # dict above
        report["projection"] = projection(args.capture, work, per_core)
        print(json.dumps(report["projection"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
