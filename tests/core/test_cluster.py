"""Where work runs: flags, the environment variable, and a scheduler that cannot be reached."""

from __future__ import annotations

import os
import socket

import pytest

from dask_cluster import DaskCluster
from flowsentinel.core.cluster import SCHEDULER_ENV, Cluster, ClusterError


def test_flags_then_environment() -> None:
    assert Cluster.from_options(workers=None, address=None, environ={}).local
    env = {SCHEDULER_ENV: "tcp://10.1.2.3:8786"}
    assert (
        Cluster.from_options(workers=None, address=None, environ=env).address == env[SCHEDULER_ENV]
    )
    # a flag wins over the environment
    assert Cluster.from_options(workers=2, address=None, environ=env).workers == 2
    with pytest.raises(ClusterError, match="either --workers or --cluster"):
        Cluster.from_options(workers=2, address="tcp://h:1", environ={})
    with pytest.raises(ClusterError, match="at least 1"):
        Cluster.from_options(workers=0, address=None, environ={})


def test_in_process_gives_no_client() -> None:
    with Cluster().client() as client:
        assert client is None


def test_unreachable_scheduler_is_one_line() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(address=f"tcp://127.0.0.1:{port}", connect_timeout_s=2)
    with pytest.raises(ClusterError) as err, cluster.client():
        pass
    assert f"127.0.0.1:{port}" in str(err.value) and "\n" not in str(err.value)


def test_connects_to_a_real_scheduler(dask_cluster: DaskCluster) -> None:
    with Cluster(address=dask_cluster.address).client() as client:
        assert client is not None
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6
        # started as docs/scale.md says: no MALLOC_TRIM_THRESHOLD_ from the nanny
        environs = client.run(lambda: dict(os.environ)).values()
        assert not [env for env in environs if "MALLOC_TRIM_THRESHOLD_" in env]


def test_local_workers_keep_glibc_malloc_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Dask's nanny would export MALLOC_TRIM_THRESHOLD_=65536 to its workers (and into this
    # process); the local cluster leaves glibc's dynamic thresholds alone, keeps the rest
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with Cluster(workers=1).client() as client:
        assert client is not None
        environs = client.run(lambda: dict(os.environ))
    (worker_env,) = environs.values()
    assert "MALLOC_TRIM_THRESHOLD_" not in worker_env
    assert worker_env.get("OMP_NUM_THREADS") == "1"  # dask's one-thread settings still apply
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
