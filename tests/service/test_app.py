"""In-process tests of the service app (TestClient, models trained once per session)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import CIC_NAME, SEED_B_ATTACK, SEED_B_NORMAL, SHARED, UNSW_NAME, cic_record
from flowsentinel.core import schema as sc
from flowsentinel.datasets.reader import read_file
from flowsentinel.models.compiled import CompileError, compile_pipeline
from flowsentinel.service.app import create_app
from flowsentinel.service.config import ServiceSettings


@pytest.fixture(scope="module")
def client(model_set, store) -> Iterator[TestClient]:
    config = ServiceSettings(max_batch=50, max_body_bytes=64 << 10, max_upload_bytes=4 << 20)
    app = create_app(config, store.settings, models=model_set)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def cic_frame(store) -> pd.DataFrame:
    frame, _ = read_file(store.cic_csv)
    return frame.to_pandas()


def test_reports_answers_like_the_first_seed(client, cic_frame) -> None:
    for row, expected in ((0, None), (1, None)):
        r = client.post("/reports/", json=cic_record(cic_frame, row))
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"predictions"}
        assert body["predictions"][0] in ("BENIGN", "DoS")
        del expected


def test_reports_agrees_with_the_detector(client, cic_frame, model_set) -> None:
    canonical = {f: float(cic_frame[f].iloc[5]) for f in sc.SEED_A_FEATURES}
    answer = client.post("/reports/", json=cic_record(cic_frame, 5)).json()
    expected = model_set.get(CIC_NAME).detector.predict(pd.DataFrame([canonical]))
    assert answer["predictions"] == [str(expected.labels[0])]


def test_json_bodies_use_the_documented_names(client, cic_frame) -> None:
    """The body is what the OpenAPI document declares: another spelling of a feature (a file's
    column name) is an unknown field, and the documented one is missing."""
    record = cic_record(cic_frame, 5)
    record["Flow Bytes/s"] = record.pop("flow_bytes_s")
    r = client.post("/reports/", json=record)
    assert r.status_code == 422
    named = {(d["loc"][-1], d["type"]) for d in r.json()["detail"]}
    assert named == {("Flow Bytes/s", "extra_forbidden"), ("flow_bytes_s", "missing")}


def test_classify_seed_samples(client) -> None:
    normal = client.post("/classify", json=SEED_B_NORMAL)
    attack = client.post("/classify", json=SEED_B_ATTACK)
    assert normal.status_code == attack.status_code == 200
    assert normal.json()["status"] == "Not attack"
    assert attack.json()["status"] == "Attack"
    for r in (normal, attack):
        assert set(r.json()) == {"status", "attack_prob"}
        assert 0.0 <= r.json()["attack_prob"] <= 1.0


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        (lambda r: r.pop("flow_duration"), "flow_duration", "missing"),
        (lambda r: r.update(not_a_feature=1.0), "not_a_feature", "extra_forbidden"),
        (lambda r: r.update(flow_bytes_s="fast"), "flow_bytes_s", "float_type"),
        (lambda r: r.update(flow_bytes_s=None), "flow_bytes_s", "float_type"),
        (lambda r: r.update(flow_bytes_s=True), "flow_bytes_s", "float_type"),
        (lambda r: r.update(idle_std=10**400), "idle_std", "out_of_range"),
        (lambda r: r.update(idle_std=1e35), "idle_std", "out_of_range"),
        (lambda r: r.update(idle_std=-1e35), "idle_std", "out_of_range"),
    ],
)
def test_bad_fields_are_named(client, change, field, kind) -> None:
    record = cic_record()
    change(record)
    body = json.dumps(record)  # NaN / Infinity literals as Python writes them
    r = client.post("/reports/", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert {"loc": ["body", field], "type": kind} in [
        {"loc": d["loc"], "type": d["type"]} for d in detail
    ]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_literals_are_named(client, literal) -> None:
    """Python's json module writes these literals; the field holding one is named."""
    body = json.dumps(cic_record()).replace('"idle_std": 1.0', f'"idle_std": {literal}')
    r = client.post("/reports/", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"loc": ["body", "idle_std"], "msg": "must be a finite number", "type": "finite_number"}
    ]


