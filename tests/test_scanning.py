"""Verdict records: every flow's identity, checked against independent computations (dpkt over a
real capture, hand-made frames), and the per-source summary."""

from __future__ import annotations

import collections
import datetime as dt
import json
import socket
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest

from flowsentinel.capture import iter_flow_batches
from flowsentinel.core import schema as sc
from flowsentinel.scanning import (
    IDENTITY,
    ScanSummary,
    flow_identity,
    flow_records,
    json_line,
)
from flowsentinel.scoring import Verdicts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SLOWLORIS = SHARED / "pcaps" / "attack" / "slowloris-lab.pcap"
ISO_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$"


def verdicts_for(n: int, attack: list[bool] | None = None) -> Verdicts:
    flags = np.asarray(attack if attack is not None else [False] * n)
    proba = np.where(flags[:, None], [[0.2, 0.8]], [[0.9, 0.1]])
    return Verdicts.from_proba(proba, ["BENIGN", "DoS"])


def _dpkt_directions(path: Path) -> dict[tuple[str, int, str, int], list[float]]:
    """Per TCP direction (src, sport, dst, dport): packets, CIC payload bytes (to the end of
    the frame, Ethernet padding included, as CICFlowMeter counts), first and last time."""
    out: dict[tuple[str, int, str, int], list[float]] = {}
    with path.open("rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            key = (socket.inet_ntoa(ip.src), tcp.sport, socket.inet_ntoa(ip.dst), tcp.dport)
            payload = len(buf) - 14 - ip.hl * 4 - tcp.off * 4
            seen = out.setdefault(key, [0, 0, ts, ts])
            seen[0] += 1
            seen[1] += payload
            seen[3] = ts
    return out


@pytest.mark.integration
@pytest.mark.skipif(not SLOWLORIS.exists(), reason="../shared/datasets not here")
def test_capture_records_match_dpkt() -> None:
    """A connection's packets and bytes each way, summed over its flows (CICFlowMeter splits a
    connection at FIN), its first packet's time and its last, equal dpkt's own count."""
    frame = pd.concat(list(iter_flow_batches(SLOWLORIS)), ignore_index=True)
    records = flow_records(verdicts_for(len(frame)), frame)
    assert len(records) == 300
    truth = _dpkt_directions(SLOWLORIS)
    ours: dict[tuple[str, int, str, int], list[float]] = collections.defaultdict(
        lambda: [0, 0, np.inf, -np.inf]
    )
    for r in records:
        assert r["protocol"] == "tcp"
        assert (
            r["flow_id"]
            == "-".join(str(r[k]) for k in ("src_ip", "dst_ip", "src_port", "dst_port")) + "-6"
        )
        there = (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"])
        back = (r["dst_ip"], r["dst_port"], r["src_ip"], r["src_port"])
        start = dt.datetime.fromisoformat(r["start"]).timestamp()
        ours[there][0] += r["fwd_packets"]
        ours[there][1] += r["fwd_bytes"]
        ours[back][0] += r["bwd_packets"]
        ours[back][1] += r["bwd_bytes"]
        for key in (there, back):
            ours[key][2] = min(ours[key][2], start)
            ours[key][3] = max(ours[key][3], start + r["duration_s"])
    assert set(ours) == set(truth)
    for key, (packets, size, first, last) in ours.items():
        reverse = (key[2], key[3], key[0], key[1])
        assert (packets, size) == tuple(truth[key][:2]), key
        assert first == pytest.approx(min(truth[key][2], truth[reverse][2]), abs=1e-6)
        assert last == pytest.approx(max(truth[key][3], truth[reverse][3]), abs=1e-6)
    assert all(pd.Series([r["start"] for r in records]).str.match(ISO_UTC))


def test_record_shape_and_order() -> None:
    frame = pd.DataFrame(
        {
            "Flow ID": ["10.0.0.1-10.0.0.2-4000-80-6", "fe80::1-fe80::2-53-5353-17"],
            "Source IP": ["10.0.0.1", "fe80::1"],
            "Source Port": [4000, 53],
            "Destination IP": ["10.0.0.2", "fe80::2"],
            "Destination Port": [80, 5353],
            "Protocol": [6, 17],
            "Timestamp": ["2017-07-05 09:00:01.123456", "2017-07-05 09:00:02"],
            "Flow Duration": [1_500_000, 7],
            "Total Fwd Packets": [3, 1],
            "Total Backward Packets": [2, 0],
            "Total Length of Fwd Packets": [100.0, 8.0],
            "Total Length of Bwd Packets": [40.0, 0.0],
            sc.LABEL: ["BENIGN", "DoS"],
        },
        index=[7, 7],  # a concatenated frame's repeated index must not matter
    )
    records = flow_records(verdicts_for(2, [False, True]), frame, first_row=10)
    assert list(records[0]) == [
        "row",
        *IDENTITY,
        "label",
        "probability",
        "attack_probability",
        "true_label",
    ]
    assert records[0] == {
        "row": 10, "flow_id": "10.0.0.1-10.0.0.2-4000-80-6", "src_ip": "10.0.0.1",
        "src_port": 4000, "dst_ip": "10.0.0.2", "dst_port": 80, "protocol": "tcp",
        "start": "2017-07-05T09:00:01.123456+00:00", "duration_s": 1.5, "fwd_packets": 3,
        "bwd_packets": 2, "fwd_bytes": 100, "bwd_bytes": 40, "label": "BENIGN",
        "probability": 0.9, "attack_probability": pytest.approx(0.1), "true_label": "BENIGN",
    }  # fmt: skip
    second = records[1]
    assert (second["row"], second["protocol"], second["duration_s"]) == (11, "udp", 7e-6)
    assert second["start"] == "2017-07-05T09:00:02.000000+00:00"
    assert second["label"] == "DoS" and second["attack_probability"] == pytest.approx(0.8)
    assert all(type(r["src_port"]) is int and type(r["fwd_bytes"]) is int for r in records)
    assert json.loads(json_line(records[1])) == records[1]


def test_flows_without_identifiers_have_null_identity() -> None:
    """A MachineLearningCVE file has only Destination Port: the rest is null, not invented."""
    frame = pd.DataFrame({"Destination Port": [443.0], "Flow Duration": [2_000_000.0]})
    (record,) = flow_records(verdicts_for(1), frame)
    assert record["dst_port"] == 443 and record["duration_s"] == 2.0
    for name in set(IDENTITY) - {"dst_port", "duration_s"}:
        assert record[name] is None, name
    assert "true_label" not in record


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-07-05 09:00:01.5", "2017-07-05T09:00:01.500000+00:00"),  # the meter's, UTC
        ("2017-07-05T09:00:01-03:00", "2017-07-05T12:00:01.000000+00:00"),
        ("2017-07-05T09:00:01Z", "2017-07-05T09:00:01.000000+00:00"),
        ("5/7/2017 8:42", None),  # CICFlowMeter's local time: no zone, no guess
        ("30/03/2020 08:35:49 PM", None),
        ("180", None),  # an encoded column
        ("", None),
    ],
)
def test_start_only_with_a_known_zone(text: str, expected: str | None) -> None:
    ident = flow_identity(pd.DataFrame({"Timestamp": [text]}), sc.CIC.name)
    got = ident["start"].iloc[0]
    assert (None if pd.isna(got) else got) == expected


