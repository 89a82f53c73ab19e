"""A real Dask cluster for the scale-out tests: ``dask scheduler`` and two ``dask worker``
processes on localhost, started as the user would start them (not an in-process fake).

Use the ``dask_scheduler`` fixture (session-wide): it yields the scheduler's address, and
``kill_worker`` stops one worker process (a worker lost during a job).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_workers(address: str, n: int, timeout: float = 90.0) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=timeout)


@dataclass
class DaskCluster:
    """The processes of a local scheduler and its workers."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path | None = None

    def kill_worker(self, k: int = 0) -> None:
        """Kill worker ``k`` outright (SIGKILL): a machine lost during a job."""
        self.workers[k].send_signal(signal.SIGKILL)
        self.workers[k].wait(timeout=30)

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_cluster(logs: Path, workers: int = WORKERS) -> DaskCluster:
    """Start ``dask scheduler`` and ``workers`` ``dask worker`` processes (one thread each)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
        # the setting docs/scale.md gives for workers started by hand: glibc's malloc defaults
        "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": '{"MALLOC_TRIM_THRESHOLD_": None}',
    }
    logs.mkdir(parents=True, exist_ok=True)
    scheduler = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=(logs / "scheduler.log").open("wb"), env=env,
    )  # fmt: skip
    cluster = DaskCluster(address, scheduler, logs=logs)
    for k in range(workers):
        args = [str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                "--no-dashboard", "--name", f"w{k}"]  # fmt: skip
        log = (logs / f"worker{k}.log").open("wb")
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env)
        cluster.workers.append(proc)
    try:
        _wait_for_workers(address, workers)
    except Exception:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler and two workers for the whole test session."""
    cluster = start_cluster(tmp_path_factory.mktemp("dask-logs"))
    time.sleep(0.2)
    try:
        yield cluster
    finally:
        cluster.stop()
