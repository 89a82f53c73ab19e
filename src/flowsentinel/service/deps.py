"""Shared route helpers: the loaded models, the API key, content types, JSON bodies.

The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hand-off per dependency and request (the largest cost of a single-flow
request before this was noticed). They never block, so they run on the event loop.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import pydantic_core
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from flowsentinel.service.config import ServiceSettings
from flowsentinel.service.engine import DATASET_TITLES, ModelSet, ServedModel
from flowsentinel.service.metrics import ServiceMetrics

_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")
_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")


async def get_models(request: Request) -> ModelSet:
    models = getattr(request.app.state, "models", None)
    if models is None:
        raise HTTPException(503, "the models are not loaded yet")
    return models  # type: ignore[no-any-return]


def _config(request: Request) -> ServiceSettings:
    return request.app.state.config  # type: ignore[no-any-return]


async def get_config(request: Request) -> ServiceSettings:
    return _config(request)


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


async def require_api_key(
    request: Request,
    key: Annotated[str | None, Depends(_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> None:
    expected = _config(request).key
    if not expected:
        return
    given = key if key is not None else (bearer.credentials if bearer is not None else None)
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401,
            "a valid API key is required (header X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )


Models = Annotated[ModelSet, Depends(get_models)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Config = Annotated[ServiceSettings, Depends(get_config)]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_json(request: Request) -> None:
    kind = media_type(request)
    if kind != "application/json" and not (
        kind.startswith("application/") and kind.endswith("+json")
    ):
        raise HTTPException(
            415, f"the body must be application/json (got {kind or 'no content type'})"
        )


def model_for(models: ModelSet, dataset: str, route: str) -> ServedModel:
    served = models.for_dataset(dataset)
    if served is None:
        title = DATASET_TITLES.get(dataset, dataset)
        raise HTTPException(404, f"this server serves no {title} model, which {route} needs")
    return served


class FastJSONResponse(JSONResponse):
    """JSON serialised by pydantic-core (Rust): large verdict lists in a few milliseconds."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)
