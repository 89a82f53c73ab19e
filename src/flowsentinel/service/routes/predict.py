"""``POST /v1/predict``: a batch of JSON flows, one vectorised model call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from flowsentinel.scoring import Verdicts
from flowsentinel.service.deps import FastJSONResponse, RequestRoute, read_body, require_json, state
from flowsentinel.service.engine import ModelSet, ServedModel
from flowsentinel.service.schemas import PredictResponse, error_responses

router = APIRouter(prefix="/v1", tags=["batch"], route_class=RequestRoute)

INLINE_BYTES = 16_384  # bigger bodies are decoded and scored off the event loop


def verdict_rows(verdicts: Verdicts) -> list[dict[str, Any]]:
    labels = [str(x) for x in verdicts.labels.tolist()]
    probability = verdicts.probability.tolist()
    attack = verdicts.attack_probability.tolist()
    return [
        {"label": lab, "probability": p, "attack_probability": a}
        for lab, p, a in zip(labels, probability, attack, strict=True)
    ]


def _answer(models: ModelSet, raw: bytes, max_batch: int) -> tuple[ServedModel, Verdicts]:
    served, parsed = models.decode_batch(raw, max_batch)
    return served, served.score(parsed)


@router.post(
    "/predict",
    summary="Score a batch of flows",
    response_model=PredictResponse,
    responses=error_responses(401, 413, 415, 422, 503),
    openapi_extra={"x-flow-batch": True},
)
async def predict(request: Request) -> JSONResponse:
    """``{"flows": [...], "model": optional name}`` → per flow its label, the probability of
    that label and the attack probability, with the model's name and version. Up to
    ``FLOWSENTINEL_SERVE_MAX_BATCH`` flows (413 beyond). Without ``model``, the first served
    model whose request fields the flows have."""
    require_json(request)
    app = state(request)
    raw = await read_body(request)
    if len(raw) <= INLINE_BYTES:
        served, verdicts = _answer(app.models, raw, app.config.max_batch)
    else:  # decoded and scored off the event loop
        served, verdicts = await run_in_threadpool(_answer, app.models, raw, app.config.max_batch)
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
            "predictions": verdict_rows(verdicts),
        }
    )
