"""One settings object for the whole tool.

Every field can be set by a ``FLOWSENTINEL_<FIELD>`` environment variable (for example
``FLOWSENTINEL_HOME=/data/fs``) and most are overridable by CLI flags.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".flowsentinel"


class Settings(BaseSettings):
    """Configuration of flowsentinel (environment variables ``FLOWSENTINEL_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLOWSENTINEL_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Folder for the MLflow store, the columnar cache and downloads.",
    )
    cache_dir: Path | None = Field(
        default=None, description="Columnar cache of parsed inputs (default: HOME/cache)."
    )
    use_cache: bool = Field(default=True, description="Reuse parsed inputs keyed by content.")
    seed: int = Field(default=42, description="Seed for everything random.")
    kaggle_cicids2017: str = "chethuhn/network-intrusion-dataset"
    kaggle_unsw_nb15: str = "mrwellsdavid/unsw-nb15"
    offline: bool = Field(
        default=False, description="Never try the network (downloads fail at once)."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking store. Default: MLFLOW_TRACKING_URI when set, otherwise a "
        "SQLite file HOME/mlflow.db with artefacts in HOME/mlartifacts (nothing leaves the "
        "machine).",
    )
    n_jobs: int = Field(default=-1, description="Parallel jobs for tuning (-1: all cores).")
    default_model: str | None = Field(
        default=None,
        description="Model used by scan/serve without --model (default: the champion of "
        "flowsentinel-cicids2017-dos).",
    )

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.home / "cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
