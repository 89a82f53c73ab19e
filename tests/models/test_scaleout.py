"""Training on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes):
the searches run as tasks on the workers, xgb and lgbm are fitted by xgboost.dask /
lightgbm.dask, and what comes back is the same kind of pipeline, of the same quality, as an
in-process training."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lightgbm import LGBMClassifier
from typer.testing import CliRunner
from xgboost import XGBClassifier

from dask_cluster import DaskCluster
from flowsentinel.cli.main import app
from flowsentinel.core.cluster import SCHEDULER_ENV, Cluster
from flowsentinel.models import tracking
from flowsentinel.models.scaleout import scatter_blocks
from flowsentinel.models.training import TrainConfig, train
from flowsentinel.scoring import Detector

#: F1 of the cluster's models within this of the in-process ones. The in-process fit and the
#: distributed one see the same rows but not in the same order nor on one machine (XGBoost's
#: distributed quantile sketch, LightGBM's data-parallel histograms), so the trees differ a
#: little; on ~600 test rows one flow is 0.002-0.004 of F1.
F1_TOLERANCE = 0.02


def _train(csv: Path, cluster: Cluster, keep: dict[str, Any]) -> dict[str, Any]:
    """xgb and lgbm, each searched over one candidate (its defaults: 3 fold fits) and fitted;
    the champion of the cluster's run is registered."""
    cfg = TrainConfig(
        sources=[str(csv)],
        models=["xgb", "lgbm"],
        n_iter=1,
        register=not cluster.local,
        cluster=cluster,
    )
    return train(cfg, keep=keep)


def _f1(result: dict[str, Any]) -> dict[str, float]:
    return {m["name"]: m["metrics"]["f1"] for m in result["models"]}


def _search_tasks(cluster: DaskCluster) -> list[str]:
    """Names of the task groups the scheduler has run (joblib's Dask backend submits the
    search's fits under sklearn's and joblib's function names)."""
    from distributed import Client

    with Client(cluster.address, timeout=30) as client:
        names = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    return [str(n) for n in names]


@pytest.mark.slow
def test_cluster_training_matches_in_process(
    dask_cluster: DaskCluster, cic_csv: Path, empty_store: Path
) -> None:
    local_keep: dict[str, Any] = {}
    local = _train(cic_csv, Cluster(), local_keep)
    keep: dict[str, Any] = {}
    remote = _train(cic_csv, Cluster(address=dask_cluster.address), keep)

    for name, f1 in _f1(local).items():
        assert _f1(remote)[name] == pytest.approx(f1, abs=F1_TOLERANCE), name
        assert _f1(remote)[name] > 0.9, name
    # the estimators come back as the ordinary in-memory ones, inside the same pipeline
    assert type(keep["xgb"][-1]) is XGBClassifier
    assert type(keep["lgbm"][-1]) is LGBMClassifier
    assert [n for n, _ in keep["xgb"].steps] == [n for n, _ in local_keep["xgb"].steps]
    proba = keep["xgb"].predict_proba(keep["_test"])
    assert proba.shape == (len(keep["_test"]), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    # the search's candidate fits were tasks on the workers
    assert any("batch_of" in n or "fit_and_score" in n for n in _search_tasks(dask_cluster))
    # the registered champion loads and scores (compiled form) as its fitted pipeline does
    det = Detector.load(remote["champion"]["registered_model"])
    fitted = keep[remote["champion"]["name"]]
    verdicts = det.predict(keep["_test"])
    assert np.allclose(verdicts.proba, fitted.predict_proba(keep["_test"]), atol=1e-6)
    # each run records where it ran
    client = tracking.configure().MlflowClient()
    for result, where in ((local, "in-process"), (remote, dask_cluster.address)):
        run = client.get_run(result["parent_run_id"])
        assert run.data.params["cluster"] == where
    # the cluster's workers reach the work folder (one machine): they cleaned the rows, and
    # the rows are the in-process ones (the same test rows come out of the same split)
    cleaned = {
        where: client.download_artifacts(r["parent_run_id"], "cleaning_report.json")
        for where, r in (("local", local), ("remote", remote))
    }
    reports = {k: json.loads(Path(v).read_text()) for k, v in cleaned.items()}
    assert reports["local"]["cleaned_on"] == "in-process"
    assert reports["remote"]["cleaned_on"] == "cluster"
    assert reports["remote"]["steps"] == reports["local"]["steps"]
    assert keep["_test"].equals(local_keep["_test"])


def test_blocks_hold_every_row_once(dask_cluster: DaskCluster) -> None:
    from distributed import Client

    rows = np.arange(30, dtype=np.float64).reshape(10, 3)
    labels = np.arange(10)
    with Client(dask_cluster.address, timeout=30) as client:
        dX, dy = scatter_blocks(client, rows, labels, seed=1)
        assert dX.numblocks[0] >= 2  # at least one block per worker
        X, y = client.compute([dX, dy], sync=True)
    # shuffled, but each row with its own label, each exactly once
    assert sorted(y.tolist()) == labels.tolist()
    assert np.array_equal(X, rows[y])
    assert y.tolist() != labels.tolist()


def test_unreachable_scheduler_from_the_environment(
    cic_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(SCHEDULER_ENV, f"tcp://127.0.0.1:{port}")
    result = CliRunner().invoke(app, ["train", str(cic_csv), "--models", "xgb"])
    assert result.exit_code == 5
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], result.output
