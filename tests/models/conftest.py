"""Small generated frames for model tests (no real rows)."""

from __future__ import annotations

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
