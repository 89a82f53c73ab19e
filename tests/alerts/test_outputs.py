"""The outputs of a run: flow records rewritten for ``scan -o`` / ``watch``, records teed into
sinks, alerts counted by family (and in Prometheus), and the CLI's one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
from alertdata import eve_schema, incident

from flowsentinel.alerts import outputs
from flowsentinel.scanning import json_line
from flowsentinel.service.metrics import AlertMetrics

RECORDS = [
    {"row": 0, "flow_id": "10.0.0.1-10.0.0.2-4000-80-6", "src_ip": "10.0.0.1", "src_port": 4000,
     "dst_ip": "10.0.0.2", "dst_port": 80, "protocol": "tcp",
     "start": "2017-07-05T09:00:01.123456+00:00", "duration_s": 1.5, "fwd_packets": 3,
     "bwd_packets": 2, "fwd_bytes": 100, "bwd_bytes": 40, "label": "DoS", "probability": 0.8,
     "attack_probability": 0.8},
    {"row": 1, "flow_id": None, "src_ip": "10.0.0.3", "src_port": 53, "dst_ip": "10.0.0.2",
     "dst_port": 5353, "protocol": "udp", "start": "2017-07-05T09:00:02.000000+00:00",
     "duration_s": 0.0, "fwd_packets": 1, "bwd_packets": 0, "fwd_bytes": 8, "bwd_bytes": 0,
     "label": "BENIGN", "probability": 0.9, "attack_probability": 0.1},
]  # fmt: skip
TEXT = "".join(json_line(r) for r in RECORDS)


def test_jsonl_passes_through() -> None:
    out = io.StringIO()
    writer = outputs.FlowWriter(out, "jsonl")
    writer.write(TEXT)
    assert out.getvalue() == TEXT


def test_eve_lines_validate_and_tee_into_a_file_sink(tmp_path: Path) -> None:
    metrics = AlertMetrics()
    sinks = outputs.AlertOutputs.from_specs(
        [f"file:{tmp_path}/alerts.json"], "eve", tmp_path / "spool", metrics=metrics
    ).start()
    out = io.StringIO()
    writer = outputs.FlowWriter(out, "eve", outputs=sinks)
    writer.write(TEXT)
    sinks.incident(incident())
    sinks.incident(incident(state="closed"))  # the same incident: counted once
    done = sinks.close()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    validator = jsonschema.Draft202012Validator(eve_schema())
    assert [x["event_type"] for x in lines] == ["flow", "flow"]
    assert all(validator.is_valid(x) for x in lines)
    assert lines[0]["flow"]["pkts_toserver"] == 3 and lines[0]["proto"] == "TCP"
    written = [json.loads(x) for x in (tmp_path / "alerts.json").read_text().splitlines()]
    assert [x["event_type"] for x in written] == ["flow", "flow", "alert", "alert"]
    assert all(validator.is_valid(x) for x in written)
    assert done == {
        f"file:{tmp_path}/alerts.json": {"delivered": 4, "retried": 0, "spooled": 0, "replayed": 0}
    }
    assert sinks.alerts_by_family == {"DoS": 2}  # the flagged flow and the incident
    text = metrics.exposition()[0].decode()
    assert 'flowsentinel_alerts_total{family="DoS"} 2.0' in text


def test_ecs_lines() -> None:
    out = io.StringIO()
    outputs.FlowWriter(out, "ecs").write(TEXT)
    docs = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [d["event"]["kind"] for d in docs] == ["alert", "event"]
    assert docs[1]["network"] == {"transport": "udp", "packets": 1, "bytes": 8}


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWSENTINEL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "flowsentinel", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_cli_one_line_errors(tmp_path: Path) -> None:
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"\xd4\xc3\xb2\xa1")
    bad_format = _cli("scan", str(capture), "--format", "xml", home=tmp_path)
    bad_sink = _cli("watch", "-i", "lo", "--alert-to", "kafka://x", home=tmp_path)
    for res, option in ((bad_format, "--format 'xml'"), (bad_sink, "--alert-to 'kafka://x'")):
        assert res.returncode == 2
        assert res.stderr.strip().count("\n") == 0 and option in res.stderr
        assert "Traceback" not in res.stderr
