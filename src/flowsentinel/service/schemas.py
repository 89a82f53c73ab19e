"""The API's answers as pydantic models (what the OpenAPI document shows for each status).

Request bodies are declared by the served models themselves (:mod:`.bodies`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
