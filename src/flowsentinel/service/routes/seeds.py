"""The two request formats of the specification, unchanged.

- ``POST /reports/``: the first seed's FastAPI route, 32 snake_case CIC-IDS2017 features →
  ``{"predictions": ["BENIGN"]}`` or ``["DoS"]``;
- ``POST /classify``: the second seed's BentoML service, one UNSW-NB15 record (41 fields, no
  ``proto``) → ``{"status": "Attack" | "Not attack", "attack_prob": p}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from flowsentinel.service.deps import (
    Metrics,
    Models,
    json_body,
    model_for,
    require_api_key,
    require_object,
)
from flowsentinel.service.engine import ModelSet
from flowsentinel.service.metrics import ServiceMetrics
from flowsentinel.service.schemas import ClassifyResponse, ReportsResponse, error_responses

router = APIRouter(tags=["seed APIs"], dependencies=[Depends(require_api_key)])

ERRORS = error_responses(401, 404, 413, 415, 422, 503)


@router.post(
    "/reports/",
    summary="First seed: is this CIC-IDS2017 flow a DoS?",
    response_model=ReportsResponse,
    responses=ERRORS,
    openapi_extra={"x-flow-dataset": "cicids2017"},
)
async def reports(request: Request, models: Models, metrics: Metrics) -> JSONResponse:
    """The first seed's request (its snake_case CIC-IDS2017 features; any other known spelling
    is accepted too), answered as it was: ``{"predictions": ["BENIGN"]}`` or ``["DoS"]``."""
    model_for(models, "cicids2017", "/reports/")
    record = require_object(await json_body(request), ["body"])
    return JSONResponse(reports_answer(models, metrics, record))


def reports_answer(models: ModelSet, metrics: ServiceMetrics, record: Any) -> dict[str, Any]:
    """The ``/reports/`` answer for a parsed JSON body (also used by :mod:`..hot`)."""
    served = model_for(models, "cicids2017", "/reports/")
    verdicts = served.score(served.parser.parse([record], ["body"]))
    metrics.count_verdicts(served.key, verdicts.labels)
    return {"predictions": [str(label) for label in verdicts.labels]}


@router.post(
    "/classify",
    summary="Second seed: is this UNSW-NB15 record an attack?",
    response_model=ClassifyResponse,
    responses=ERRORS,
    openapi_extra={"x-flow-dataset": "unsw-nb15"},
)
async def classify(request: Request, models: Models, metrics: Metrics) -> JSONResponse:
    """The second seed's UNSW-NB15 record answered ``{"status": "Attack" | "Not attack",
    "attack_prob": p}``."""
    model_for(models, "unsw-nb15", "/classify")
    record = require_object(await json_body(request), ["body"])
    return JSONResponse(classify_answer(models, metrics, record))


def classify_answer(models: ModelSet, metrics: ServiceMetrics, record: Any) -> dict[str, Any]:
    """The ``/classify`` answer for a parsed JSON body (also used by :mod:`..hot`)."""
    served = model_for(models, "unsw-nb15", "/classify")
    verdicts = served.score(served.parser.parse([record], ["body"]))
    metrics.count_verdicts(served.key, verdicts.labels)
    p = float(verdicts.attack_probability[0])
    attack = str(verdicts.labels[0]) != served.detector.classes[0]
    return {"status": "Attack" if attack else "Not attack", "attack_prob": p}
