"""``POST /v1/predict``: a batch of JSON flows, one vectorised model call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from flowsentinel.scoring import Verdicts
from flowsentinel.service.config import ServiceSettings
from flowsentinel.service.deps import (
    Config,
    FastJSONResponse,
    Metrics,
    Models,
    require_api_key,
    require_json,
    require_object,
)
from flowsentinel.service.engine import ModelSet, ServedModel
from flowsentinel.service.inputs import FlowInputError, error, parse_json
from flowsentinel.service.schemas import PredictResponse, error_responses

router = APIRouter(prefix="/v1", tags=["batch"], dependencies=[Depends(require_api_key)])

INLINE_BYTES = 16_384  # bigger bodies are parsed and scored off the event loop
HOT_MIN_FLOWS = 16  # a batch at least this long teaches the typed decode its field names


def verdict_rows(verdicts: Verdicts) -> list[dict[str, Any]]:
    labels = [str(x) for x in verdicts.labels.tolist()]
    probability = verdicts.probability.tolist()
    attack = verdicts.attack_probability.tolist()
    return [
        {"label": lab, "probability": p, "attack_probability": a}
        for lab, p, a in zip(labels, probability, attack, strict=True)
    ]


def _pick(models: ModelSet, name: Any, flows: list[Any]) -> ServedModel:
    if name is not None:
        served = models.get(name) if isinstance(name, str) else None
        if served is None:
            names = ", ".join(m.key for m in models.models)
            raise FlowInputError(
                [error(["body", "model"], f"unknown model; this server serves: {names}", "enum")]
            )
        return served
    if len(models.models) > 1 and flows and type(flows[0]) is dict:
        keys = list(flows[0])
        for served in models.models:  # the first model the flows fit
            if not served.detector.missing(keys):
                return served
    return models.default


def _answer(models: ModelSet, config: ServiceSettings, raw: bytes) -> tuple[ServedModel, Verdicts]:
    """The model and verdicts of a request body: the learnt typed decode when the body has
    the fields of the last accepted batch (:mod:`..batches`), the ordinary checks otherwise."""
    hot = models.hot_batch.decode(raw, config.max_batch)
    if hot is not None:
        served, parsed = hot
        return served, served.score(parsed)
    body = require_object(parse_json(raw), ["body"])
    extra = [k for k in body if k not in ("flows", "model")]
    problems = [error(["body", k], "unknown field", "extra_forbidden") for k in extra]
    flows = body.get("flows")
    if flows is None:
        problems.append(error(["body", "flows"], "field required", "missing"))
    elif type(flows) is not list:
        problems.append(error(["body", "flows"], "must be a list of flows", "list_type"))
    if problems:
        raise FlowInputError(problems)
    assert isinstance(flows, list)
    if len(flows) > config.max_batch:
        raise HTTPException(
            413, f"{len(flows):,} flows in one batch; the limit is {config.max_batch:,}"
        )
    served = _pick(models, body.get("model"), flows)
    parsed = served.parser.parse(flows, ["body", "flows"])
    if len(flows) >= HOT_MIN_FLOWS:
        models.hot_batch.learn(served, flows[0], body.get("model"))
    return served, served.score(parsed)


@router.post(
    "/predict",
    summary="Score a batch of flows",
    response_model=PredictResponse,
    responses=error_responses(401, 413, 415, 422, 503),
    openapi_extra={"x-flow-batch": True},
)
async def predict(
    request: Request, models: Models, metrics: Metrics, config: Config
) -> JSONResponse:
    """``{"flows": [...], "model": optional name}`` → per flow its label, the probability of
    that label and the attack probability, with the model's name and version. Up to
    ``FLOWSENTINEL_SERVE_MAX_BATCH`` flows (413 beyond); any known feature spelling."""
    require_json(request)
    raw = await request.body()
    if len(raw) <= INLINE_BYTES:
        served, verdicts = _answer(models, config, raw)
    else:  # parsed and scored off the event loop
        served, verdicts = await run_in_threadpool(_answer, models, config, raw)
    metrics.count_verdicts(served.key, verdicts.labels)
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
