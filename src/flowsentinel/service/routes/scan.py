"""``POST /v1/scan``: a file of flows (CSV of any dialect the data layer reads, gzip or parquet)
or a packet capture (pcap / pcapng, metered into CIC-IDS2017 flows) → per-flow verdicts and a
summary."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from flowsentinel.bounded import Limits, prepare
from flowsentinel.core import schema as sc
from flowsentinel.scanning import (
    Flows,
    ScanSummary,
    dataset_of,
    flow_identity,
    flow_records,
    read_flows,
)
from flowsentinel.service.deps import (
    Config,
    FastJSONResponse,
    Metrics,
    Models,
    media_type,
)
from flowsentinel.service.engine import ModelSet, ServedModel
from flowsentinel.service.schemas import ScanResponse, error_responses

router = APIRouter(prefix="/v1", tags=["batch"])

_RAW_TYPES = {"text/csv", "application/csv", "text/plain", "application/octet-stream"}
_CHUNK = 1 << 20


def _pick(models: ModelSet, name: str | None, dataset: str | None) -> ServedModel:
    if name:
        served = models.get(name)
        if served is None:
            names = ", ".join(m.key for m in models.models)
            raise HTTPException(422, f"unknown model {name!r}; this server serves: {names}")
        return served
    if dataset is not None:
        served = models.for_dataset(dataset)
        if served is None:
            title = sc.dataset(dataset).title
            raise HTTPException(422, f"the file holds {title} flows and no such model is served")
        return served
    return models.default


MAX_FILES = 64  # captures in one upload (several rotated slices are one capture)


def _scan_file(
    uploads: list[tuple[Path, str]],
    models: ModelSet,
    name: str | None,
    limits: Limits,
    allow_damaged: bool,
) -> tuple[ServedModel, Flows]:
    """Read the upload(s) into flows and choose the model (runs in a worker thread); every
    limit is checked while the files are decoded (:mod:`flowsentinel.bounded`). Several files
    must all be captures: they are one capture, in the order of their first packet."""
    prepared = [prepare(path, limits, filename) for path, filename in uploads]
    names = [filename for _, filename in uploads]
    if len(prepared) > 1:
        others = [n for (_, kind), n in zip(prepared, names, strict=True) if kind != "pcap"]
        if others:
            raise HTTPException(
                422, f"{others[0]}: several files are scanned as one capture: send captures "
                "only (one file of flows per request)",
            )  # fmt: skip
    (path, kind), filename = prepared[0], names[0]
    served = _pick(models, name, dataset_of(path, kind))
    paths = path if len(prepared) == 1 else [p for p, _ in prepared]
    label = filename if len(prepared) == 1 else f"{len(prepared)} captures"
    flows = read_flows(
        paths, kind, served.detector, limits=limits, name=label, allow_damaged=allow_damaged
    )
    return served, flows


async def _save_upload(
    request: Request, folder: Path
) -> tuple[list[tuple[Path, str]], list[str] | None, str | None]:
    """The uploaded bytes in files under ``folder``: ([(path, name)], the original file names,
    the model form field)."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES + 4)
        except HTTPException:
            raise
        except Exception as exc:
            raise HTTPException(400, f"cannot read the multipart body: {exc}") from None
        try:
            return await _save_form(form, folder)
        finally:
            await form.close()
    if kind in _RAW_TYPES:
        target = folder / "0" / "upload"
        target.parent.mkdir()
        with target.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        name = request.query_params.get("filename") or "upload"
        return [(target, name)], None, None
    raise HTTPException(
        415,
        "upload a file as multipart/form-data (field 'file') or send it raw as text/csv or "
        f"application/octet-stream (got {kind or 'no content type'})",
    )


