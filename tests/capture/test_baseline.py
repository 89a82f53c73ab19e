"""Thresholds learnt from a network's own benign traffic (``flowsentinel baseline``): a busy
syslog collector, which receives one-way UDP from many hosts above the generic floors, is a
flood to the default thresholds and normal traffic to the learnt ones; a real flood to it is
still one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.capture.craft import Pkt, pcap_bytes
from typer.testing import CliRunner

from flowsentinel.capture import CaptureStats, iter_flow_arrays
from flowsentinel.capture.windows import DEFAULT_THRESHOLDS, Thresholds, thresholds_from_json
from flowsentinel.cli.main import app
from flowsentinel.core.errors import InputError
from flowsentinel.scanning import Aggregate

COLLECTOR = "10.0.0.9"


def syslog_day(seconds: int = 10, rate: int = 700, start_s: int = 0) -> list[Pkt]:
    """``rate`` one-way syslog datagrams per second from 40 hosts to the collector."""
    pkts = []
    for k in range(seconds * rate):
        t = start_s * 1_000_000 + k * 1_000_000 // rate
        host = k % 40
        pkts.append(Pkt(t, f"10.0.1.{host + 1}", COLLECTOR, 40000 + host, 514, proto=17,
                        payload=120))  # fmt: skip
    return pkts


def flood(start_s: int, n: int = 8_000) -> list[Pkt]:
    """A UDP flood of ``n`` datagrams in one second from 500 sources to the collector."""
    t0 = start_s * 1_000_000
    return [
        Pkt(t0 + k * 1_000_000 // n, f"198.18.{k % 500 // 250}.{k % 250 + 1}", COLLECTOR,
            50000 + k % 500, 514, proto=17, payload=64)
        for k in range(n)
    ]  # fmt: skip


def incidents(data: bytes, thresholds: Thresholds | None) -> list[dict]:
    aggregate = Aggregate(thresholds)
    for _ in iter_flow_arrays(data, stats=CaptureStats(), tap=aggregate.tap):
        pass
    aggregate.finish()
    return aggregate.incidents()


def test_a_busy_collector_is_normal_once_learnt(tmp_path: Path) -> None:
    day1 = tmp_path / "day1.pcap"
    day1.write_bytes(pcap_bytes(syslog_day()))
    assert [i["label"] for i in incidents(day1.read_bytes(), None)] == ["UDP flood"]
    out = tmp_path / "thresholds.json"
    result = CliRunner().invoke(app, ["baseline", str(day1), "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    # 700 datagrams in every second: the learnt UDP threshold is twice that, above the floor
    assert doc["figures"]["udp_1s"]["benign_quantile"] == pytest.approx(700, abs=1)
    assert doc["thresholds"]["udp_1s"] == 1400 > DEFAULT_THRESHOLDS.udp_1s
    assert doc["thresholds"]["icmp_1s"] == DEFAULT_THRESHOLDS.icmp_1s  # no ICMP: the floor
    learnt = thresholds_from_json(out)
    day2 = pcap_bytes(syslog_day(start_s=3600))
    assert incidents(day2, learnt) == []
    attacked = pcap_bytes(syslog_day(start_s=3600) + flood(start_s=3603))
    found = incidents(attacked, learnt)
    assert [(i["target_ip"], i["family"]) for i in found] == [(COLLECTOR, "DDoS")]


def test_a_bad_thresholds_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"thresholds": {"udp_1s": -3}}')
    with pytest.raises(InputError, match="must be a positive integer"):
        thresholds_from_json(bad)
    bad.write_text('{"thresholds": {"udp_per_hour": 3}}')
    with pytest.raises(InputError, match="unknown threshold 'udp_per_hour'"):
        thresholds_from_json(bad)
    bad.write_text("not json")
    with pytest.raises(InputError, match="not a thresholds file"):
        thresholds_from_json(bad)
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "x.pcap"), "--thresholds", str(bad)])
    assert result.exit_code != 0
