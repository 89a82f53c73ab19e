"""Pydantic models of the API: fixed responses, and request models generated from each served
model's feature list so that the OpenAPI document shows the real fields.

Requests are checked by :mod:`.inputs` (same rules, plus every other known spelling of a
feature); the generated models are what the documentation and schemathesis see.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from flowsentinel.service.engine import ServedModel
from flowsentinel.service.inputs import VALUE_LIMIT


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, then the field (and flow index).")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorItem] | str


#: what each error status of the API means (every route lists the ones it can answer)
ERROR_MEANINGS: dict[int, str] = {
    400: "The multipart body cannot be read.",
    401: "Missing or wrong API key (only when the server has a key).",
    404: "No such model is served.",
    413: "Larger than a limit of the server (body, batch, upload, decompressed bytes, rows or "
    "packets), checked while the input is read.",
    415: "A content type or file format the route does not read.",
    422: "Bad fields or an unreadable file; every problem is named.",
    503: "The model cannot score now, or an unexpected error (logged under the id it names).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that can answer these error statuses."""
    return {code: {"model": ErrorResponse, "description": ERROR_MEANINGS[code]} for code in codes}


class ReportsResponse(BaseModel):
    predictions: list[str] = Field(
        description="One class per request: BENIGN or the attack class.",
        examples=[["BENIGN"], ["DoS"]],
    )


class ClassifyResponse(BaseModel):
    status: Literal["Attack", "Not attack"]
    attack_prob: float = Field(ge=0, le=1, description="Probability that the flow is an attack.")


class FlowVerdict(BaseModel):
    label: str = Field(description="The predicted class.")
    probability: float = Field(ge=0, le=1, description="Probability of that class.")
    attack_probability: float = Field(ge=0, le=1, description="1 - P(BENIGN).")


class PredictResponse(BaseModel):
    model: str
    version: str | None
    dataset: str
    task: str
    n_flows: int
    summary: dict[str, int] = Field(description="Flows per predicted class.")
    predictions: list[FlowVerdict]


class ScanVerdict(FlowVerdict):
    row: int = Field(description="Row of the file (0 = first data row).")
    true_label: str | None = Field(default=None, description="The file's own label, if any.")


class ScanResponse(BaseModel):
    model: str
    version: str | None
    dataset: str
    task: str
    source: str = Field(description="What was read: csv (and its dialect) or pcap.")
    filename: str | None
    n_flows: int
    summary: dict[str, int]
    attack_flows: int
    predictions: list[ScanVerdict]


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str | None
    uri: str
    dataset: str
    task: str
    model: str
    classes: list[str]
    feature_set: str
    features: list[str]
    request_fields: list[str]
    metrics: dict[str, Any]


class ModelsResponse(BaseModel):
    default: str
    models: list[ModelInfo]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    models: list[str]


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name) if part)


def flow_model(served: ServedModel) -> type[BaseModel]:
    """A pydantic model of one flow for ``served``: every feature required, numbers finite and
    within ±1e30, categorical fields strings, nothing else."""
    fields: dict[str, Any] = {}
    categorical = set(served.detector.categorical)
    for feature in served.detector.features:
        name = served.parser.display[feature]
        if feature in categorical:
            fields[name] = (str, Field(description=feature))
        else:
            fields[name] = (
                float,
                Field(
                    description=feature,
                    ge=-VALUE_LIMIT,
                    le=VALUE_LIMIT,
                    allow_inf_nan=False,
                ),
            )
    model_name = f"Flow{_title(served.key)}"
    return create_model(  # type: ignore[call-overload, no-any-return]
        model_name,
        __config__=ConfigDict(
            extra="forbid",
            title=f"Flow for {served.key}",
            json_schema_extra={
                "description": f"One {served.detector.dataset} flow for model {served.key} "
                "(any other known spelling of each feature is accepted too)."
            },
        ),
        **fields,
    )


def predict_request_models(
    models: list[tuple[ServedModel, type[BaseModel]]], max_batch: int
) -> list[type[BaseModel]]:
    """The /v1/predict bodies, one per served model: ``flows`` of that model's shape and an
    optional ``model`` naming it (the server scores a batch with one model)."""
    return [
        create_model(  # type: ignore[call-overload]
            f"PredictRequest{_title(served.key)}",
            __config__=ConfigDict(extra="forbid"),
            flows=(list[flow], Field(min_length=0, max_length=max_batch)),  # type: ignore[valid-type]
            model=(
                Literal[served.key] | None,  # type: ignore[valid-type]
                Field(default=None, description="Served model name (default: chosen by fields)."),
            ),
        )
        for served, flow in models
    ]