def test_unsw_identity_from_its_own_columns() -> None:
    frame = pd.DataFrame(
        {
            "srcip": ["149.171.126.6", "175.45.176.1"],
            "sport": ["0x000b", "1043"],  # the raw files hold some ports in hex text
            "dstip": ["59.166.0.2", "149.171.126.16"],
            "dsport": ["53", "80"],
            "proto": ["udp", "tcp"],
            "stime": [1421927414, 1424262068],
            "dur": [0.001, 1.25],
            "spkts": [2, 10],
            "dpkts": [2, 8],
            "sbytes": [146, 1400],
            "dbytes": [178, 900],
        }
    )
    records = flow_records(verdicts_for(2), frame, dataset=sc.UNSW.name)
    want_start = [
        dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="microseconds")
        for t in (1421927414, 1424262068)
    ]
    assert [r["start"] for r in records] == want_start
    assert [r["src_port"] for r in records] == [None, 1043]
    assert [r["flow_id"] for r in records] == [None, None]
    assert [(r["fwd_bytes"], r["bwd_bytes"]) for r in records] == [(146, 178), (1400, 900)]
    assert [r["protocol"] for r in records] == ["udp", "tcp"]


def test_verdict_part_alone_and_optional_fields() -> None:
    """Without a frame (``/v1/predict``) a record is its verdict; the model's optional answers
    (novelty, reasons, ...) are carried when present, absent otherwise."""
    v = verdicts_for(2, [True, False])
    assert flow_records(v) == [
        {"label": "DoS", "probability": 0.8, "attack_probability": 0.8},
        {"label": "BENIGN", "probability": 0.9, "attack_probability": pytest.approx(0.1)},
    ]
    reasons = [
        [
            {"feature": "Flow Duration", "value": 3.0, "contribution": 0.4, "text": "long",
             "percentiles": {"BENIGN": 99.0}},
            {"feature": "proto", "value": "udp", "contribution": 0.1, "text": "proto = udp"},
        ],
        None,  # not explained
    ]  # fmt: skip
    v.novelty = np.array([1.93, np.inf])
    v.in_distribution = np.array([False, True])
    v.reasons = reasons
    first, second = flow_records(v)
    assert (first["novelty"], first["in_distribution"]) == (1.93, False)
    assert first["confidence"] == "low" and second["confidence"] == "high"
    assert first["reasons"] == reasons[0] and second["reasons"] is None
    assert json.loads(json_line(first))["reasons"] == reasons[0]
    assert type(second["in_distribution"]) is bool and second["novelty"] is None  # not JSON
    plain = flow_records(verdicts_for(1))[0]
    assert not set(plain) & {"novelty", "in_distribution", "confidence", "reasons"}


