"""MLflow set-up: one tracking store shared by ``train``, ``evaluate``, ``serve`` and ``scan``.

The store is ``FLOWSENTINEL_MLFLOW_TRACKING_URI`` when set, else ``MLFLOW_TRACKING_URI`` when
set (a remote server, say), else a SQLite file ``HOME/mlflow.db`` with artefacts in
``HOME/mlartifacts``, where HOME is ``FLOWSENTINEL_HOME`` (default ``~/.flowsentinel``): the
same models are found from any working directory and nothing leaves the machine.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from flowsentinel.core.settings import Settings, get_settings

_configured: str | None = None


def tracking_uri(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI itself: a value we set is not the user's
    if env and env != _configured:
        return env
    home = Path(settings.home).expanduser().resolve()
    return f"sqlite:///{home / 'mlflow.db'}"


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:")


def artifact_root(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return Path(settings.home).expanduser().resolve() / "mlartifacts"


def configure(settings: Settings | None = None) -> Any:
    """Point mlflow at flowsentinel's store (quietly) and return the mlflow module."""
    global _configured
    settings = settings or get_settings()
    uri = tracking_uri(settings)
    # flowsentinel's own models are pickled pipelines: loading them is allowed for this process
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"mlflow\..*")
    import mlflow

    if is_local_store(uri):
        Path(settings.home).expanduser().mkdir(parents=True, exist_ok=True)
    if _configured != uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        _configured = uri
    return mlflow


def experiment_id(name: str, settings: Settings | None = None) -> str:
    """The id of experiment ``name``, created with its artefacts under HOME for a local store."""
    mlflow = configure(settings)
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if is_local_store(tracking_uri(settings)):
        location = (artifact_root(settings) / name).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def model_name(dataset: str, task: str) -> str:
    """The name of both the experiment and the registered model of a data set and task."""
    return f"flowsentinel-{dataset}-{task}"
