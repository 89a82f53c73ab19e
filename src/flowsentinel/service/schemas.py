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


class Reason(BaseModel):
    """One input that pushed a flow towards its verdict (``docs/trust.md``, "Reasons")."""

    model_config = ConfigDict(extra="allow")

    feature: str = Field(description="The model input this reason is about.")
    value: float | str | None = Field(description="The flow's value of that input.")
    contribution: float = Field(description="How much it pushed the flow towards its verdict.")
    text: str = Field(description="The reason in words.")
    percentiles: dict[str, float] | None = Field(
        default=None, description="Where the value lies among the training rows of each class."
    )


class FlowVerdict(BaseModel):
    label: str = Field(description="The predicted class.")
    probability: float = Field(ge=0, le=1, description="Probability of that class.")
    attack_probability: float = Field(ge=0, le=1, description="1 - P(BENIGN).")
    novelty: float | None = Field(
        default=None,
        description="Distance to the training flows over the novelty threshold (> 1: novel), "
        "when the model has a training profile.",
    )
    in_distribution: bool | None = Field(
        default=None, description="False: traffic unlike anything the model was trained on."
    )
    confidence: Literal["high", "low"] | None = Field(default=None)
    reasons: list[Reason] | None = Field(
        default=None, description="What drove the verdict (null: the flow was not explained)."
    )


class PredictResponse(BaseModel):
    model: str
    version: str | None
    dataset: str
    task: str
    n_flows: int
    summary: dict[str, int] = Field(description="Flows per predicted class.")
    predictions: list[FlowVerdict]


class IncidentFlows(BaseModel):
    flows: int = Field(description="Flows inside an incident.")
    flagged: int = Field(description="Of those, flagged by the flow model.")
    joined: int = Field(
        description="Of those, judged benign alone but sent by an incident's attacker to its "
        "target within its span."
    )
    flagged_alone: int = Field(description="Flagged flows in no incident (no alert).")


class ScanVerdict(FlowVerdict):
    """A verdict with its flow's identity (``null`` where the file does not say: a CSV without
    identifier columns, or CICFlowMeter's zone-less local timestamps for ``start``)."""

    row: int = Field(description="Row of the file (0 = first data row).")
    flow_id: str | None = Field(description="The flow's id as its source wrote it.")
    src_ip: str | None = Field(description="Source address (the flow's first packet's sender).")
    src_port: int | None
    dst_ip: str | None
    dst_port: int | None
    protocol: str | None = Field(description="IANA keyword (tcp, udp, icmp, ...) or number.")
    start: str | None = Field(
        description="First packet's time, ISO 8601 in UTC with microseconds and its offset.",
        examples=["2017-07-05T09:00:01.123456+00:00"],
    )
    duration_s: float | None = Field(description="First to last packet, in seconds.")
    incident_id: str | None = Field(
        default=None,
        description="The incident this flow is part of (null: none; always null for a file "
        "of flows). A flagged flow in no incident is a verdict of the flow model alone.",
    )
    fwd_packets: int | None = Field(description="Packets source → destination.")
    bwd_packets: int | None = Field(description="Packets destination → source.")
    fwd_bytes: int | None = Field(
        description="Bytes source → destination (CIC-IDS2017: transport payload; UNSW-NB15: "
        "as the data set counts them)."
    )
    bwd_bytes: int | None = Field(description="Bytes destination → source (as fwd_bytes).")
    true_label: str | None = Field(default=None, description="The file's own label, if any.")


class SourceSummary(BaseModel):
    source: str = Field(description="Source address.")
    flows: int
    flagged: int = Field(description="Its flows judged not benign.")
    top_destination: str | None = Field(
        description="address:port it sent most flagged flows to (most flows if none flagged)."
    )


class OutOfRange(BaseModel):
    feature: str
    flows: int = Field(description="Flows whose value lies outside the training rows' range.")


class NoveltySummary(BaseModel):
    novel_flows: int = Field(description="Flows unlike anything the model was trained on.")
    novel_share: float = Field(ge=0, le=1)
    warning: str | None = Field(description="Set when more than a fifth of the flows is novel.")
    out_of_range: list[OutOfRange] = Field(description="The features most often out of range.")


class IncidentDirection(BaseModel):
    packets: int
    bytes: int


class IncidentSource(BaseModel):
    source: str
    packets: int


class IncidentOut(BaseModel):
    """One attack on one target over time (flowsentinel.incidents.Incident)."""

    model_config = ConfigDict(extra="allow")

    id: str
    family: str = Field(description="DoS, DDoS, PortScan, ... (the model's or the detector's)")
    label: str
    target_ip: str
    target_port: int | None = Field(description="null: the attack spans ports")
    protocol: str | None
    first_us: int = Field(description="First packet, microseconds since 1970 (UTC).")
    last_us: int
    first: str = Field(description="First packet, ISO 8601 UTC.")
    last: str
    duration_s: float
    state: str = Field(description="open, update or closed (closed once the scan ends).")
    detection: str = Field(description="flow, aggregate or flow+aggregate")
    sources: int
    top_sources: list[IncidentSource]
    spoofing_suspected: bool
    to_target: IncidentDirection
    from_target: IncidentDirection
    flows: int = Field(description="Flagged flows of the flow model in the incident.")
    confidence: float
    evidence: list[dict[str, Any]]


class ScanResponse(BaseModel):
    model: str
    version: str | None
    dataset: str
    task: str
    source: str = Field(description="What was read: csv (and its dialect) or pcap.")
    filename: str | None
    files: list[str] | None = Field(
        default=None, description="Every uploaded file's name (several captures are one)."
    )
    n_flows: int
    summary: dict[str, int]
    attack_flows: int
    sources: list[SourceSummary] = Field(
        description="Per source address, most flagged flows first."
    )
    novelty: NoveltySummary | None = Field(
        default=None, description="Novel flows (null: the model has no training profile)."
    )
    incidents: list[IncidentOut] = Field(
        default_factory=list,
        description="Incidents of a capture (flagged windows and flows per target and "
        "family), largest first; empty for a file of flows.",
    )
    incident_flows: IncidentFlows | None = Field(
        default=None, description="How the flows sit with the incidents (null: a file of flows)."
    )
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
