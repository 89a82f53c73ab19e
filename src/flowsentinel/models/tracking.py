"""MLflow set-up: one tracking store shared by ``train``, ``evaluate``, ``serve`` and ``scan``.

The store is ``FLOWSENTINEL_MLFLOW_TRACKING_URI`` when set, else ``MLFLOW_TRACKING_URI`` when
set (a remote server, say), else a SQLite file ``HOME/mlflow.db`` with artefacts in
``HOME/mlartifacts``, where HOME is ``FLOWSENTINEL_HOME`` (default ``~/.flowsentinel``): the
same models are found from any working directory and nothing leaves the machine.

Runs are opened with :func:`run`: tagged with the process that writes them, ended FINISHED,
KILLED (Ctrl-C, SIGTERM) or FAILED (any other error). A run whose process was killed outright
(SIGKILL) stays RUNNING in the store until the next command of this host configures it:
:func:`end_orphan_runs` then marks it KILLED, never touching a run whose process still lives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.models import processes

_configured: str | None = None
_swept: dict[str, list[str]] = {}  # store URI → runs this process marked KILLED there
ENDED_TAG = "flowsentinel.ended"


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
    import mlflow  # lazy: 5.5 s, and after the settings above (read at import)

    if is_local_store(uri):
        Path(settings.home).expanduser().mkdir(parents=True, exist_ok=True)
    if _configured != uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        _configured = uri
    if uri not in _swept:
        _swept[uri] = end_orphan_runs(mlflow, uri)
    return mlflow


def swept_runs(settings: Settings | None = None) -> list[str]:
    """The runs that this process marked KILLED in the store of ``settings``."""
    return list(_swept.get(tracking_uri(settings), []))


def end_orphan_runs(mlflow: Any, uri: str) -> list[str]:
    """Mark KILLED every run of a flowsentinel experiment left RUNNING by a process of this
    host that no longer exists; returns their ids. Runs of living processes, of other hosts
    and without owner tags are left as they are. Never fails the command that calls it."""
    if is_local_store(uri) and not _sqlite_file(uri).is_file():
        return []  # a store not created yet holds no run
    ended: list[str] = []
    try:
        client = mlflow.MlflowClient()
        experiments = client.search_experiments(filter_string="name LIKE 'flowsentinel-%'")
        ids = [e.experiment_id for e in experiments]
        running = client.search_runs(ids, "attributes.status = 'RUNNING'") if ids else []
        for r in running:
            if processes.owner_alive(r.data.tags) is False:
                client.set_tag(r.info.run_id, ENDED_TAG, "process gone; marked by a later command")
                client.set_terminated(r.info.run_id, "KILLED")
                ended.append(r.info.run_id)
    except Exception:  # a read-only or unreachable store: the command itself will say so
        return ended
    return ended


def _sqlite_file(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///"))


@contextlib.contextmanager
def run(**kwargs: Any) -> Iterator[Any]:
    """``mlflow.start_run(**kwargs)`` tagged with its owner process; the run ends FINISHED,
    KILLED on ``KeyboardInterrupt`` (Ctrl-C, and SIGTERM inside ``train``) or FAILED on any
    other exception, which is raised again. The store is the one ``configure`` set."""
    import mlflow  # lazy: 5.5 s at start-up of serve and the CLI (see configure)

    tags = {**kwargs.pop("tags", {}), **processes.owner_tags()}
    active = mlflow.start_run(tags=tags, **kwargs)
    try:
        yield active
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        with contextlib.suppress(Exception):
            mlflow.end_run(status)
        raise
    mlflow.end_run("FINISHED")


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