def test_a_body_that_is_not_json_says_where(client) -> None:
    r = client.post(
        "/reports/", content=b'{"idle_std": 1.0,', headers={"content-type": "application/json"}
    )
    [problem] = r.json()["detail"]
    assert problem["type"] == "json_invalid" and "truncated" in problem["msg"]


def test_every_bad_field_named_at_once(client) -> None:
    record = cic_record()
    del record["idle_min"], record["idle_max"]
    record["flow_iat_std"] = "x"
    record["bogus"] = 3
    r = client.post("/reports/", json=record)
    named = {d["loc"][-1] for d in r.json()["detail"]}
    assert r.status_code == 422
    assert named == {"idle_min", "idle_max", "flow_iat_std", "bogus"}


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [
        ("{}", "text/plain", 415),
        ("{}", None, 415),
        ("{not json", "application/json", 422),
        ("[1, 2]", "application/json", 422),
        ("", "application/json", 422),
        (b"\xff\xfe", "application/json", 422),
    ],
)
def test_body_errors(client, content, ctype, status) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/reports/", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    assert "Traceback" not in r.text


def test_body_too_large(client) -> None:
    big = {"flows": [cic_record()] * 40, "padding": "x" * (70 << 10)}
    r = client.post("/v1/predict", json=big)
    assert r.status_code == 413


