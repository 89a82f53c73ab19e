"""The FastAPI application, built by :func:`create_app` from settings.

Models are loaded once, in the lifespan, before the server accepts requests: a missing or
broken model stops start-up with a one-line message (``/readyz`` is therefore true whenever the
server answers). ``uvicorn --factory flowsentinel.service.app:create_app_from_env`` builds it
from the environment (what ``flowsentinel serve`` does in every worker).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import FlowsentinelError
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.scoring import DEFAULT_MODEL
from flowsentinel.service import errors
from flowsentinel.service.config import ServiceSettings
from flowsentinel.service.engine import ModelSet
from flowsentinel.service.metrics import ServiceMetrics
from flowsentinel.service.middleware import ServiceGate, is_open
from flowsentinel.service.routes import meta, page, predict, scan, seeds

log = logging.getLogger("flowsentinel.service")

DESCRIPTION = """Network-attack verdicts from flowsentinel models.

- `POST /reports/` and `POST /classify`: the two request formats of the specification;
- `POST /v1/predict`: a batch of JSON flows; `POST /v1/scan`: a CSV file or a packet capture;
- `GET /v1/model`, `/healthz`, `/readyz`, `/metrics`; the web page at `/`.
"""


def model_refs(config: ServiceSettings, settings: Settings) -> list[str]:
    """The models to serve: ``--model``/``FLOWSENTINEL_SERVE_MODELS``, else the default."""
    return list(config.models) or [settings.default_model or DEFAULT_MODEL]


def create_app(
    config: ServiceSettings | None = None,
    settings: Settings | None = None,
    models: ModelSet | None = None,
) -> FastAPI:
    """The service app. ``models`` (already loaded) skips loading in the lifespan."""
    config = config or ServiceSettings()
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.models is None:
            refs = model_refs(config, settings)
            try:
                app.state.models = ModelSet.load(refs, settings)
            except FlowsentinelError as exc:
                log.error("cannot start: %s", exc)
                raise RuntimeError(f"flowsentinel serve cannot start: {exc}") from None
        for m in app.state.models.models:
            d = m.detector
            app.state.metrics.model_info.labels(m.key, d.version or "", d.dataset, d.task).set(1)
        # the models and the libraries loaded with them (~450,000 objects) live as long as the
        # server: out of the collector's reach, a request's short-lived objects no longer set
        # off full collections that walk them all (pauses of ~20 ms inside a batch's reasons)
        gc.freeze()
        yield

    app = FastAPI(
        title="flowsentinel",
        description=DESCRIPTION,
        version=_version(),
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.config = config
    app.state.settings = settings
    app.state.models = models
    app.state.metrics = ServiceMetrics()
    errors.install(app)
    _add_routes(app, (seeds.router, predict.router, scan.router, meta.router, page.router))
    static = resources.files("flowsentinel.service") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    def limit_for(path: str) -> int:
        return config.max_upload_bytes if path.startswith("/v1/scan") else config.max_body_bytes

    app.add_middleware(ServiceGate, metrics=app.state.metrics, limit_for=limit_for, key=config.key)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def _add_routes(app: FastAPI, routers: tuple[APIRouter, ...]) -> None:
    """The routers' routes in the app's own route list, ahead of FastAPI's documentation routes.

    The scoring routes are matched first and directly: an included router is a lazy layer
    that is matched and resolved again on every request, behind the four documentation routes.
    The routes are the routers' own (paths with their prefix, tags, responses), so the OpenAPI
    document is the same as with ``include_router``.
    """
    ours = [route for router in routers for route in router.routes]
    app.router.routes[:0] = ours


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: everything from ``FLOWSENTINEL_*`` variables."""
    return create_app(ServiceSettings(), Settings())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flowsentinel")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


SECURITY_SCHEMES = {
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "The API key."},
}


def _declare_security(doc: dict[str, Any], keyed: bool) -> None:
    """What :class:`~.middleware.ServiceGate` does: with a key, every guarded route asks for it
    and may answer 401; without one, no route does."""
    if keyed:
        doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in doc.get("paths", {}).items():
        for op in operations.values():
            if keyed and not is_open(path):
                op["security"] = [{name: []} for name in SECURITY_SCHEMES]
            else:
                op.get("responses", {}).pop("401", None)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request bodies generated from the served models."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _declare_security(doc, keyed=bool(app.state.config.key))
    models: ModelSet | None = app.state.models
    if models is None:  # not started: no model-specific bodies yet (do not cache)
        return doc
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    flows: dict[str, dict[str, Any]] = {}
    batches: list[dict[str, Any]] = []
    for served in models.models:  # the request declarations of the served models
        flow, batch, parts = served.body.schemas()
        components.update(parts)
        flows[served.key] = flow
        batches.append(batch)
    for batch in batches:  # the server's batch limit, a setting beside the declaration
        name = batch["$ref"].rsplit("/", 1)[1]
        components[name]["properties"]["flows"]["maxItems"] = app.state.config.max_batch

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    paths = doc.get("paths", {})
    for path, dataset in (("/reports/", sc.CIC.name), ("/classify", sc.UNSW.name)):
        served_for = models.for_dataset(dataset)
        op = paths.get(path, {}).get("post")
        if op is None:
            continue
        op.pop("x-flow-dataset", None)
        if served_for is not None:
            op["requestBody"] = body(flows[served_for.key])
        else:
            op["description"] = op.get("description", "") + "\n\n(not served: no such model)"
    op = paths.get("/v1/predict", {}).get("post")
    if op is not None:
        op.pop("x-flow-batch", None)
        op["requestBody"] = body(batches[0] if len(batches) == 1 else {"anyOf": batches})
    app.openapi_schema = doc
    return doc
