"""Where the work runs: in-process (default), on a local Dask cluster of worker processes
(``--workers N``) or on an existing Dask scheduler (``--cluster tcp://HOST:8786`` or the
``FLOWSENTINEL_DASK_SCHEDULER`` environment variable).

Every command that scales out takes a :class:`Cluster` and asks it for a
:class:`distributed.Client`; without a cluster it never imports Dask. A scheduler that cannot be
reached is one :class:`ClusterError` line, not a traceback.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowsentinel.core.errors import FlowsentinelError

if TYPE_CHECKING:  # Dask is imported only when a cluster is asked for (start-up time)
    from distributed import Client

SCHEDULER_ENV = "FLOWSENTINEL_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 10.0
# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand freed memory back to
# the OS). Setting it turns off glibc's dynamic mmap threshold: every numpy array over 128 KiB
# is then a fresh mapping whose pages fault in and are zeroed on first touch. Metering a
# capture costs 15-20 % more CPU in such a worker (benchmarks/bench_scale.py, "worker
# allocator"). Local clusters start their workers with glibc's defaults (a variable the user
# exported still wins); for workers started elsewhere, docs/scale.md gives the setting.
WORKER_MALLOC_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


class ClusterError(FlowsentinelError):
    """A Dask scheduler that cannot be reached, or a job the cluster could not finish."""

    exit_code = 5


@dataclass(frozen=True)
class Cluster:
    """Where to run: ``workers`` local worker processes, or the scheduler at ``address``.

    Neither: in-process (:attr:`local` is true and :meth:`client` yields None).

    Examples
    --------
    >>> Cluster.from_options(workers=None, address=None, environ={}).local
    True
    >>> Cluster.from_options(workers=None, address=None,
    ...                      environ={SCHEDULER_ENV: "tcp://10.0.0.5:8786"}).address
    'tcp://10.0.0.5:8786'
    """

    workers: int | None = None
    address: str | None = None
    threads_per_worker: int = 1
    connect_timeout_s: float = CONNECT_TIMEOUT_S

    @classmethod
    def from_options(
        cls,
        *,
        workers: int | None,
        address: str | None,
        environ: dict[str, str] | os._Environ[str] | None = None,
    ) -> Cluster:
        """The cluster of the command-line flags, the environment variable as a fallback."""
        env = os.environ if environ is None else environ
        if workers is not None and address is not None:
            raise ClusterError("give either --workers or --cluster, not both")
        if workers is not None and workers < 1:
            raise ClusterError(f"--workers must be at least 1 (got {workers})")
        if workers is None and address is None:
            address = env.get(SCHEDULER_ENV) or None
        return cls(workers=workers, address=address)

    @property
    def local(self) -> bool:
        """True when everything runs in this process."""
        return self.workers is None and self.address is None

    def describe(self) -> str:
        if self.address is not None:
            return f"the Dask scheduler at {self.address}"
        if self.workers is not None:
            return f"a local Dask cluster of {self.workers} worker process(es)"
        return "this process"

    @contextmanager
    def client(self) -> Iterator[Client | None]:
        """A connected Dask client for the duration of the block (None in-process)."""
        if self.local:
            yield None
            return
        with _connect(self) as client:
            yield client


@contextmanager
def _connect(cluster: Cluster) -> Iterator[Client]:
    import dask
    from distributed import Client, LocalCluster

    # workers run our numba kernels single-threaded: one task per core, no oversubscription
    settings = {"distributed.worker.daemon": False, "logging.distributed": "error"}
    with dask.config.set({**settings, WORKER_MALLOC_KEY: None}):  # None: not set in workers
        if cluster.address is not None:
            _check_reachable(cluster.address)
            try:
                client = Client(cluster.address, timeout=cluster.connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {cluster.address} "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'timeout'})"
                ) from None
            with client:
                yield client
            return
        local = LocalCluster(
            n_workers=cluster.workers,
            threads_per_worker=cluster.threads_per_worker,
            processes=True,
            dashboard_address=":0",  # no fixed port to collide with another cluster
            silence_logs=40,
        )
        with local, Client(local) as client:
            yield client


def _check_reachable(address: str) -> None:
    """Fail at once, in one line, when nothing listens at a ``tcp://`` scheduler address
    (the client itself retries until its timeout)."""
    if not address.startswith("tcp://"):
        return
    host, _, port = address[len("tcp://") :].rpartition(":")
    if not port.isdigit():
        raise ClusterError(f"not a scheduler address: {address} (expected tcp://HOST:PORT)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({reason})") from None
