"""``flowsentinel serve``: the prediction service under uvicorn."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated, Any

import typer

from flowsentinel.cli._output import console, friendly_errors


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


@friendly_errors
def serve_command(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model to serve (repeatable): a registered name (its champion), "
            "models:/NAME@alias, models:/NAME/VERSION, runs:/... or a local model folder. "
            "/reports/ uses the first CIC-IDS2017 one, /classify the first UNSW-NB15 one.",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Require this key (X-API-Key header); safer from FLOWSENTINEL_SERVE_API_KEY.",
            show_default=False,
        ),
    ] = None,
    max_batch: Annotated[int | None, typer.Option(min=1, help="Most flows per batch.")] = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve models over HTTP: both seed APIs, batch scoring, file scans, a web page at /."""
    from flowsentinel.core.settings import get_settings
    from flowsentinel.service.app import create_app, model_refs
    from flowsentinel.service.config import ServiceSettings
    from flowsentinel.service.engine import ModelSet

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "models": model or None,
            "host": host,
            "port": port,
            "workers": workers,
            "api_key": api_key,
            "max_batch": max_batch,
            "log_level": log_level,
        }.items()
        if v is not None
    }
    config = ServiceSettings(**overrides)
    settings = get_settings()
    refs = model_refs(config, settings)
    models = ModelSet.load(refs, settings)  # a wrong model fails here, in one line
    for m in models.models:
        d = m.detector
        console.print(
            f"serving [bold]{m.key}[/] version {d.version or '-'} ({d.dataset}, {d.task}, "
            f"{d.model}, {len(d.features)} features)",
            highlight=False,
        )
    console.print(f"listening on http://{config.host}:{config.port}/", highlight=False)

    import uvicorn

    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "access_log": access_log,
        "timeout_graceful_shutdown": 10,
    }
    if config.workers == 1:
        uvicorn.run(create_app(config, settings, models=models), **options)
        return
    # several processes: each worker builds the app from the environment
    os.environ["FLOWSENTINEL_SERVE_MODELS"] = ",".join(refs)
    for name, value in overrides.items():
        if name not in ("models", "workers"):
            os.environ[f"FLOWSENTINEL_SERVE_{name.upper()}"] = str(value)
    if settings.mlflow_tracking_uri is None:
        from flowsentinel.models.tracking import tracking_uri

        os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri(settings))
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="flowsentinel-prom-")
    del models
    uvicorn.run(
        "flowsentinel.service.app:create_app_from_env",
        factory=True,
        workers=config.workers,
        **options,
    )
