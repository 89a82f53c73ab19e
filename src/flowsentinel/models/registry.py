"""The MLflow model registry: register a champion (all or nothing), list versions with their
state, remove incomplete ones, move aliases.

A version is *ready* when its registration finished: it was created with its model card
(description) and tags in one call, tagged ``flowsentinel.complete=false``, then tagged
``flowsentinel.complete=true``, and only then did the ``champion`` alias move to it. A
registration stopped between those steps (the process killed with SIGKILL; any other
interruption deletes the version at once) leaves a version that is *incomplete*: ``models
list`` says so, ``models promote`` refuses it, no alias points to it, and ``models list
--repair`` deletes it. While its ``train`` still runs it is *registering* and is left alone.

Only a model whose pipeline compiles (:mod:`flowsentinel.models.compiled`, the form every
prediction goes through) is registered: :func:`check_compiles` loads the logged pipeline and
compiles it before a version is created, so no alias can point to a model that
:meth:`~flowsentinel.models.detector.Detector.load` would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowsentinel.core.errors import ModelError
from flowsentinel.core.settings import Settings
from flowsentinel.models import processes, tracking

COMPLETE_TAG = "flowsentinel.complete"
READY, INCOMPLETE, REGISTERING = "ready", "incomplete", "registering"


def register(
    model_uri: str, run_id: str, name: str, card: str, meta: dict[str, Any], model_id: str | None
) -> str:
    """Register a logged model as version N of ``name`` with its card and tags, mark it
    complete, then give it the ``champion`` alias; returns N. Interrupted (an error, Ctrl-C,
    SIGTERM), it deletes the versions of ``run_id`` not yet complete before re-raising. A
    pipeline that does not compile is refused before anything is created
    (:func:`check_compiles`)."""
    import mlflow  # lazy: 5.5 s at start-up (tracking.configure imports it first)
    from mlflow.exceptions import MlflowException

    check_compiles(model_uri, meta)
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    tags = {k: meta[k] for k in ("dataset", "task", "model", "feature_set", "protocol")}
    try:
        mv = client.create_model_version(
            name,
            model_uri,
            run_id=run_id,
            tags={**tags, COMPLETE_TAG: "false"},
            description=card,
            model_id=model_id,
        )
        processes.pause_for_tests("registered")
        client.set_model_version_tag(name, mv.version, COMPLETE_TAG, "true")
        client.set_registered_model_alias(name, "champion", mv.version)
    except BaseException:
        _delete_incomplete(client, name, run_id)
        raise
    return str(mv.version)


def check_compiles(model_uri: str, meta: Mapping[str, Any]) -> None:
    """Load the logged pipeline and compile it for its features; a
    :class:`~flowsentinel.models.compiled.CompileError` naming the model otherwise."""
    import mlflow

    from flowsentinel.models.compiled import CompileError, compile_pipeline

    pipeline = mlflow.sklearn.load_model(model_uri)
    try:
        compile_pipeline(pipeline, list(meta["features"]), list(meta.get("categorical", [])))
    except CompileError as exc:
        raise CompileError(f"{model_uri} is not registered: it cannot be compiled: {exc}") from exc


def _delete_incomplete(client: Any, name: str, run_id: str) -> None:
    try:
        for mv in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
            if (mv.tags or {}).get(COMPLETE_TAG) != "true":
                client.delete_model_version(name, mv.version)
    except Exception:  # best effort: what is left shows as incomplete in `models list`
        return


def version_state(
    tags: Mapping[str, str], description: str | None, owner: Mapping[str, str]
) -> str:
    """``ready``, ``incomplete`` or ``registering`` (see the module's docstring). ``owner``:
    the tags of the version's run, naming the process that registers it."""
    flag = tags.get(COMPLETE_TAG)
    if flag == "true":
        return READY
    if flag is None:  # registered before the flag existed, or not by flowsentinel
        ours = "dataset" in tags and "model" in tags
        return INCOMPLETE if ours and not description else READY
    return REGISTERING if processes.owner_alive(owner) else INCOMPLETE


def _row(client: Any, name: str, mv: Any, aliases: list[str]) -> dict[str, Any]:
    metrics: dict[str, float] = {}
    owner: dict[str, str] = {}
    if mv.run_id:
        try:
            run = client.get_run(mv.run_id)
            metrics, owner = dict(run.data.metrics), dict(run.data.tags)
        except Exception:  # the run may live in a store no longer reachable
            pass
    tags = dict(mv.tags or {})
    return {
        "name": name,
        "version": int(mv.version),
        "state": version_state(tags, mv.description, owner),
        "aliases": sorted(aliases),
        "tags": tags,
        "run_id": mv.run_id,
        "created": mv.creation_timestamp,
        "metrics": metrics,
    }


def list_versions(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every version of every registered model, newest first, with its state."""
    mlflow = tracking.configure(settings)
    client = mlflow.MlflowClient()
    out: list[dict[str, Any]] = []
    for rm in client.search_registered_models():
        aliases: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in client.search_model_versions(f"name = '{rm.name}'"):
            out.append(_row(client, rm.name, mv, aliases.get(str(mv.version), [])))
    out.sort(key=lambda r: (r["name"], -r["version"]))
    return out


def repair(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Delete every incomplete version (never one still registering); returns them."""
    mlflow = tracking.configure(settings)
    client = mlflow.MlflowClient()
    removed = [r for r in list_versions(settings) if r["state"] == INCOMPLETE]
    for r in removed:
        client.delete_model_version(r["name"], str(r["version"]))
    return removed


def set_alias(
    name: str, version: int, alias: str = "champion", settings: Settings | None = None
) -> None:
    """Point ``alias`` at a ready version of ``name``."""
    mlflow = tracking.configure(settings)
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version(name, str(version))
    except Exception:
        raise ModelError(f"no version {version} of registered model {name!r}") from None
    state = _row(client, name, mv, [])["state"]
    if state == REGISTERING:
        raise ModelError(f"version {version} of {name!r} is still being registered by its train")
    if state == INCOMPLETE:
        raise ModelError(
            f"version {version} of {name!r} is incomplete: its train was stopped before the "
            "registration finished (`flowsentinel models list --repair` removes it)"
        )
    client.set_registered_model_alias(name, alias, str(version))
