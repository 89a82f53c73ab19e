"""Model description, health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from flowsentinel.service.deps import Metrics, Models
from flowsentinel.service.schemas import (
    Health,
    ModelInfo,
    ModelsResponse,
    Ready,
    error_responses,
)

router = APIRouter(tags=["service"])


@router.get(
    "/v1/model",
    response_model=ModelInfo,
    summary="The served model: name, version, data set, task, features, metrics",
    responses=error_responses(401, 404),
)
async def model_info(
    models: Models,
    name: str | None = Query(default=None, description="A served model (default: the first)."),
) -> JSONResponse:
    served = models.get(name)
    if served is None:
        raise HTTPException(404, f"no served model is called {name!r}")
    return JSONResponse(served.describe())


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    summary="Every served model",
    responses=error_responses(401),
)
async def models_info(models: Models) -> JSONResponse:
    return JSONResponse(
        {"default": models.default.key, "models": [m.describe() for m in models.models]}
    )


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Readiness: every model is loaded",
    responses={503: {"model": Ready}},
)
async def readyz(request: Request) -> JSONResponse:
    models = getattr(request.app.state, "models", None)
    if models is None:
        return JSONResponse({"ready": False, "models": []}, status_code=503)
    return JSONResponse({"ready": True, "models": [m.key for m in models.models]})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(metrics: Metrics) -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
