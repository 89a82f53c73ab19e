"""The two request formats of the specification, unchanged.

- ``POST /reports/``: the first seed's FastAPI route, 32 snake_case CIC-IDS2017 features →
  ``{"predictions": ["BENIGN"]}`` or ``["DoS"]``;
- ``POST /classify``: the second seed's BentoML service, one UNSW-NB15 record (41 fields, no
  ``proto``) → ``{"status": "Attack" | "Not attack", "attack_prob": p}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowsentinel.core import schema as sc
from flowsentinel.scoring import Verdicts
from flowsentinel.service.deps import (
    FastJSONResponse,
    RequestRoute,
    model_for,
    read_body,
    require_json,
    state,
)
from flowsentinel.service.schemas import ClassifyResponse, ReportsResponse, error_responses

router = APIRouter(tags=["seed APIs"], route_class=RequestRoute)

ERRORS = error_responses(401, 404, 413, 415, 422, 503)


async def _one_flow(request: Request, dataset: str, route: str) -> Verdicts:
    require_json(request)
    app = state(request)
    served = model_for(app.models, dataset, route)
    verdicts = served.score(served.body.decode_flow(await read_body(request)))
    app.metrics.count_verdicts(served.key, verdicts.labels)
    return verdicts


def _seed_route(path: str, summary: str, answer: type, dataset: sc.Dataset) -> Any:
    """The declaration of a seed route: its answer model, errors and the data set it serves."""
    return router.post(
        path,
        summary=summary,
        response_model=answer,
        responses=ERRORS,
        openapi_extra={"x-flow-dataset": dataset.name},
    )


@_seed_route("/reports/", "First seed: is this CIC-IDS2017 flow a DoS?", ReportsResponse, sc.CIC)
async def reports(request: Request) -> JSONResponse:
    """The first seed's request (its snake_case CIC-IDS2017 features), answered as it was:
    ``{"predictions": ["BENIGN"]}`` or ``["DoS"]``."""
    verdicts = await _one_flow(request, sc.CIC.name, "/reports/")
    return FastJSONResponse({"predictions": [str(label) for label in verdicts.labels]})


@_seed_route(
    "/classify", "Second seed: is this UNSW-NB15 record an attack?", ClassifyResponse, sc.UNSW
)
async def classify(request: Request) -> JSONResponse:
    """The second seed's UNSW-NB15 record answered ``{"status": "Attack" | "Not attack",
    "attack_prob": p}``."""
    verdicts = await _one_flow(request, sc.UNSW.name, "/classify")
    attack = int(verdicts.codes[0]) != 0
    p = float(verdicts.attack_probability[0])
    return FastJSONResponse({"status": "Attack" if attack else "Not attack", "attack_prob": p})