def test_chunked_body_too_large_is_counted(client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"flows": ['
        for _ in range(2000):
            yield json.dumps(cic_record()).encode() + b","
        yield b"{}]}"

    r = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_batch_agrees_with_detector(client, cic_frame, model_set) -> None:
    rows = [cic_record(cic_frame, i) for i in range(40)]
    r = client.post("/v1/predict", json={"flows": rows})
    assert r.status_code == 200, r.text
    body = r.json()
    served = model_set.get(CIC_NAME)
    expected = served.detector.predict(cic_frame.iloc[:40])
    assert [p["label"] for p in body["predictions"]] == [str(x) for x in expected.labels]
    got = [p["probability"] for p in body["predictions"]]
    np.testing.assert_allclose(got, expected.probability)
    assert body["version"] == served.detector.version and body["model"] == CIC_NAME
    assert sum(body["summary"].values()) == 40


def test_batch_limit_and_shape(client) -> None:
    assert client.post("/v1/predict", json={"flows": [cic_record()] * 51}).status_code == 413
    r = client.post("/v1/predict", json={"flows": [cic_record(), {"x": 1}], "extra": 1})
    assert r.status_code == 422
    r = client.post("/v1/predict", json={"flows": [cic_record(), {**cic_record(), "x": 1}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "flows", 1, "x"]
    assert client.post("/v1/predict", json={"flows": "no"}).status_code == 422
    assert client.post("/v1/predict", json={"flows": []}).json()["n_flows"] == 0
    r = client.post("/v1/predict", json={"flows": [cic_record()], "model": "nope"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]


def test_batch_picks_the_model_by_fields(client) -> None:
    r = client.post("/v1/predict", json={"flows": [SEED_B_NORMAL, SEED_B_ATTACK]})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == UNSW_NAME
    assert [p["label"] for p in r.json()["predictions"]] == ["BENIGN", "Attack"]


def test_scan_csv_agrees_with_detector(client, store, cic_frame, model_set) -> None:
    with store.cic_csv.open("rb") as fh:
        r = client.post("/v1/scan", files={"file": ("flows.csv", fh, "text/csv")})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = model_set.get(CIC_NAME).detector.predict(cic_frame)
    assert body["n_flows"] == len(cic_frame)
    assert [p["label"] for p in body["predictions"]] == [str(x) for x in expected.labels]
    assert body["summary"] == expected.summary()
    assert body["predictions"][0]["true_label"] is not None


def test_scan_unsw_csv_picks_the_unsw_model(client, store) -> None:
    r = client.post(
        "/v1/scan", content=store.unsw_csv.read_bytes(), headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == UNSW_NAME
    assert r.json()["summary"].get("Attack", 0) > 0


def test_scan_errors(client) -> None:
    r = client.post("/v1/scan", files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    assert r.status_code == 422 and "Traceback" not in r.text
    assert client.post("/v1/scan", json={"a": 1}).status_code == 415
    assert client.post("/v1/scan", files={"other": ("x.csv", b"1", "text/csv")}).status_code == 422
    r = client.post("/v1/scan", files={"file": ("x.pcap", b"\xd4\xc3\xb2\xa1garbage", "x")})
    assert r.status_code in (200, 422), r.text


def test_model_info_and_health(client) -> None:
    info = client.get("/v1/model").json()
    assert info["name"] == CIC_NAME and info["dataset"] == "cicids2017"
    assert info["request_fields"][0] == "flow_duration" and "metrics" in info
    assert client.get("/v1/model", params={"name": UNSW_NAME}).json()["task"] == "attack"
    assert client.get("/v1/model", params={"name": "x"}).status_code == 404
    assert len(client.get("/v1/models").json()["models"]) == 2
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["ready"] is True


def test_metrics_count_requests_and_verdicts(client) -> None:
    client.post("/reports/", json=cic_record())
    text = client.get("/metrics").text
    assert 'flowsentinel_http_requests_total{method="POST",route="/reports/",status="200"}' in text
    assert "flowsentinel_http_request_duration_seconds_bucket" in text
    assert "flowsentinel_flows_scored_total{model=" in text


def test_openapi_shows_the_model_fields(client) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/reports/"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[1]
    schema = doc["components"]["schemas"][ref]
    assert "flow_bytes_s" in schema["properties"] and schema["additionalProperties"] is False
    assert len(schema["required"]) == 32
    assert "/v1/scan" in doc["paths"] and client.get("/docs").status_code == 200


def test_page_and_static_files(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "http://" not in page.text.replace("http://www.w3.org", "")


@pytest.mark.parametrize("path", ["/reports/", "/classify"])
def test_seed_routes_read_streamed_bodies_and_label_their_metrics(client, path) -> None:
    body = json.dumps(cic_record() if path == "/reports/" else SEED_B_ATTACK).encode()
    headers = {"content-type": "application/json"}
    whole = client.post(path, content=body, headers=headers)
    streamed = client.post(path, content=iter([body]), headers=headers)
    assert whole.status_code == streamed.status_code == 200
    assert whole.content == streamed.content
    text = client.get("/metrics").text
    assert f'flowsentinel_http_requests_total{{method="POST",route="{path}",status="200"}}' in text
    bad = json.loads(body)
    bad.pop(next(iter(bad)))
    r = client.post(path, json=bad)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "missing"


def _asgi_post(app, path: str, pieces: list[bytes]) -> tuple[int, bytes]:
    """``POST path`` straight to the ASGI app, its body in one ``http.request`` per piece."""
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


@pytest.mark.parametrize("path", ["/reports/", "/classify"])
def test_seed_routes_join_a_body_sent_in_several_messages(client, path) -> None:
    body = json.dumps(cic_record() if path == "/reports/" else SEED_B_ATTACK).encode()
    whole = client.post(path, content=body, headers={"content-type": "application/json"})
    status, answer = _asgi_post(client.app, path, [body[:7], body[7:300], body[300:]])
    assert status == whole.status_code == 200
    assert answer == whole.content


def test_api_key(model_set, store) -> None:
    app = create_app(ServiceSettings(api_key="k1"), store.settings, models=model_set)
    with TestClient(app) as c:
        for headers, status in (
            ({}, 401),
            ({"X-API-Key": "k2"}, 401),
            ({"X-API-Key": "k1"}, 200),
            ({"Authorization": "Bearer k1"}, 200),
            ({"X-API-Key": "k2", "Authorization": "Bearer k1"}, 401),
            ({"X-API-Key": "", "Authorization": "Bearer k1"}, 200),
        ):
            assert c.post("/reports/", json=cic_record(), headers=headers).status_code == status
        assert c.get("/healthz").status_code == 200


def test_unexpected_errors_are_not_500(model_set, store, monkeypatch) -> None:
    app = create_app(ServiceSettings(), store.settings, models=model_set)
    served = model_set.get(CIC_NAME)

    def boom(parsed):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(served, "score", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/reports/", json=cic_record())
        assert r.status_code == 503 and "kaboom" not in r.text and "Traceback" not in r.text
        assert c.get("/healthz").status_code == 200


def test_compiled_form_equals_pipeline(model_set) -> None:
    served = model_set.get(CIC_NAME)
    compiled = served.detector.compiled
    rng = np.random.default_rng(1)
    X = rng.lognormal(5, 3, size=(300, len(served.detector.features)))
    X[::7, 3] = np.nan
    X[::11, 5] = np.inf
    frame = pd.DataFrame(X, columns=served.detector.features)
    np.testing.assert_allclose(
        compiled.proba(X), served.detector.pipeline.predict_proba(frame), rtol=0, atol=1e-12
    )
    with pytest.raises(CompileError):
        compile_pipeline(model_set.get(UNSW_NAME).detector.pipeline, [])


def test_compiled_form_with_categorical_columns(model_set) -> None:
    """UNSW-NB15 (one-hot service/state): the branch is replayed by memo, unknown values too."""
    from conftest import unsw_frame

    served = model_set.get(UNSW_NAME)
    d = served.detector
    compiled = d.compiled
    assert d.categorical
    frame = unsw_frame(rows=200, seed=21)
    frame.loc[::9, "service"] = "never-seen"
    frame.loc[::13, "state"] = "ZZZ"
    numeric = frame[served.body.numeric].to_numpy(dtype=float)
    cats = {c: frame[c].astype(str).tolist() for c in served.body.categorical}
    expected = d.pipeline.predict_proba(frame[d.features])
    np.testing.assert_array_equal(compiled.proba(numeric, cats), expected)
    np.testing.assert_array_equal(compiled.proba(numeric, cats), expected)  # from the memo
    one = compiled.proba(numeric[4:5], {c: v[4:5] for c, v in cats.items()})
    np.testing.assert_array_equal(one, expected[4:5])


def test_settings_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("FLOWSENTINEL_SERVE_MODELS", "a, models:/b@c")
    monkeypatch.setenv("FLOWSENTINEL_SERVE_API_KEY", "s3cret")
    config = ServiceSettings()
    assert config.models == ["a", "models:/b@c"] and config.key == "s3cret"
    assert "s3cret" not in repr(config)


def test_scan_limits_are_checked_while_decoding(model_set, store, tmp_path) -> None:
    import gzip

    import pyarrow.parquet as pq

    config = ServiceSettings(max_scan_flows=100, max_scan_bytes=1 << 20, max_scan_packets=1000)
    csv = store.cic_csv.read_bytes()  # 2,500 flows
    parquet = tmp_path / "flows.parquet"
    pq.write_table(read_file(store.cic_csv)[0].to_arrow(), parquet)
    with TestClient(create_app(config, store.settings, models=model_set)) as limited:

        def scan(name: str, data: bytes) -> tuple[int, str]:
            r = limited.post("/v1/scan", files={"file": (name, data, "application/octet-stream")})
            return r.status_code, r.json()["detail"]

        assert scan("flows.csv", csv) == (413, "flows.csv: more than 100 flows (the limit)")
        assert scan("flows.csv.gz", gzip.compress(csv))[0] == 413
        assert scan("flows.parquet", parquet.read_bytes())[0] == 413
        status, detail = scan("flows.csv.gz", gzip.compress(b"1" * (2 << 20)))
        assert status == 413 and "decompresses to more than 1,048,576 bytes" in detail
        head = b"".join(csv.splitlines(True)[:101])
        r = limited.post("/v1/scan", files={"file": ("flows.csv.gz", gzip.compress(head), "x")})
        assert r.status_code == 200 and r.json()["n_flows"] == 100


SLOWLORIS = SHARED / "pcaps" / "attack" / "slowloris-lab.pcap"


@pytest.mark.skipif(not SLOWLORIS.exists(), reason=f"{SLOWLORIS} absent (../shared not here)")
def test_a_damaged_capture_is_refused_unless_allowed(client) -> None:
    data = bytearray(SLOWLORIS.read_bytes())
    cut = slice(len(data) // 4, len(data) // 4 * 3)  # half the file overwritten
    data[cut] = b"\xff" * (cut.stop - cut.start)
    upload = {"file": ("damaged.pcap", bytes(data), "application/vnd.tcpdump.pcap")}
    r = client.post("/v1/scan", files=upload)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("damaged.pcap: ") and "could not be read" in detail
    assert "allow_damaged=true" in detail and "\n" not in detail
    r = client.post("/v1/scan", params={"allow_damaged": "true"}, files=upload)
    assert r.status_code == 200, r.text
    read = r.json()["capture"]
    assert 0 < read["packets"] < 3754 and read["file"]["damaged_ranges"]