async def _save_form(
    form: Any, folder: Path
) -> tuple[list[tuple[Path, str]], list[str], str | None]:
    unknown = sorted(set(form.keys()) - {"file", "model"})
    if unknown:
        raise HTTPException(422, f"unknown form field {unknown[0]!r}: send 'file' and 'model'")
    uploads = form.getlist("file")
    if not uploads or not all(isinstance(u, UploadFile) for u in uploads):
        raise HTTPException(422, "upload the flows as the form field 'file'")
    saved = []
    for k, upload in enumerate(uploads):
        target = folder / str(k) / "upload"  # one folder each: prepare() renames by kind
        target.parent.mkdir()
        with target.open("wb") as out:
            while chunk := await upload.read(_CHUNK):
                out.write(chunk)
        saved.append((target, upload.filename or f"upload-{k}"))
    model = form.get("model")
    return saved, [n for _, n in saved], model if isinstance(model, str) and model else None


def _incidents(
    flows: Flows, rows: list[dict[str, Any]], identity: Any, labels: Any, benign: str
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """A capture's incidents: its aggregate windows and its flagged flows (none for flow
    files: without packets there are no windows, and flow rows carry no reliable times).
    Every row gets the ``incident_id`` it belongs to; with it, how the flows sit with them."""
    aggregate = flows.aggregate
    if aggregate is None:
        return [], None
    aggregate.add_ledger(identity, np.asarray(labels, dtype=object))
    aggregate.add_flows([r for r in rows if r["label"] != benign])
    aggregate.finish()
    placed, counts = aggregate.place()
    for row, incident in zip(rows, placed.tolist(), strict=True):
        row["incident_id"] = incident
    return aggregate.incidents(), counts


@router.post(
    "/scan",
    summary="Score every flow of an uploaded file or packet capture",
    response_model=ScanResponse,
    responses=error_responses(400, 401, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "description": "The file; several captures (rotated slices) "
                                "are scanned as one capture.",
                                "oneOf": [
                                    {"type": "string", "format": "binary"},
                                    {
                                        "type": "array",
                                        "items": {"type": "string", "format": "binary"},
                                        "maxItems": MAX_FILES,
                                    },
                                ],
                            },
                            "model": {"type": "string"},
                        },
                    }
                },
                "text/csv": {"schema": {"type": "string", "minLength": 1}},
            },
        }
    },
)
async def scan(
    request: Request,
    models: Models,
    metrics: Metrics,
    config: Config,
    allow_damaged: Annotated[
        bool,
        Query(
            description="Score a capture of which more than 1 % could not be read (damaged "
            "records); the answer's capture statistics list the skipped byte ranges."
        ),
    ] = False,
) -> JSONResponse:
    """A CSV of flows (any CIC-IDS2017 or UNSW-NB15 dialect; .csv.gz and parquet too) or a
    pcap / pcapng capture. The model is the ``model`` form field, else the first served model
    of the file's data set. Answers per-flow verdicts (with the file's own label when it has
    one) and a summary."""
    folder = Path(tempfile.mkdtemp(prefix="flowsentinel-scan-"))
    try:
        uploads, originals, model_name = await _save_upload(request, folder)
        model_name = model_name or request.query_params.get("model") or None
        empty = [name for path, name in uploads if path.stat().st_size == 0]
        if empty:
            raise HTTPException(422, f"the upload is empty: {empty[0]}")
        served, flows = await run_in_threadpool(
            _scan_file, uploads, models, model_name, config.scan_limits, allow_damaged
        )
        verdicts = await run_in_threadpool(served.score_frame, flows.frame)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    metrics.count_verdicts(served.key, verdicts.labels)
    d = served.detector
    identity = flow_identity(flows.frame, d.dataset)
    summary = ScanSummary(benign=d.classes[0])
    summary.add(verdicts.labels, identity)
    summary.add_novelty(verdicts)
    rows = flow_records(verdicts, flows.frame, dataset=d.dataset, identity=identity)
    incidents, placed = _incidents(flows, rows, identity, verdicts.labels, summary.benign)
    return FastJSONResponse(
        {
            "model": served.key,
            "version": d.version,
            "dataset": d.dataset,
            "task": d.task,
            **flows.source,
            "filename": originals[0] if originals else None,
            "files": originals,
            "n_flows": len(rows),
            "summary": verdicts.summary(),
            "attack_flows": summary.flows - summary.by_label.get(summary.benign, 0),
            "sources": summary.sources(),
            "novelty": summary.novelty(),
            "incidents": incidents,
            "incident_flows": placed,
            "predictions": rows,
        }
    )
