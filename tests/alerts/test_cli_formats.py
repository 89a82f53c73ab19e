"""``scan -o FILE --format eve|ecs`` through the console script, with the demo's registered
model over its unseen lab capture: one record per flow, each valid (EVE against Suricata's
schema, ECS against the field definitions), the same flows as the ``jsonl`` records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from alertdata import eve_schema
from test_ecs import check_document

pytestmark = pytest.mark.slow


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWSENTINEL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "flowsentinel", *args],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip


def test_scan_formats(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    res = _cli("demo", "--out", str(out), "--scale", "0.3", "--n-iter", "0", home=home)
    assert res.returncode == 0, res.stderr[-3000:]
    pcap = out / "lab-unseen" / "lab.pcap"
    lines = {}
    for fmt in ("jsonl", "eve", "ecs"):
        target = tmp_path / f"flows.{fmt}"
        res = _cli("scan", str(pcap), "-o", str(target), "--format", fmt, home=home)
        assert res.returncode == 0, res.stderr[-3000:]
        lines[fmt] = [json.loads(x) for x in target.read_text().splitlines()]
    plain, eve_all, ecs_all = lines["jsonl"], lines["eve"], lines["ecs"]
    # the flows, in the same order, then one alert per incident of the capture
    eve = [e for e in eve_all if e["event_type"] == "flow"]
    ecs = ecs_all[: len(eve)]
    assert len(plain) == len(eve) == len(ecs) > 1_000
    incidents = [e for e in eve_all[len(eve) :] if e["event_type"] == "alert"]
    assert len(incidents) == len(eve_all) - len(eve) == len(ecs_all) - len(ecs)
    validator = jsonschema.Draft202012Validator(eve_schema())
    for r, e, d in zip(plain, eve, ecs, strict=True):
        assert validator.is_valid(e)
        check_document(d)
        assert (e["src_ip"], e["flow"]["pkts_toserver"]) == (r["src_ip"], r["fwd_packets"])
        assert e["flow"]["alerted"] == (r["label"] != "BENIGN")
        assert d["destination"]["bytes"] == r["bwd_bytes"]
        assert d["flowsentinel"]["label"] == r["label"] == e["flowsentinel"]["label"]
        # the incident each flow belongs to, in every format
        assert (
            d["flowsentinel"]["incident_id"] == r["incident_id"] == e["flowsentinel"]["incident_id"]
        )
