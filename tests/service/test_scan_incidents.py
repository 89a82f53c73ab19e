"""Incidents in the scan answers: ``/v1/scan`` and ``flowsentinel scan --json`` on a crafted
spoofed SYN flood (5,000 one-packet flows the flow model never sees) and a benign session."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from fastapi.testclient import TestClient
from tests.capture.capture_sets import slice_records
from tests.capture.craft import pcap_bytes, tcp_session
from tests.capture.test_windows import VICTIM, spoofed_syn_flood

from conftest import CIC_NAME
from flowsentinel.service.app import create_app
from flowsentinel.service.config import ServiceSettings
from flowsentinel.service.schemas import ScanResponse

FLOOD = pcap_bytes(tcp_session() + [p for p in spoofed_syn_flood() if p.t_us > 3_000])


@pytest.fixture(scope="module")
def client(model_set, store) -> Iterator[TestClient]:
    app = create_app(ServiceSettings(), store.settings, models=model_set)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_v1_scan_answers_the_capture_incidents(client) -> None:
    files = {"file": ("flood.pcap", FLOOD, "application/octet-stream")}
    r = client.post("/v1/scan", files=files, data={"model": CIC_NAME})
    assert r.status_code == 200, r.text
    body = r.json()
    ScanResponse.model_validate(body)
    flood = [i for i in body["incidents"] if i["target_ip"] == VICTIM]
    assert len(flood) == 1
    inc = flood[0]
    sent = sum(1 for p in spoofed_syn_flood() if p.t_us > 3_000)
    assert inc["to_target"]["packets"] == sent and inc["target_port"] == 80
    assert inc["label"] == "SYN flood" and inc["spoofing_suspected"] and inc["state"] == "closed"
    assert inc["first"].endswith("+00:00") and inc["sources"] >= 0.95 * sent
    # each flow says which incident it is part of; the benign session's flow is in none (its
    # client sent nothing flagged), and the answer counts them
    placed = [p["incident_id"] for p in body["predictions"]]
    flagged = [p["label"] != "BENIGN" for p in body["predictions"]]
    counts = body["incident_flows"]
    assert counts["flows"] == sum(x is not None for x in placed)
    assert counts["flagged_alone"] == sum(
        f and x is None for f, x in zip(flagged, placed, strict=True)
    )
    assert set(placed) - {None} <= {i["id"] for i in body["incidents"]}
    assert all(x is None for x, f in zip(placed, flagged, strict=True) if not f)


def test_v1_scan_of_a_flow_file_has_no_incidents(client) -> None:
    spec = client.get("/openapi.json").json()["components"]["schemas"]
    assert "IncidentOut" in spec and "incidents" in spec["ScanResponse"]["properties"]


def test_scan_cli_prints_incidents_first_and_counts_every_packet(store, tmp_path: Path) -> None:
    capture = tmp_path / "flood.pcap"
    capture.write_bytes(FLOOD)
    res = subprocess.run(
        [sys.executable, "-m", "flowsentinel", "scan", str(capture), "--model", CIC_NAME, "--json"],
        capture_output=True, text=True, env=store.env(), timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    cov = out["coverage"]
    covered = sum(v["packets"] for v in cov["by_label"].values())
    assert cov["packets"] == len(tcp_session()) + out["incidents"][0]["to_target"]["packets"]
    assert covered == cov["packets_covered"] == len(tcp_session())
    assert cov["packets_not_covered"] == cov["single_packet_flows"] == cov["packets"] - covered
    assert out["incidents"][0]["label"] == "SYN flood"  # largest first
    table = subprocess.run(
        [sys.executable, "-m", "flowsentinel", "scan", str(capture), "--model", CIC_NAME],
        capture_output=True, text=True, env=store.env(), timeout=600,
    )  # fmt: skip
    text = table.stderr + table.stdout
    assert text.index("incidents") < text.index("By source address")
    assert "no verdict:" in text


def test_v1_scan_of_several_slices_is_one_capture(client) -> None:
    """Rotated slices uploaded together (in any order) answer what the whole capture answers."""
    whole = client.post("/v1/scan", files={"file": ("all.pcap", FLOOD)}, data={"model": CIC_NAME})
    assert whole.status_code == 200, whole.text
    n = len(list(dpkt.pcap.Reader(io.BytesIO(FLOOD))))
    slices = slice_records(FLOOD, [n // 3, 2 * n // 3])
    files = [("file", (f"s{k}.pcap", data)) for k, data in reversed(list(enumerate(slices)))]
    parts = client.post("/v1/scan", files=files, data={"model": CIC_NAME})
    assert parts.status_code == 200, parts.text
    a, b = whole.json(), parts.json()
    ScanResponse.model_validate(b)
    assert b["files"] == ["s2.pcap", "s1.pcap", "s0.pcap"] and b["n_flows"] == a["n_flows"]
    assert b["incidents"] == a["incidents"] and b["summary"] == a["summary"]

    def rows(body: dict) -> list[dict]:
        return sorted(
            ({k: v for k, v in r.items() if k != "row"} for r in body["predictions"]),
            key=lambda r: (r["flow_id"], r["start"]),
        )

    assert rows(a) == rows(b)
    mixed = [("file", ("s0.pcap", slices[0])), ("file", ("flows.csv", b"a,b\n1,2\n"))]
    refused = client.post("/v1/scan", files=mixed, data={"model": CIC_NAME})
    assert refused.status_code == 422 and "captures only" in refused.text
