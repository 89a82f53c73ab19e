"""Scanning: packet captures (or flow files) → flows → a model → one verdict per flow.

Used by ``flowsentinel scan`` / ``watch`` and the service's pcap upload; the model call itself
is :class:`flowsentinel.scoring.Detector`.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from flowsentinel.bounded import UNLIMITED, Kind, Limits, capture_flows, sniff
from flowsentinel.capture import iter_flow_batches
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets.reader import read_file
from flowsentinel.datasets.reader import sniff as sniff_header
from flowsentinel.scoring import Detector

IDENTIFIERS: tuple[str, ...] = sc.CIC_IDENTIFIERS


def is_flow_file(path: Path) -> bool:
    """A file of flows (CSV, gzip CSV, parquet) rather than a packet capture, by its content
    (:func:`flowsentinel.bounded.sniff`: the one place that knows file formats)."""
    with path.open("rb") as fh:
        return sniff(fh.read(8), path.name) != "pcap"


def dataset_of(path: Path, kind: Kind) -> str | None:
    """The data set a file's flows belong to: captures give CIC-IDS2017 flows, a flow file
    says it in its header (``None`` when it cannot be told)."""
    if kind == "pcap":
        return sc.CIC.name  # the meter writes CICFlowMeter-2017 flows
    found = sniff_header(path).get("dataset")
    return found if isinstance(found, str) else None


@dataclass
class Flows:
    """The flows read from a file and where they came from (for the answer)."""

    frame: pd.DataFrame
    source: dict[str, Any]


def read_flows(
    path: Path,
    kind: Kind,
    det: Detector,
    *,
    limits: Limits = UNLIMITED,
    name: str = "",
    allow_damaged: bool = False,
) -> Flows:
    """The flows of a prepared file (:func:`flowsentinel.bounded.prepare`) for ``det``: a
    capture is metered (its packets counted against ``limits``, its damage checked), a flow
    file read in the model's data set; errors name the file as ``name``."""
    try:
        if kind == "pcap":
            check_capture_model(det)
            table, stats = capture_flows(path, limits, name, allow_damaged=allow_damaged)
            return Flows(table.to_pandas(), {"source": "pcap", "capture": stats.to_dict()})
        frame, report = read_file(path, dataset=det.dataset, require_label=False)
    except InputError as exc:
        if not name:
            raise
        raise type(exc)(str(exc).replace(str(path), name)) from None
    return Flows(frame.to_pandas(), {"source": f"csv ({report.dialect})"})


@dataclass
class ScanSummary:
    """Counts by verdict and, for attack verdicts, by source address."""

    flows: int = 0
    by_label: dict[str, int] = field(default_factory=dict)
    attacks_by_source: dict[str, int] = field(default_factory=dict)
    flows_by_source: dict[str, int] = field(default_factory=dict)

    def add(self, labels: np.ndarray, sources: np.ndarray | None) -> None:
        self.flows += len(labels)
        labels = labels.astype(str)
        _count_into(self.by_label, labels)
        if sources is None:
            return
        sources = sources.astype(str)
        _count_into(self.flows_by_source, sources)
        _count_into(self.attacks_by_source, sources[labels != sc.BENIGN])


def _count_into(counts: dict[str, int], values: np.ndarray) -> None:
    for name, count in zip(*np.unique(values, return_counts=True), strict=True):
        counts[str(name)] = counts.get(str(name), 0) + int(count)


def verdict_records(
    frame: pd.DataFrame, det: Detector
) -> tuple[list[dict[Hashable, Any]], np.ndarray]:
    """One dict per flow: its identifiers, ``label``, ``probability``, ``attack_probability``
    (str keys: the frame's column names, typed ``Hashable`` as pandas types them)."""
    verdicts = det.predict(frame)
    ids = [c for c in IDENTIFIERS if c in frame.columns]
    records = frame[ids].astype(object).where(frame[ids].notna(), None).to_dict("records")
    for rec, label, p, pa in zip(
        records, verdicts.labels, verdicts.probability, verdicts.attack_probability, strict=True
    ):
        rec["label"] = str(label)
        rec["probability"] = round(float(p), 6)
        rec["attack_probability"] = round(float(pa), 6)
    return records, verdicts.labels


def check_capture_model(det: Detector) -> None:
    if det.dataset != sc.CIC.name:
        raise InputError(
            f"the model {det.name} is a {det.dataset} model; packet captures give CIC-IDS2017 "
            "flows, so scan needs a cicids2017 model (train one or run `flowsentinel demo`)"
        )


def iter_capture_frames(source: Path | bytes, stats: Any = None) -> Iterator[pd.DataFrame]:
    """Flows of a capture in batches, as the meter finishes them."""
    yield from iter_flow_batches(source, stats=stats)


def read_flow_file(path: Path, det: Detector) -> pd.DataFrame:
    return read_flows(path, "csv", det).frame


def scan_frames(
    frames: Iterable[pd.DataFrame], det: Detector, out: IO[str] | None = None
) -> ScanSummary:
    """Score every batch; write a JSON line per flow to ``out``; return the summary."""
    summary = ScanSummary()
    for frame in frames:
        if len(frame) == 0:
            continue
        records, labels = verdict_records(frame, det)
        src = frame["Source IP"].to_numpy() if "Source IP" in frame.columns else None
        summary.add(np.asarray(labels), src)
        if out is not None:
            out.write("".join(json.dumps(r, default=str) + "\n" for r in records))
    return summary
