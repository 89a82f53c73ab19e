"""``POST /v1/scan``: a file of flows (CSV of any dialect the data layer reads, gzip or parquet)
or a packet capture (pcap / pcapng, metered into CIC-IDS2017 flows) → per-flow verdicts and a
summary."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

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


def _scan_file(
    path: Path,
    filename: str,
    models: ModelSet,
    name: str | None,
    limits: Limits,
    allow_damaged: bool,
) -> tuple[ServedModel, Flows]:
    """Read the upload into flows and choose the model (runs in a worker thread); every limit
    is checked while the file is decoded (:mod:`flowsentinel.bounded`)."""
    path, kind = prepare(path, limits, filename)
    served = _pick(models, name, dataset_of(path, kind))
    flows = read_flows(
        path, kind, served.detector, limits=limits, name=filename, allow_damaged=allow_damaged
    )
    return served, flows


async def _save_upload(request: Request, folder: Path) -> tuple[Path, str, str | None, str | None]:
    """The uploaded bytes in a file of ``folder``: (path, kind, filename, model form field)."""
    kind = media_type(request)
    target = folder / "upload"
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=4)
        except HTTPException:
            raise
        except Exception as exc:
            raise HTTPException(400, f"cannot read the multipart body: {exc}") from None
        unknown = sorted(set(form.keys()) - {"file", "model"})
        if unknown:
            await form.close()
            raise HTTPException(422, f"unknown form field {unknown[0]!r}: send 'file' and 'model'")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "upload the flows as the form field 'file'")
        model = form.get("model")
        filename = upload.filename or "upload"
        with target.open("wb") as out:
            while chunk := await upload.read(_CHUNK):
                out.write(chunk)
        await form.close()
        return target, filename, filename, model if isinstance(model, str) and model else None
    if kind in _RAW_TYPES:
        with target.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        name = request.query_params.get("filename") or "upload"
        return target, name, None, None
    raise HTTPException(
        415,
        "upload a file as multipart/form-data (field 'file') or send it raw as text/csv or "
        f"application/octet-stream (got {kind or 'no content type'})",
    )


def _incidents(flows: Flows, rows: list[dict[str, Any]], benign: str) -> list[dict[str, Any]]:
    """A capture's incidents: its aggregate windows and its flagged flows (none for flow
    files: without packets there are no windows, and flow rows carry no reliable times)."""
    if flows.aggregate is None:
        return []
    flows.aggregate.add_flows([r for r in rows if r["label"] != benign])
    flows.aggregate.finish()
    return flows.aggregate.incidents()


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
                            "file": {"type": "string", "format": "binary"},
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
        path, filename, original, model_name = await _save_upload(request, folder)
        model_name = model_name or request.query_params.get("model") or None
        if path.stat().st_size == 0:
            raise HTTPException(422, "the upload is empty")
        served, flows = await run_in_threadpool(
            _scan_file, path, filename, models, model_name, config.scan_limits, allow_damaged
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
    incidents = _incidents(flows, rows, summary.benign)
    return FastJSONResponse(
        {
            "model": served.key,
            "version": d.version,
            "dataset": d.dataset,
            "task": d.task,
            **flows.source,
            "filename": original,
            "n_flows": len(rows),
            "summary": verdicts.summary(),
            "attack_flows": summary.flows - summary.by_label.get(summary.benign, 0),
            "sources": summary.sources(),
            "novelty": summary.novelty(),
            "incidents": incidents,
            "predictions": rows,
        }
    )
