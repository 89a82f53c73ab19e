"""Small generated frames for model tests (no real rows)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from modeldata import unsw_frame

from flowsentinel.datasets.synthetic import generate_flows, write_cic_csv


@pytest.fixture(scope="session")
def cic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cic") / "flows.csv"
    return write_cic_csv(generate_flows(3000, seed=7), path)


@pytest.fixture(scope="session")
def unsw_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unsw") / "UNSW_NB15_training-set.csv"
    unsw_frame(800).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables and no content: creating the tables takes
    seconds, so tests copy this file instead."""
    import mlflow

    db = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def empty_store(empty_store_db: Path, flowsentinel_home: Path) -> Path:
    """The test's FLOWSENTINEL_HOME holding an empty store; returns the home."""
    flowsentinel_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_store_db, flowsentinel_home / "mlflow.db")
    return flowsentinel_home
