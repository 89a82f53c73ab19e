"""The MLflow model registry: list versions, move aliases."""

from __future__ import annotations

from typing import Any

from flowsentinel.core.errors import ModelError
from flowsentinel.core.settings import Settings
from flowsentinel.models import tracking


def list_versions(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every version of every flowsentinel registered model, newest first."""
    mlflow = tracking.configure(settings)
    client = mlflow.MlflowClient()
    out: list[dict[str, Any]] = []
    for rm in client.search_registered_models():
        aliases: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in client.search_model_versions(f"name = '{rm.name}'"):
            metrics: dict[str, float] = {}
            if mv.run_id:
                try:
                    metrics = dict(client.get_run(mv.run_id).data.metrics)
                except Exception:  # the run may live in a store no longer reachable
                    metrics = {}
            out.append(
                {
                    "name": rm.name,
                    "version": int(mv.version),
                    "aliases": sorted(aliases.get(str(mv.version), [])),
                    "tags": dict(mv.tags or {}),
                    "run_id": mv.run_id,
                    "created": mv.creation_timestamp,
                    "metrics": metrics,
                }
            )
    out.sort(key=lambda r: (r["name"], -r["version"]))
    return out


def set_alias(
    name: str, version: int, alias: str = "champion", settings: Settings | None = None
) -> None:
    mlflow = tracking.configure(settings)
    client = mlflow.MlflowClient()
    try:
        client.get_model_version(name, str(version))
    except Exception:
        raise ModelError(f"no version {version} of registered model {name!r}") from None
    client.set_registered_model_alias(name, alias, str(version))
