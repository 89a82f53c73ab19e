"""Shared fixtures: an isolated FLOWSENTINEL_HOME for every test.

Helpers that build hand-made flow files live in `flowdata.py` beside this file (importable
from every test module because pytest puts this folder on sys.path with the conftest)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowsentinel.core.settings import get_settings

# a real Dask scheduler and workers for the scale-out tests (fixture ``dask_cluster``)
pytest_plugins = ["dask_cluster"]

# The tests start the CLI and the server in many subprocesses: let Python keep the compiled
# modules of the project (a shell may set PYTHONDONTWRITEBYTECODE, and an editable install is not
# compiled at install time), or every subprocess compiles them again.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

_ENV_TO_CLEAR = (
    "FLOWSENTINEL_OFFLINE",
    "FLOWSENTINEL_CACHE_DIR",
    "FLOWSENTINEL_USE_CACHE",
    "FLOWSENTINEL_SEED",
    "FLOWSENTINEL_DEBUG",
    "FLOWSENTINEL_MLFLOW_TRACKING_URI",
    "FLOWSENTINEL_DEFAULT_MODEL",
    "MLFLOW_TRACKING_URI",
)


@pytest.fixture(autouse=True)
def flowsentinel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own FLOWSENTINEL_HOME (cache, downloads) under its tmp_path."""
    home = tmp_path / "flowsentinel-home"
    monkeypatch.setenv("FLOWSENTINEL_HOME", str(home))
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    # download_dataset() sets KAGGLEHUB_CACHE with setdefault: keep it inside the test's folder
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(home / "kaggle"))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