def test_summary_ranks_sources_by_flagged_flows() -> None:
    frame = pd.DataFrame(
        {
            "Source IP": ["10.0.0.9"] * 4 + ["10.0.0.5"] * 5 + [None],
            "Destination IP": ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.3",
                               "10.0.0.3", "10.0.0.3", "2001:db8::1", "10.0.0.4", "10.0.0.1"],
            "Destination Port": [80, 80, 22, 22, 53, 53, 53, 443, 53, 80],
        }
    )  # fmt: skip
    attack = [True, True, True, False, False, False, False, True, False, True]
    summary = ScanSummary()
    ident = flow_identity(frame, sc.CIC.name)
    summary.add(verdicts_for(10, attack).labels[:6], ident.iloc[:6].reset_index(drop=True))
    summary.add(verdicts_for(10, attack).labels[6:], ident.iloc[6:].reset_index(drop=True))
    # 10.0.0.9: 3 flagged (2 to .1:80, 1 to .2:22); 10.0.0.5: 1 flagged (to [2001:db8::1]:443)
    # although most of its flows go to 10.0.0.3:53; the flow without a source counts by verdict
    assert summary.sources() == [
        {"source": "10.0.0.9", "flows": 4, "flagged": 3, "top_destination": "10.0.0.1:80"},
        {"source": "10.0.0.5", "flows": 5, "flagged": 1, "top_destination": "[2001:db8::1]:443"},
    ]
    assert summary.flows == 10 and summary.by_label == {"BENIGN": 5, "DoS": 5}
    quiet = ScanSummary()
    quiet.add(verdicts_for(3).labels[:3], ident.iloc[4:7].reset_index(drop=True))
    assert quiet.sources()[0]["top_destination"] == "10.0.0.3:53"  # none flagged: most flows


def test_json_lines_encode_shared_reasons_once_and_write_the_same_lines() -> None:
    from flowsentinel.scanning import json_line, json_lines

    shared = [{"feature": "Flow IAT Min", "value": np.float32(3.5), "contribution": 0.25,
               "percentiles": {"BENIGN": 1.0}, "text": "Flow IAT Min = 3.5"}]  # fmt: skip
    records = [{"row": k, "label": "DoS", "reasons": shared if k % 2 else None,
                "novelty": np.float64(0.5)} for k in range(6)]  # fmt: skip
    assert json_lines(records) == "".join(json_line(r) for r in records)
    assert records[1]["reasons"] is shared  # the records themselves are left as they were


def _bursts_over_twenty_minutes() -> bytes:
    """Six bursts of 30 short web connections, 200 s apart, to three targets in turn (each
    target again after 600 s: a new incident), over twenty minutes."""
    from tests.capture.craft import ACK, FIN, SYN, Pkt, pcap_bytes

    pkts = []
    for burst in range(6):
        dst = f"192.0.2.{10 + burst % 3}"
        for k in range(30):
            t, src, sport = burst * 200_000_000 + k * 500_000, f"198.51.100.{k + 1}", 20_000 + k
            pkts += [
                Pkt(t, src, dst, sport, 80, flags=SYN),
                Pkt(t + 100, dst, src, 80, sport, flags=SYN | ACK),
                Pkt(t + 200, src, dst, sport, 80, flags=ACK, payload=120),
                Pkt(t + 300, src, dst, sport, 80, flags=FIN | ACK),
            ]
    return pcap_bytes(pkts)


def _incidents_grouped_after(capture: bytes, group_after: int) -> list[dict]:
    """A scan's incidents, every flow to port 80 flagged (a rule in place of a model)."""
    from flowsentinel.scanning import Aggregate, flagged_table

    aggregate = Aggregate(group_after=group_after)
    for frame in iter_flow_batches(capture, batch_packets=40, tap=aggregate.tap):
        identity = flow_identity(frame, sc.CIC.name)
        attack = (identity["dst_port"] == 80).to_numpy(dtype=bool, na_value=False)
        proba = np.column_stack([~attack, attack]).astype(float)
        verdicts = Verdicts.from_proba(proba, ["BENIGN", "DoS Hulk"])
        aggregate.add_flow_table(flagged_table(verdicts, identity, attack))
    waiting = sum(len(t) for t in aggregate._flows)
    aggregate.finish()
    return [*aggregate.incidents(), {"waiting_at_the_end": waiting}]


def test_a_long_scan_groups_its_older_flows_as_it_goes() -> None:
    """Grouping the flows older than the meter's lag while the capture runs (memory holds the
    recent ones) gives the incidents of grouping everything at the end."""
    capture = _bursts_over_twenty_minutes()
    at_end = _incidents_grouped_after(capture, group_after=10**9)
    as_it_goes = _incidents_grouped_after(capture, group_after=1)
    assert at_end[:-1] == as_it_goes[:-1]
    assert len(at_end) - 1 == 6 and {i["flows"] for i in at_end[:-1]} == {30}
    assert at_end[-1]["waiting_at_the_end"] == 180
    assert as_it_goes[-1]["waiting_at_the_end"] < 180  # the older ones were grouped
