"""ECS documents: every field name is an ECS field (or ours under ``flowsentinel.*``, or a
key under ``labels``) and every value has the type ECS gives the field (the fixture, read from
elastic/ecs)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest
from alertdata import FIXTURES, SLOWLORIS, capture_records, incident

from flowsentinel.alerts import ecs, eve, outputs
from flowsentinel.alerts.eve import RunCounters

FIELDS: dict[str, str] = {
    name: spec["type"]
    for name, spec in json.loads((FIXTURES / "ecs-fields.json").read_text())["fields"].items()
}
OBSERVER = ecs.Observer(name="sensor-1")


def _leaves(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if name in FIELDS and FIELDS[name] == "object":
            yield name, value
        elif isinstance(value, dict):
            yield from _leaves(value, name + ".")
        else:
            yield name, value


def _is_date(value: Any) -> bool:
    return isinstance(value, str) and dt.datetime.fromisoformat(value).tzinfo is not None


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _type_ok(kind: str, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]  # every ECS field may be an array
    checks = {
        "keyword": lambda v: isinstance(v, str),
        "match_only_text": lambda v: isinstance(v, str),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, float | int) and not isinstance(v, bool),
        "date": _is_date,
        "ip": _is_ip,
        "object": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    }
    return bool(values) and all(checks[kind](v) for v in values)


def check_document(doc: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(doc))  # as a reader gets it
    for name, value in _leaves({k: v for k, v in doc.items() if k != "flowsentinel"}):
        assert name in FIELDS, f"{name} is not an ECS field of the fixture"
        assert _type_ok(FIELDS[name], value), f"{name}={value!r} is not an ECS {FIELDS[name]}"


@pytest.mark.parametrize("state", ["open", "update", "closed"])
def test_incident_document_fields_and_types(state: str) -> None:
    doc = ecs.incident_document(incident(state=state), OBSERVER)
    check_document(doc)
    event = doc["event"]
    assert event["kind"] == "alert"
    assert event["category"] == ["network", "intrusion_detection"]
    assert event["start"] == "2017-07-05T09:00:01.123456Z"
    assert event["end"] == "2017-07-05T09:01:01.500000Z"
    assert event["duration"] == 60_376_544_000  # ns: 1_499_245_261_500_000 - ..._201_123_456 µs
    assert doc["@timestamp"] == (event["start"] if state == "open" else event["end"])
    assert doc["source"] == {"ip": "198.51.100.7", "packets": 1_000, "bytes": 60_000}
    assert doc["destination"] == {
        "ip": "192.0.2.10", "port": 80, "packets": 800, "bytes": 1_200_000
    }  # fmt: skip
    assert doc["network"] == {"transport": "tcp", "packets": 1_800, "bytes": 1_260_000}
    assert doc["threat"]["technique"]["id"] == ["T1499"]
    # the same signature as the EVE alert of the incident
    assert doc["rule"]["id"] == str(eve.incident_alert(incident())["alert"]["signature_id"])
    assert doc["observer"]["name"] == "sensor-1"
    assert doc["flowsentinel"]["incident_id"] == "inc-7"


def test_family_without_technique_has_no_threat() -> None:
    doc = ecs.incident_document(incident(family="Infiltration", top_sources=[]), OBSERVER)
    check_document(doc)
    assert "threat" not in doc and "ip" not in doc.get("source", {})


def test_a_foreign_field_fails_the_check() -> None:
    doc = ecs.incident_document(incident(), OBSERVER)
    doc["event"]["confidence"] = 0.9
    with pytest.raises(AssertionError, match=r"event\.confidence"):
        check_document(doc)
    doc = ecs.incident_document(incident(), OBSERVER)
    doc["source"]["port"] = "80"
    with pytest.raises(AssertionError, match=r"source\.port"):
        check_document(doc)


@pytest.mark.integration
@pytest.mark.skipif(not SLOWLORIS.exists(), reason="../shared/datasets not here")
def test_flow_documents_of_a_capture() -> None:
    records = capture_records()
    for r in records:
        doc = ecs.flow_document(r, benign="BENIGN", observer=OBSERVER)
        check_document(doc)
        assert doc["source"]["packets"] + doc["destination"]["packets"] == (
            r["fwd_packets"] + r["bwd_packets"]
        )
        assert doc["network"]["bytes"] == r["fwd_bytes"] + r["bwd_bytes"]
        start = dt.datetime.fromisoformat(r["start"])
        assert dt.datetime.fromisoformat(doc["@timestamp"]) == start
        assert doc["event"]["duration"] == pytest.approx(r["duration_s"] * 1e9, abs=1_000)
        assert doc["event"]["kind"] == ("alert" if r["label"] == "DoS" else "event")


def test_stats_document() -> None:
    doc = outputs.render_stats(RunCounters(packets=10, flows=2), "ecs")
    check_document(doc)
    assert doc["event"]["kind"] == "metric" and doc["flowsentinel"]["packets"] == 10
