"""Every verdict names its flow: ``/v1/scan`` rows and ``flowsentinel scan`` lines carry the flow's
identity (one record shape, :func:`flowsentinel.scanning.flow_records`), and identifiers never
reach the model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import CIC_NAME, SEED_B_ATTACK, SEED_B_NORMAL, SHARED
from flowsentinel.capture import iter_flow_batches
from flowsentinel.core import schema as sc
from flowsentinel.scanning import IDENTITY, IDENTITY_SOURCES, flow_identity
from flowsentinel.service.app import create_app
from flowsentinel.service.config import ServiceSettings
from flowsentinel.service.schemas import ScanResponse

PCAP = SHARED / "pcaps" / "attack" / "slowloris-lab.pcap"
needs_pcap = pytest.mark.skipif(not PCAP.exists(), reason="../shared/datasets not here")
ATTACKER, VICTIM = "10.0.2.15", "192.168.56.102:80"


@pytest.fixture(scope="module")
def client(model_set, store) -> Iterator[TestClient]:
    app = create_app(ServiceSettings(), store.settings, models=model_set)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def pcap_frame() -> pd.DataFrame:
    return pd.concat(list(iter_flow_batches(PCAP)), ignore_index=True)


@needs_pcap
def test_scan_rows_carry_the_flow_identity(client, pcap_frame) -> None:
    with PCAP.open("rb") as fh:
        r = client.post("/v1/scan", files={"file": (PCAP.name, fh, "application/octet-stream")})
    assert r.status_code == 200, r.text
    body = r.json()
    ScanResponse.model_validate(body)  # the documented shape
    rows = body["predictions"]
    ident = flow_identity(pcap_frame, sc.CIC.name)
    assert [row["row"] for row in rows] == list(range(len(pcap_frame)))
    for name in IDENTITY:
        want = ident[name].astype(object).where(ident[name].notna(), None).tolist()
        assert [row[name] for row in rows] == want, name
    # the raw CIC identifier columns are not repeated in the record
    assert not set(sc.CIC_IDENTIFIERS) & set(rows[0])
    first = rows[0]
    assert (first["src_ip"], first["dst_ip"], first["dst_port"]) == (ATTACKER, "192.168.56.102", 80)
    assert first["start"].endswith("+00:00") and first["fwd_packets"] > 0
    # the model's training profile judges every flow, as for scan
    assert all(row["confidence"] == ("high" if row["in_distribution"] else "low") for row in rows)
    flagged = sum(row["label"] != "BENIGN" for row in rows)
    assert body["sources"] == [
        {"source": ATTACKER, "flows": 300, "flagged": flagged, "top_destination": VICTIM}
    ]


def test_scan_of_a_file_without_identifiers(client, store) -> None:
    """The synthetic MachineLearningCVE file has only Destination Port: the rest is null."""
    with store.cic_csv.open("rb") as fh:
        r = client.post("/v1/scan", files={"file": ("flows.csv", fh, "text/csv")})
    assert r.status_code == 200, r.text
    body = r.json()
    ScanResponse.model_validate(body)
    row = body["predictions"][0]
    assert isinstance(row["dst_port"], int)
    assert row["src_ip"] is None and row["start"] is None and row["flow_id"] is None
    assert row["fwd_packets"] is not None  # Total Fwd Packets is a feature column too
    assert body["sources"] == []


def test_predict_rows_are_the_verdict_part(client) -> None:
    r = client.post("/v1/predict", json={"flows": [SEED_B_ATTACK]})
    assert r.status_code == 200, r.text
    (row,) = r.json()["predictions"]
    # the verdict and the flow's novelty (the served models carry a training profile)
    assert set(row) == {
        "label", "probability", "attack_probability", "novelty", "in_distribution", "confidence"
    }  # fmt: skip
    assert row["confidence"] == ("high" if row["in_distribution"] else "low")


def test_predict_explains_on_request(client) -> None:
    r = client.post("/v1/predict?explain=true", json={"flows": [SEED_B_ATTACK, SEED_B_NORMAL]})
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    assert all(row["reasons"] and row["reasons"][0]["contribution"] > 0 for row in rows)
    assert all(isinstance(x["text"], str) for row in rows for x in row["reasons"])
    assert (
        client.post("/v1/predict?explain=maybe", json={"flows": [SEED_B_ATTACK]}).status_code == 422
    )


@needs_pcap
def test_identifiers_are_never_model_inputs(model_set, pcap_frame) -> None:
    det = model_set.get(CIC_NAME).detector
    where = IDENTITY_SOURCES[sc.CIC.name]
    identifier_columns = {
        where.flow_id, where.src_ip, where.src_port, where.dst_ip, where.dst_port,
        where.protocol, where.start,
    }  # fmt: skip
    assert not identifier_columns & set(det.features)
    assert not set(sc.CIC_IDENTIFIERS) & set(det.features)
    scrambled = pcap_frame.copy()
    scrambled["Source IP"] = "203.0.113.7"
    scrambled["Destination IP"] = "198.51.100.1"
    scrambled["Source Port"] = np.arange(len(scrambled)) + 1
    scrambled["Destination Port"] = 8080
    scrambled["Timestamp"] = "1999-01-01 00:00:00"
    scrambled["Flow ID"] = "x"
    assert np.array_equal(det.predict(scrambled).proba, det.predict(pcap_frame).proba)


def _cli(store, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowsentinel", *args],
        capture_output=True, text=True, env=store.env(), timeout=600,
    )  # fmt: skip


@needs_pcap
def test_scan_cli_lines_and_per_source_summary(store, tmp_path: Path, pcap_frame) -> None:
    out = tmp_path / "verdicts.jsonl"
    res = _cli(store, "scan", str(PCAP), "--model", CIC_NAME, "-o", str(out), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == summary["flows"] == len(pcap_frame)
    flagged = sum(x["label"] != "BENIGN" for x in lines)
    assert summary["sources"] == [
        {"source": ATTACKER, "flows": 300, "flagged": flagged, "top_destination": VICTIM}
    ]
    assert [x["row"] for x in lines] == list(range(len(lines)))
    # the model's training profile judges every flow: its answers ride in the same record
    assert all({"novelty", "in_distribution", "confidence"} <= set(x) for x in lines)
    assert all(x["confidence"] == ("high" if x["in_distribution"] else "low") for x in lines)
    by_row = flow_identity(pcap_frame, sc.CIC.name)
    assert [x["src_port"] for x in lines] == by_row["src_port"].tolist()
    assert [x["start"] for x in lines] == by_row["start"].tolist()
    table = _cli(store, "scan", str(PCAP), "--model", CIC_NAME)
    assert table.returncode == 0, table.stderr[-2000:]
    assert "top destination" in table.stderr and VICTIM in table.stderr
