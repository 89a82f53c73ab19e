"""Shared fixtures: an isolated FLOWSENTINEL_HOME for every test, the shared data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdata import SHARED_DATASETS

from flowsentinel.core.settings import get_settings

_ENV_TO_CLEAR = (
    "FLOWSENTINEL_OFFLINE",
    "FLOWSENTINEL_CACHE_DIR",
    "FLOWSENTINEL_USE_CACHE",
    "FLOWSENTINEL_SEED",
    "FLOWSENTINEL_DEBUG",
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


@pytest.fixture
def shared_datasets() -> Path:
    """The read-only real data at ../shared/datasets (skips when the folder is absent)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATASETS} (../shared/datasets)")
    return SHARED_DATASETS
