"""Suricata EVE records: every one validates against Suricata's own schema (with our single
``flowsentinel`` object added), and their values equal independent computations."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jsonschema
import pytest
from alertdata import SLOWLORIS, capture_records, eve_schema, incident

from flowsentinel.alerts import eve, families

VALIDATOR = jsonschema.Draft202012Validator(eve_schema())


def _valid(record: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(json.loads(eve.dumps(record))), key=str)
    assert not errors, [e.message for e in errors]


def test_suricata_time_matches_datetime() -> None:
    when = dt.datetime(2017, 7, 5, 9, 0, 1, 123456, tzinfo=dt.UTC)
    us = int(when.timestamp()) * 1_000_000 + when.microsecond
    assert eve.suricata_time(us) == "2017-07-05T09:00:01.123456+0000"
    assert eve.suricata_time(0) == "1970-01-01T00:00:00.000000+0000"
    assert eve.suricata_time_of("2017-07-05T11:00:01.5+02:00") == "2017-07-05T09:00:01.500000+0000"


@pytest.mark.parametrize("state", ["open", "update", "closed"])
def test_incident_alert_validates_and_counts(state: str) -> None:
    inc = incident(state=state)
    record = eve.incident_alert(inc)
    _valid(record)
    assert record["event_type"] == "alert"
    assert (record["src_ip"], record["dest_ip"], record["dest_port"], record["proto"]) == (
        "198.51.100.7", "192.0.2.10", 80, "TCP"
    )  # fmt: skip
    assert record["flow"] | {} == {
        "pkts_toserver": 1_000, "pkts_toclient": 800, "bytes_toserver": 60_000,
        "bytes_toclient": 1_200_000, "start": "2017-07-05T09:00:01.123456+0000",
        "end": "2017-07-05T09:01:01.500000+0000", "age": 60, "alerted": True,
        "state": {"open": "new", "update": "established", "closed": "closed"}[state],
    }  # fmt: skip
    expected_time = record["flow"]["start"] if state == "open" else record["flow"]["end"]
    assert record["timestamp"] == expected_time
    ours = record["flowsentinel"]
    assert ours["incident_id"] == "inc-7" and ours["state"] == state
    assert ours["top_sources"] == [
        {"ip": "198.51.100.7", "packets": 900},
        {"ip": "198.51.100.8", "packets": 40},
    ]
    assert (ours["confidence"], ours["novelty"], ours["sources"]) == (0.93, 0.05, 3)
    assert ours["evidence"][0]["feature"] == "Flow Duration"
    # only our object is outside the schema
    assert set(record) - set(VALIDATOR.schema["properties"]) == set()


def test_alert_object_only_schema_keys_and_stable_signature() -> None:
    record = eve.incident_alert(incident())
    allowed = set(eve_schema()["properties"]["alert"]["properties"])
    assert set(record["alert"]) <= allowed
    alert = record["alert"]
    assert alert["signature_id"] == families.signature_id("DoS", "DoS slowloris")
    assert 1_001_000 <= alert["signature_id"] < 1_002_000  # the DoS block
    assert (alert["gid"], alert["rev"], alert["severity"], alert["action"]) == (1, 1, 1, "allowed")
    assert alert["category"] == "Attempted Denial of Service"
    assert alert["source"] == {"ip": "198.51.100.7"} and alert["target"] == {"ip": "192.0.2.10"}
    # the schema is strict: a foreign key in ``alert`` or at the top level is rejected
    foreign = json.loads(eve.dumps(record))
    foreign["alert"]["confidence"] = 0.9
    assert not VALIDATOR.is_valid(foreign)
    top = json.loads(eve.dumps(record))
    top["confidence"] = 0.9
    assert not VALIDATOR.is_valid(top)


def test_incident_without_port_protocol_or_sources() -> None:
    inc = incident(target_port=None, protocol=None, top_sources=[], sources=0, confidence=0.3)
    record = eve.incident_alert(inc)
    _valid(record)
    assert {"dest_port", "proto", "src_ip"}.isdisjoint(record)
    assert "source" not in record["alert"] and record["alert"]["severity"] == 3


def test_signature_ids_differ_by_family_and_label() -> None:
    ids = {
        families.signature_id(f, lab)
        for f, lab in [("DoS", "DoS Hulk"), ("DoS", "DoS slowloris"), ("DDoS", "DoS Hulk"),
                       ("PortScan", "PortScan"), ("Unknown", "x")]
    }  # fmt: skip
    assert len(ids) == 5
    assert all(1_000_000 <= i <= 1_999_999 for i in ids)


@pytest.mark.integration
@pytest.mark.skipif(not SLOWLORIS.exists(), reason="../shared/datasets not here")
def test_flow_records_of_a_capture_validate_and_keep_counts() -> None:
    records = capture_records()
    events = [eve.flow_event(r, benign="BENIGN") for r in records]
    for event in events:
        _valid(event)
    assert len({e["flow_id"] for e in events}) == len(events)  # one id per flow
    for r, e in zip(records, events, strict=True):
        start = dt.datetime.fromisoformat(r["start"]).astimezone(dt.UTC)
        assert e["timestamp"] == start.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
        assert (e["src_ip"], e["src_port"], e["dest_ip"], e["dest_port"]) == (
            r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]
        )  # fmt: skip
        flow = e["flow"]
        assert flow["pkts_toserver"] == r["fwd_packets"]
        assert flow["pkts_toclient"] == r["bwd_packets"]
        assert flow["bytes_toserver"] == r["fwd_bytes"]
        assert flow["bytes_toclient"] == r["bwd_bytes"]
        end = start + dt.timedelta(seconds=r["duration_s"])
        assert flow["end"] == end.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
        assert flow["alerted"] == (r["label"] == "DoS")
        assert e["flowsentinel"]["label"] == r["label"] and e["proto"] == "TCP"


def test_flow_record_without_identity_uses_the_fallback_time() -> None:
    record = {"row": 0, "flow_id": None, "src_ip": None, "start": None, "duration_s": 2.0,
              "fwd_packets": 3, "label": "BENIGN", "probability": 0.9}  # fmt: skip
    event = eve.flow_event(record, fallback_us=1_499_245_201_000_000)
    _valid(event)
    assert event["timestamp"] == "2017-07-05T09:00:01.000000+0000"
    assert "start" not in event["flow"] and "src_ip" not in event
    assert event["flow"] == {"pkts_toserver": 3, "age": 2, "alerted": False}


def test_stats_record_validates() -> None:
    counters = eve.RunCounters(
        packets=3_754, decoded=3_750, skipped=4, bytes_read=400_000, flows=300,
        flows_by_protocol={"tcp": 290, "udp": 8, "icmp": 1, "gre": 1}, uptime_s=12.7,
    )  # fmt: skip
    counters.count_alerts([incident(), incident(state="update"), incident(family="PortScan")])
    record = eve.stats_event(counters, when_us=1_499_245_201_000_000)
    _valid(record)
    stats = record["stats"]
    assert stats["decoder"] == {"pkts": 3_754, "bytes": 400_000, "invalid": 4}
    assert stats["flow"] == {"tcp": 290, "udp": 8, "icmpv4": 1}  # gre: no Suricata counter
    assert stats["detect"] == {"alert": 2} and stats["uptime"] == 12
    assert record["flowsentinel"]["alerts_by_family"] == {"DoS": 1, "PortScan": 1}
    assert record["flowsentinel"]["packets_decoded"] == 3_750
