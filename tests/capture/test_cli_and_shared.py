"""The `flows` command, and every capture under ../shared/datasets/pcaps read without error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from craft import pcap_bytes, tcp_session
from damaged_captures import dpkt_packets, read, same
from typer.testing import CliRunner

from flowsentinel.capture import extract_flows
from flowsentinel.cli.main import app
from flowsentinel.datasets.reader import read_file

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT.parent / "shared" / "datasets" / "pcaps"
runner = CliRunner()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_flows_command_writes_a_file_the_reader_reads(tmp_path: Path, suffix: str) -> None:
    cap = tmp_path / "s.pcap"
    cap.write_bytes(pcap_bytes(tcp_session()))
    out = tmp_path / f"flows{suffix}"
    result = runner.invoke(app, ["flows", str(cap), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout[result.stdout.index("{") :])
    assert stats["flows"] == 2 and stats["packets"] == 9
    df, report = read_file(out, require_label=False)
    assert report.dataset == "cicids2017"
    assert report.dialect == ("trafficlabelling" if suffix == ".csv" else "parquet")
    assert report.unknown_columns == [] and report.missing_features == []
    assert df.height == 2
    assert df["Total Fwd Packets"].to_list() == [4, 1]


def test_flows_command_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"definitely not a capture")
    result = runner.invoke(app, ["flows", str(bad), "-o", str(tmp_path / "f.csv")])
    assert result.exit_code == 2
    assert "not a pcap or pcapng" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["flows", str(tmp_path / "missing.pcap"), "-o", "x.csv"])
    assert result.exit_code == 2 and "no such capture" in result.output
    result = runner.invoke(app, ["flows", str(bad), "-o", str(tmp_path / "f.txt")])
    assert result.exit_code == 2 and ".csv or .parquet" in result.output
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.integration
def test_every_shared_capture_is_read_without_error() -> None:
    """Every packet dpkt reads in every shared capture is read, with its time, and metered."""
    if not PCAPS.is_dir():
        pytest.skip(f"the shared data sets are not here ({PCAPS} is absent)")
    captures = sorted(p for p in PCAPS.rglob("*") if p.suffix in {".pcap", ".pcapng"})
    assert len(captures) >= 40
    total_flows = 0
    for cap in captures:
        got, counters = read(cap)
        assert same(got, dpkt_packets(cap.read_bytes())), cap.name
        assert counters.damaged_bytes == 0 and counters.bytes_total == cap.stat().st_size
        df, stats = extract_flows(cap)
        assert stats.packets == len(got) > 0, cap.name
        assert stats.read.corrupt_records == 0 and stats.read.truncated_records == 0, cap.name
        assert len(df) == stats.flows
        if "80211" in cap.name or "wpa" in cap.name or "wep" in cap.name:
            assert stats.skipped.get("unsupported_link_type", 0) == stats.packets, cap.name
        total_flows += len(df)
    assert total_flows > 1000
