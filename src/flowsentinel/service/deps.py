"""Shared route helpers: the loaded models, the settings, the metrics, content types.

The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hand-off per dependency and request (the largest cost of a single-flow
request before this was noticed). They never block, so they run on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pydantic_core
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from flowsentinel.core import schema as sc
from flowsentinel.service.config import ServiceSettings
from flowsentinel.service.engine import ModelSet, ServedModel
from flowsentinel.service.metrics import ServiceMetrics


async def get_models(request: Request) -> ModelSet:
    models = getattr(request.app.state, "models", None)
    if models is None:
        raise HTTPException(503, "the models are not loaded yet")
    return models


def _config(request: Request) -> ServiceSettings:
    return request.app.state.config


async def get_config(request: Request) -> ServiceSettings:
    return _config(request)


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


Models = Annotated[ModelSet, Depends(get_models)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Config = Annotated[ServiceSettings, Depends(get_config)]


def media_type(request: Request) -> str:
    """The request's media type, lower case without parameters ('' without a content type).

    Read from the raw headers (the first ``content-type``, as ``request.headers`` gives it)
    without building the headers object on the scoring routes."""
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1").split(";", 1)[0].strip().lower())
    return ""


def require_json(request: Request) -> None:
    kind = media_type(request)
    if kind != "application/json" and not (
        kind.startswith("application/") and kind.endswith("+json")
    ):
        raise HTTPException(
            415, f"the body must be application/json (got {kind or 'no content type'})"
        )


async def read_body(request: Request) -> bytes:
    """The whole body of a JSON request, read from ``receive`` as its messages come.

    What ``await request.body()`` returns (and :class:`~starlette.requests.ClientDisconnect`
    when the client goes away), without Starlette's stream generator around each message
    (~5 µs of a single-flow request).
    """
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def model_for(models: ModelSet, dataset: str, route: str) -> ServedModel:
    served = models.for_dataset(dataset)
    if served is None:
        title = sc.dataset(dataset).title
        raise HTTPException(404, f"this server serves no {title} model, which {route} needs")
    return served


class FastJSONResponse(JSONResponse):
    """JSON serialised by pydantic-core (Rust): large verdict lists in a few milliseconds."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


class RequestRoute(APIRoute):
    """A documented route whose handler takes the request alone (the scoring routes).

    FastAPI documents it from its declaration as usual (summary, responses, the request body
    added from the served models); serving it is a plain ASGI call of the handler: no
    dependency solver and parameter validation (the body is decoded and checked by the served
    model's declaration), no per-request exit stacks (nothing to close) and no second
    exception wrapper (an exception goes to the app's handlers, which answer it as for any
    route). Together they cost more than scoring one flow.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = self._serve

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def state(request: Request) -> Any:
    """The app's state: ``models``, ``config``, ``metrics`` (for :class:`RequestRoute` handlers)."""
    return request.app.state
