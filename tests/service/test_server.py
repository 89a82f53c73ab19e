"""The real server: ``flowsentinel serve`` in a subprocess on a free port, both models loaded
from a temporary MLflow store."""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import (
    CIC_NAME,
    SEED_B_ATTACK,
    SEED_B_NORMAL,
    SHARED,
    UNSW_NAME,
    cic_record,
)
from flowsentinel.datasets.reader import read_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def cic_frame(store) -> pd.DataFrame:
    return read_file(store.cic_csv)[0].to_pandas()


def test_both_seed_formats_round_trip(http, cic_frame, model_set) -> None:
    detector = model_set.get(CIC_NAME).detector
    expected = detector.predict(cic_frame.iloc[:20])
    for i in range(20):
        r = http.post("/reports/", json=cic_record(cic_frame, i))
        assert r.status_code == 200
        assert r.json() == {"predictions": [str(expected.labels[i])]}
    normal = http.post("/classify", json=SEED_B_NORMAL).json()
    attack = http.post("/classify", json=SEED_B_ATTACK).json()
    assert normal["status"] == "Not attack" and attack["status"] == "Attack"
    assert attack["attack_prob"] > 0.5 > normal["attack_prob"]


def test_batch_and_scan_agree_with_in_process_predictions(http, store, cic_frame, model_set):
    detector = model_set.get(CIC_NAME).detector
    expected = detector.predict(cic_frame)
    flows = [cic_record(cic_frame, i) for i in range(500)]
    batch = http.post("/v1/predict", json={"flows": flows, "model": CIC_NAME}).json()
    assert [p["label"] for p in batch["predictions"]] == [str(x) for x in expected.labels[:500]]
    np.testing.assert_allclose(
        [p["attack_probability"] for p in batch["predictions"]],
        expected.attack_probability[:500],
    )
    assert batch["version"] == detector.version
    with store.cic_csv.open("rb") as fh:
        scan = http.post("/v1/scan", files={"file": ("flows.csv", fh, "text/csv")}).json()
    assert [p["label"] for p in scan["predictions"]] == [str(x) for x in expected.labels]
    assert scan["summary"] == expected.summary()
    unsw = http.post("/v1/predict", json={"flows": [SEED_B_NORMAL, SEED_B_ATTACK]}).json()
    assert unsw["model"] == UNSW_NAME


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({k: v for k, v in cic_record().items() if k != "flow_duration"}, 422, "flow_duration"),
        ({**cic_record(), "unknown_thing": 1}, 422, "unknown_thing"),
        ({**cic_record(), "flow_bytes_s": "1,5"}, 422, "flow_bytes_s"),
        ({**cic_record(), "active_max": float("nan")}, 422, "active_max"),
        ({**cic_record(), "active_max": float("-inf")}, 422, "active_max"),
    ],
)
def test_error_statuses(http, body, status, field) -> None:
    r = http.post(
        "/reports/", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert r.status_code == status
    assert field in [d["loc"][-1] for d in r.json()["detail"]]


def test_transport_errors(http, server) -> None:
    r = http.post("/reports/", content=b"{}", headers={"content-type": "text/csv"})
    assert r.status_code == 415
    assert httpx.post(server.url + "/reports/", json=cic_record()).status_code == 401
    wrong = {"X-API-Key": "nope"}
    assert httpx.post(server.url + "/reports/", json=cic_record(), headers=wrong).status_code == 401
    big = json.dumps({"flows": [cic_record()] * 4000}).encode()
    assert len(big) > 1 << 20
    r = http.post("/v1/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_streamed_body_over_the_limit(server) -> None:
    """A chunked body (no Content-Length) is counted as it arrives."""
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {server.headers['X-API-Key']}"
        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"[" + b" " * 65536
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        try:
            for _ in range(40):
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass  # the server answered and closed early
        reply = s.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]


def test_server_keeps_serving_after_errors(http) -> None:
    for payload in (b"[", b'{"flows": 3}', b"\x00\x01", b'{"a": ' * 5000):
        r = http.post("/v1/predict", content=payload, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.post("/reports/", json=cic_record()).status_code == 200
    metrics = http.get("/metrics").text
    assert "flowsentinel_http_requests_total" in metrics
    assert 'status="422"' in metrics and 'status="5' not in metrics


PCAP = SHARED / "pcaps" / "attack" / "slowloris-lab.pcap"


@pytest.mark.skipif(not PCAP.exists(), reason=f"{PCAP} absent (../shared/datasets not here)")
def test_scan_a_packet_capture(http) -> None:
    with PCAP.open("rb") as fh:
        r = http.post("/v1/scan", files={"file": (PCAP.name, fh, "application/vnd.tcpdump.pcap")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "pcap" and body["n_flows"] > 100
    assert body["capture"]["packets"] == 3754
    assert sum(body["summary"].values()) == body["n_flows"]


def _rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    return int(status.split("VmRSS:", 1)[1].split()[0]) * 1024


def _csv_bomb(header: bytes, row: bytes, megabytes: int) -> bytes:
    """A gzip of ``megabytes`` MiB of one repeated row: one member per MiB (gzip allows many),
    so that the bomb is built in milliseconds whatever it expands to."""
    block = row * ((1 << 20) // len(row))
    return gzip.compress(header + block) + gzip.compress(block) * (megabytes - 1)


def test_refused_gzip_uploads_leave_the_memory_as_it_was(http, server, store) -> None:
    header, _, rest = store.cic_csv.read_bytes().partition(b"\n")
    bomb = _csv_bomb(header + b"\n", rest.split(b"\n", 1)[0] + b"\n", 1200)  # 1.2 GB of rows
    assert len(bomb) < 8 << 20  # within the upload limit: only the decompression is refused
    before = _rss_bytes(server.proc.pid)
    for _ in range(20):
        r = http.post("/v1/scan", files={"file": ("flows.csv.gz", bomb, "application/gzip")})
        assert r.status_code == 413, r.text
        assert r.json()["detail"].startswith("flows.csv.gz: decompresses to more than")
    after = _rss_bytes(server.proc.pid)
    print(f"RSS before {before / 1e6:.0f} MB, after 20 refused bombs {after / 1e6:.0f} MB")
    assert after <= before * 1.10, (before, after)
