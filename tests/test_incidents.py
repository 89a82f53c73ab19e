"""The column-wise build of a capture's incidents against the builder fed item by item.

``IncidentBuilder.build`` (offline scans: a capture, an upload) must give the incidents that
``add_windows``/``add_flows`` give when fed every window and flow in time order (what ``watch``
does as traffic comes). The reference below feeds them one item at a time, in that order, on
random mixes of flows and windows: several targets (one a multicast group), gaps longer and
shorter than the close gap, benign and flagged labels of several families, missing fields,
ties in start time, held windows, shared reasons.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from flowsentinel.capture.windows import WindowHit
from flowsentinel.incidents import CLOSE_GAP_US, IncidentBuilder, incident_dict

T0 = 1_500_000_000_000_000
TARGETS = ["192.0.2.10", "192.0.2.11", "2001:db8::7", "239.255.255.250"]
LABELS = ["BENIGN", "DoS Hulk", "DoS slowloris", "DDoS", "PortScan", "Web Attack – XSS"]
SOURCES = ["198.51.100.1", "198.51.100.2", "203.0.113.9", "", None]


def _iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


def _flow(rng: random.Random, k: int, start: int, reasons: list[Any]) -> dict[str, Any]:
    return {
        "flow_id": rng.choice([f"f-{k}", f"f-{k % 7}", None]),
        "src_ip": rng.choice(SOURCES),
        "dst_ip": rng.choice([*TARGETS, "", None]) if rng.random() < 0.1 else rng.choice(TARGETS),
        "dst_port": rng.choice([80, 80, 443, None]),
        "protocol": rng.choice(["tcp", "tcp", "udp", None]),
        "start": _iso(start) if rng.random() > 0.03 else None,
        "duration_s": rng.choice([0.0, 0.5, 30.0, 95.0, None]),
        "fwd_packets": rng.choice([1, 3, 40, None]),
        "bwd_packets": rng.choice([0, 2, None]),
        "fwd_bytes": rng.choice([60, 900, None]),
        "bwd_bytes": rng.choice([0, 1400, None]),
        "label": rng.choice(LABELS),
        "probability": rng.random(),
        "reasons": rng.choice([None, [], *reasons]),
    }


def _window(rng: random.Random, start: int, first: int | None) -> WindowHit:
    first = start + rng.randrange(0, 10_000_000) if first is None else first
    family = rng.choice(["DoS", "DDoS", "PortScan"])
    sources = [(rng.choice(SOURCES[:3]), rng.randrange(1, 500)) for _ in range(rng.randrange(4))]
    return WindowHit(
        start_us=start, first_us=first, last_us=first + rng.randrange(0, 10_000_000),
        target_ip=rng.choice(TARGETS), target_port=rng.choice([80, None]),
        protocol=rng.choice(["tcp", "udp", None]), family=family,
        label={"DoS": "SYN flood", "DDoS": "UDP flood", "PortScan": "port scan"}[family],
        packets_in=rng.randrange(1, 10_000), bytes_in=rng.randrange(60, 10**7),
        packets_out=rng.randrange(0, 100), bytes_out=rng.randrange(0, 10**5),
        sources=rng.randrange(1, 300), one_packet_sources=rng.randrange(0, 300),
        top_sources=sorted(dict(sources).items()),
        figures={"syn_1s": rng.randrange(100, 5000)}, score=rng.random() * 20,
        held=rng.random() < 0.3,
    )  # fmt: skip


def _scenario(seed: int) -> tuple[list[WindowHit], list[dict[str, Any]]]:
    rng = random.Random(seed)
    reasons = [[{"feature": "Flow IAT Min", "value": float(v)}] for v in range(3)]
    now, flows, hits = T0, [], []
    for k in range(rng.randrange(0, 250)):
        # bursts with pauses, some longer than the close gap
        now += rng.choice([0, 0, 1_000, 400_000, 5_000_000, CLOSE_GAP_US, CLOSE_GAP_US + 1, 10**9])
        flows.append(_flow(rng, k, now, reasons))
    starts = [_micros(r["start"]) for r in flows if r["start"]]
    for _ in range(rng.randrange(0, 12)):
        # half of them in the microsecond a flow starts (the window goes first)
        first = rng.choice(starts) if starts and rng.random() < 0.5 else None
        hits.append(_window(rng, T0 + 10_000_000 * rng.randrange(0, 60), first))
    return hits, flows


def _fed_in_time_order(
    hits: list[WindowHit], records: list[dict[str, Any]], min_flows: int
) -> list[dict[str, Any]]:
    """The reference: every window and flow fed one at a time, in time order (a window before
    the flows starting at or after its first packet; flows by start, then flow id)."""
    b = IncidentBuilder(min_flows=min_flows)
    pending = sorted(
        ((_micros(r["start"]), str(r.get("flow_id")), k) for k, r in enumerate(records)
         if r.get("start")),
    )  # fmt: skip
    f = 0
    for hit in sorted(hits, key=lambda h: (h.first_us, h.start_us, h.target_ip)):
        while f < len(pending) and pending[f][0] < hit.first_us:
            b.add_flows([records[pending[f][2]]], "BENIGN")
            f += 1
        b.add_windows([hit])
    for _, _, k in pending[f:]:
        b.add_flows([records[k]], "BENIGN")
    b.close_all()
    return [incident_dict(i) for i in b.incidents]


def _micros(start: str) -> int:
    return (datetime.fromisoformat(start) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )


def _built(hits: list[WindowHit], records: list[dict[str, Any]], min_flows: int) -> list[Any]:
    b = IncidentBuilder(min_flows=min_flows)
    b.build(hits, pd.DataFrame.from_records(records), "BENIGN")
    return [incident_dict(i) for i in b.incidents]


@pytest.mark.parametrize("seed", range(40))
def test_built_at_once_equals_fed_one_by_one(seed: int) -> None:
    hits, records = _scenario(seed)
    min_flows = 1 + seed % 3
    assert _built(hits, records, min_flows) == _fed_in_time_order(hits, records, min_flows)


def _built_in_steps(
    hits: list[WindowHit], records: list[dict[str, Any]], min_flows: int, seed: int
) -> list[dict[str, Any]]:
    """As a scan does on a long capture: items handed over as time passes, each call grouping
    the items before its bound (every later item starts after it), the rest handed back."""
    rng = random.Random(seed)
    times = [_micros(r["start"]) for r in records if r["start"]] + [h.first_us for h in hits]
    span = (min(times), max(times)) if times else (T0, T0)
    cuts = sorted(rng.randrange(span[0], span[1] + 1) for _ in range(rng.randrange(1, 8)))
    b = IncidentBuilder(min_flows=min_flows)
    left_hits: list[WindowHit] = []
    left_flows = pd.DataFrame()
    given_flows: set[int] = set()
    given_hits: set[int] = set()
    for cut in [*cuts, None]:
        # every item starting before the bound, and any item that ended a little after it
        # (a meter emits flows as they end: those that start later may come first)
        slack = rng.choice([0, 1, 20_000_000, 100_000_000])
        due = [k for k, r in enumerate(records) if k not in given_flows and (
            cut is None or not r["start"] or _micros(r["start"]) < cut
            or _micros(r["start"]) + 1e6 * (r["duration_s"] or 0) < cut + slack)]  # fmt: skip
        due_hits = [k for k, h in enumerate(hits) if k not in given_hits and (
            cut is None or h.first_us < cut or h.last_us < cut + slack)]  # fmt: skip
        given_flows.update(due)
        given_hits.update(due_hits)
        flows = pd.concat([left_flows, pd.DataFrame.from_records([records[k] for k in due])])
        new_hits = left_hits + [hits[k] for k in due_hits]
        left_hits, left_flows = b.build(new_hits, flows, "BENIGN", upto_us=cut)
    return [incident_dict(i) for i in b.incidents]


@pytest.mark.parametrize("seed", range(40))
def test_built_in_steps_equals_fed_one_by_one(seed: int) -> None:
    hits, records = _scenario(seed)
    min_flows = 1 + seed % 3
    assert _built_in_steps(hits, records, min_flows, seed) == _fed_in_time_order(
        hits, records, min_flows
    )


def test_the_scenarios_reach_the_cases_that_matter() -> None:
    """The random mixes open incidents of every detection kind, split a target's incidents at a
    long gap, and leave a multicast group without a flow-only incident."""
    seen = [i for seed in range(40) for i in _built(*_scenario(seed), 1 + seed % 3)]
    assert {i["detection"] for i in seen} == {"flow", "aggregate", "flow+aggregate"}
    per_target = Counter((i["target_ip"], i["family"]) for i in seen)
    assert max(per_target.values()) > 1
    assert not [i for i in seen if i["target_ip"] == TARGETS[3] and i["detection"] == "flow"]
    assert any(i["evidence"] for i in seen) and any(i["target_port"] is None for i in seen)


def test_nothing_flagged_builds_nothing() -> None:
    b = IncidentBuilder()
    b.build([], pd.DataFrame(), "BENIGN")
    benign = [{"label": "BENIGN", "dst_ip": TARGETS[0], "start": _iso(T0)}] * 5
    b.build([], pd.DataFrame.from_records(benign), "BENIGN")
    assert b.incidents == []


@pytest.mark.parametrize("probability, opened", [(0.55, 0), (0.79, 0), (0.8, 1), (0.97, 1)])
def test_the_flow_model_alone_opens_an_incident_only_when_sure(
    probability: float, opened: int
) -> None:
    """Three flagged flows to one target open an incident only when the model is sure of
    them (SURE); less sure ones stay verdict lines. Both builders agree."""
    records = [
        {"flow_id": f"f-{k}", "src_ip": "203.0.113.9", "dst_ip": TARGETS[0], "dst_port": 80,
         "protocol": "tcp", "start": _iso(T0 + k * 1_000_000), "duration_s": 0.1,
         "fwd_packets": 1, "bwd_packets": 1, "fwd_bytes": 0, "bwd_bytes": 0,
         "label": "DoS Hulk", "probability": probability, "reasons": None}
        for k in range(3)
    ]  # fmt: skip
    assert len(_built([], records, 3)) == len(_fed_in_time_order([], records, 3)) == opened
