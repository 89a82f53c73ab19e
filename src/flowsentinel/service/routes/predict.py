"""``POST /v1/predict``: a batch of JSON flows, one vectorised model call."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from flowsentinel.scanning import flow_records
from flowsentinel.scoring import Verdicts
from flowsentinel.service.deps import FastJSONResponse, RequestRoute, read_body, require_json, state
from flowsentinel.service.engine import ModelSet, ServedModel
from flowsentinel.service.schemas import PredictResponse, error_responses

router = APIRouter(prefix="/v1", tags=["batch"], route_class=RequestRoute)

INLINE_BYTES = 16_384  # bigger bodies are decoded and scored off the event loop


def _answer(
    models: ModelSet, raw: bytes, max_batch: int, explain: bool
) -> tuple[ServedModel, Verdicts]:
    served, parsed = models.decode_batch(raw, max_batch)
    return served, served.score(parsed, "all" if explain else "none")


def _explain(request: Request) -> bool:
    """The ``explain`` query parameter (``true``/``false``; absent: false)."""
    value = request.query_params.get("explain", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise HTTPException(422, f"explain must be true or false, not {value!r}")
    return value in ("true", "1")


@router.post(
    "/predict",
    summary="Score a batch of flows",
    response_model=PredictResponse,
    responses=error_responses(401, 413, 415, 422, 503),
    openapi_extra={
        "x-flow-batch": True,
        "parameters": [
            {
                "name": "explain",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False},
                "description": "Give every flow's reasons: the inputs that pushed it most "
                "towards its verdict, with their values and where they lie among the training "
                "rows of each class.",
            }
        ],
    },
)
async def predict(request: Request) -> JSONResponse:
    """``{"flows": [...], "model": optional name}`` → per flow its label, the probability of
    that label and the attack probability, with the model's name and version. Up to
    ``FLOWSENTINEL_SERVE_MAX_BATCH`` flows (413 beyond). Without ``model``, the first served
    model whose request fields the flows have. Each flow's novelty when the model has a
    training profile; its reasons with ``explain=true``."""
    require_json(request)
    app = state(request)
    raw = await read_body(request)
    explain = _explain(request)
    if len(raw) <= INLINE_BYTES and not explain:
        served, verdicts = _answer(app.models, raw, app.config.max_batch, explain)
    else:  # decoded and scored off the event loop
        served, verdicts = await run_in_threadpool(
            _answer, app.models, raw, app.config.max_batch, explain
        )
    app.metrics.count_verdicts(served.key, verdicts.labels)
    d = served.detector
    return FastJSONResponse(
        {
            "model": served.key,
            "version": d.version,
            "dataset": d.dataset,
            "task": d.task,
            "n_flows": len(verdicts.labels),
            "summary": verdicts.summary(),
            "predictions": flow_records(verdicts),
        }
    )
