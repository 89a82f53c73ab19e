"""Incidents and flow records for the alert tests: hand-made incidents, and the flow records of
a real capture (the meter over ``slowloris-lab.pcap``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsentinel.capture import iter_flow_batches
from flowsentinel.incidents import Direction, Incident
from flowsentinel.scanning import flow_records
from flowsentinel.scoring import Verdicts

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
SLOWLORIS = SHARED / "pcaps" / "attack" / "slowloris-lab.pcap"


def incident(**changes: Any) -> Incident:
    """A DoS incident on 192.0.2.10:80 (documentation addresses), changed as given."""
    values: dict[str, Any] = {
        "id": "inc-7",
        "family": "DoS",
        "label": "DoS slowloris",
        "target_ip": "192.0.2.10",
        "target_port": 80,
        "protocol": "tcp",
        "first_us": 1_499_245_201_123_456,  # 2017-07-05 09:00:01.123456 UTC
        "last_us": 1_499_245_261_500_000,
        "state": "open",
        "detection": "flow+aggregate",
        "sources": 3,
        "top_sources": [("198.51.100.7", 900), ("198.51.100.8", 40)],
        "spoofing_suspected": False,
        "to_target": Direction(packets=1_000, bytes=60_000),
        "from_target": Direction(packets=800, bytes=1_200_000),
        "flows": 40,
        "confidence": 0.93,
        "evidence": [{"feature": "Flow Duration", "value": 108.75, "text": "long flows"}],
        "novelty": 0.05,
    }
    values.update(changes)
    return Incident(**values)


@cache
def capture_records() -> list[dict[str, Any]]:
    """The 300 flow records of ``slowloris-lab.pcap``: the meter's flows, every third one
    flagged ``DoS`` (a stand-in verdict: the identity part is what these tests read)."""
    frame = pd.concat(list(iter_flow_batches(SLOWLORIS)), ignore_index=True)
    flagged = np.arange(len(frame)) % 3 == 0
    proba = np.where(flagged[:, None], [[0.2, 0.8]], [[0.9, 0.1]])
    verdicts = Verdicts.from_proba(proba, ["BENIGN", "DoS"])
    return flow_records(verdicts, frame)


def eve_schema() -> dict[str, Any]:
    """Suricata's EVE schema (the fixture), plus the one key of ours: ``flowsentinel``."""
    schema: dict[str, Any] = json.loads((FIXTURES / "suricata-eve-schema.json").read_text())
    schema["properties"]["flowsentinel"] = {"type": "object"}
    return schema
