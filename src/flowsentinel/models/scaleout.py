"""Training on a Dask cluster: the parameter search's candidate fits spread over the workers,
and the final fit of the gradient-boosted models (``xgb``, ``lgbm``) done by ``xgboost.dask`` /
``lightgbm.dask`` on row blocks held by the workers.

The pipeline stays the one :func:`flowsentinel.models.zoo.build_pipeline` builds: its steps
before the estimator (column selection, undersampler, derived features, encoder) are fitted in
this process, the transformed training rows are sent to the workers in row blocks (one block per
worker at least, so no worker holds the whole table), the distributed estimator is fitted there,
and its booster comes back as the ordinary in-memory estimator (``XGBClassifier`` /
``LGBMClassifier``) at the pipeline's last step. Tracking, registration, compilation and
scoring see the same kind of pipeline as after an in-process fit.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from lightgbm import LGBMClassifier
from xgboost import XGBClassifier

from flowsentinel.core.cluster import Cluster, ClusterError

if TYPE_CHECKING:  # Dask is imported only when a cluster is used
    from distributed import Client

#: models whose final fit runs on the workers (the others fit in this process)
DASK_MODELS: frozenset[str] = frozenset({"xgb", "lgbm"})
#: rows of one block sent to a worker (blocks are at least one per worker)
BLOCK_ROWS = 250_000
#: minutes LightGBM's distributed fit waits for a machine's socket before it fails
LGBM_TIME_OUT_MIN = 5


def describe(cluster: Cluster, client: Client | None) -> str:
    """Where a training ran, as logged with its MLflow run: ``in-process``, ``local:N`` (a
    local cluster of N workers) or the scheduler's address."""
    if client is None:
        return "in-process"
    if cluster.address is not None:
        return cluster.address
    return f"local:{cluster.workers}"


@contextlib.contextmanager
def search_backend(client: Client | None) -> Iterator[None]:
    """joblib's Dask backend for the block when a client is given (each candidate fit of a
    search, each fold, is a task on the workers), else nothing (the caller's backend)."""
    if client is None:
        yield
        return
    import joblib

    with joblib.parallel_config(backend="dask", wait_for_workers_timeout=60):
        yield


def fit_head(pipe: Any, X: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit the steps of ``pipe`` before its estimator in place, as ``Pipeline.fit`` does (a
    sampler resamples, a transformer transforms), and return the estimator's training rows."""
    for _, step in pipe.steps[:-1]:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        if hasattr(step, "fit_resample"):
            X, y = step.fit_resample(X, y)
        else:
            X = step.fit_transform(X, y)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


def fit_on_cluster(pipe: Any, X: Any, y: np.ndarray, client: Client) -> Any:
    """Fit ``pipe`` (an unfitted ``xgb`` or ``lgbm`` pipeline) with its estimator trained on
    the workers; returns the pipeline, its last step the in-memory estimator."""
    estimator = pipe.steps[-1][1]
    rows, labels = fit_head(pipe, X, y)
    seed = estimator.get_params().get("random_state") or 0
    dX, dy = scatter_blocks(client, rows, labels, seed)
    del rows
    pipe.steps[-1] = (pipe.steps[-1][0], fit_estimator(estimator, dX, dy, client))
    return pipe


def scatter_blocks(
    client: Client, rows: np.ndarray, labels: np.ndarray, seed: int = 0
) -> tuple[Any, Any]:
    """The rows and labels as Dask arrays of row blocks, each block sent to one worker. Rows
    go to blocks in a seeded random order: the undersampler returns its rows grouped by class,
    and a block of one class leaves LightGBM's distributed fit with nothing to split."""
    import dask.array as da
    from dask.delayed import delayed

    workers = max(1, len(client.scheduler_info()["workers"]))
    n_blocks = max(workers, -(-len(labels) // BLOCK_ROWS))
    bounds = np.linspace(0, len(labels), n_blocks + 1).astype(int)
    spans = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    order = np.random.default_rng(seed).permutation(len(labels))
    x_parts = client.scatter([rows[order[a:b]] for a, b in spans])
    y_parts = client.scatter([labels[order[a:b]] for a, b in spans])
    width = rows.shape[1]
    dX = da.concatenate(
        [
            da.from_delayed(delayed(f), shape=(b - a, width), dtype=rows.dtype)
            for f, (a, b) in zip(x_parts, spans, strict=True)
        ]
    )
    dy = da.concatenate(
        [
            da.from_delayed(delayed(f), shape=(b - a,), dtype=labels.dtype)
            for f, (a, b) in zip(y_parts, spans, strict=True)
        ]
    )
    return dX, dy


def fit_estimator(estimator: Any, dX: Any, dy: Any, client: Client) -> Any:
    """Fit the Dask counterpart of ``estimator`` (same parameters) on the blocks and return the
    fitted in-memory estimator of ``estimator``'s class."""
    params = estimator.get_params()
    try:
        if isinstance(estimator, XGBClassifier):
            return _fit_xgb(params, dX, dy, client)
        if isinstance(estimator, LGBMClassifier):
            from lightgbm.dask import DaskLGBMClassifier

            # LightGBM's machines wait for each other `time_out` minutes (default 120): a
            # port taken between its search for free ports and its bind would hang the train
            remote = DaskLGBMClassifier(client=client, **{"time_out": LGBM_TIME_OUT_MIN, **params})
            return remote.fit(dX, dy).to_local()
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"the cluster could not finish the fit: {exc}") from None
    raise ClusterError(f"{type(estimator).__name__} has no Dask fit (only XGBoost and LightGBM)")


def _fit_xgb(params: dict[str, Any], dX: Any, dy: Any, client: Client) -> XGBClassifier:
    from xgboost.dask import DaskXGBClassifier

    remote = DaskXGBClassifier(**params)
    remote.client = client
    remote.fit(dX, dy)
    local = XGBClassifier(**params)
    local.load_model(bytearray(remote.get_booster().save_raw("ubj")))
    return local
