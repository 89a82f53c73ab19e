"""A set of captures is one capture: the flows of rotated slices are exactly those of the whole
capture (flows crossing slice boundaries, timeouts and FIN cuts included), whatever order the
slices are given in; empty, truncated and overlapping slices are reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from capture_sets import busy_scenario, same_flows, slice_records, write_pcap
from craft import ACK, FIN, SYN, C, Pkt, S, pcap_bytes

from flowsentinel.capture import MeterConfig, Quirks, extract_flows
from flowsentinel.capture.inputs import expand_inputs
from flowsentinel.capture.pcap import split_ranges
from flowsentinel.core.errors import InputError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "pcaps"
SEC = 1_000_000


def _slices(tmp_path: Path, data: bytes, cuts: list[int]) -> list[Path]:
    paths = []
    for k, part in enumerate(slice_records(data, cuts)):
        path = tmp_path / f"slice-{k:02d}.pcap"
        path.write_bytes(part)
        paths.append(path)
    return paths


@pytest.mark.parametrize("quirks", [Quirks(), Quirks.none()], ids=["cic", "corrected"])
def test_rotated_slices_give_the_flows_of_the_whole_capture(tmp_path: Path, quirks: Quirks) -> None:
    pkts = busy_scenario()
    whole = write_pcap(tmp_path / "whole.pcap", pkts)
    config = MeterConfig(quirks=quirks)
    expected, _ = extract_flows(whole, config=config)
    n = len(pkts)
    slices = _slices(tmp_path, whole.read_bytes(), [n * k // 8 for k in range(1, 8)])
    got, stats = extract_flows([*reversed(slices)], config=config)  # given out of order
    same_flows(got, expected)
    # metered one by one, the slices would cut flows: the set is not a concatenation
    alone = sum(len(extract_flows(p, config=config)[0]) for p in slices)
    assert alone > len(expected)
    assert stats.packets == n and len(stats.captures) == 8 and stats.overlaps == []
    assert [Path(p.source).name for p in stats.captures] == [p.name for p in slices]


def test_boundaries_at_a_flow_timeout_an_idle_gap_and_a_fin(tmp_path: Path) -> None:
    pkts = [
        Pkt(0, C, S, 1, 2, flags=SYN),
        Pkt(1 * SEC, S, C, 2, 1, flags=ACK, payload=10),
        Pkt(7 * SEC, C, S, 1, 2, flags=ACK, payload=5),  # slice 2 starts: after a 6 s idle gap
        Pkt(8 * SEC, S, C, 2, 1, flags=FIN | ACK),  # slice 3 starts with the FIN
        Pkt(9 * SEC, C, S, 1, 2, flags=ACK),
        Pkt(10 * SEC, C, S, 7, 8, proto=17, payload=1),
        Pkt(11 * SEC, S, C, 8, 7, proto=17, payload=2),
        Pkt(131 * SEC, S, C, 8, 7, proto=17, payload=3),  # slice 4 starts at the flow timeout
        Pkt(132 * SEC, C, S, 7, 8, proto=17, payload=4),
    ]
    data = pcap_bytes(pkts)
    expected, _ = extract_flows(data)
    got, _ = extract_flows(_slices(tmp_path, data, [2, 3, 7]))
    same_flows(got, expected)
    # the boundaries really split flows that one meter keeps whole
    alone = pd.concat([extract_flows(p)[0] for p in _slices(tmp_path, data, [2, 3, 7])])
    assert len(alone) != len(expected) or not alone.equals(expected)
    assert expected["Idle Max"].max() == 6 * SEC  # the idle period across the first boundary


def test_real_captures_cut_into_byte_ranges(tmp_path: Path) -> None:
    capture = SHARED / "attack" / "slowloris-lab.pcap"
    if not capture.exists():
        pytest.skip(f"{capture} is absent (../shared/datasets)")
    ranges = split_ranges(capture, 8, min_bytes=1)
    assert len(ranges) == 8
    data = capture.read_bytes()
    paths = []
    for k, (a, b) in enumerate(ranges):
        paths.append(tmp_path / f"s{k}.pcap")
        paths[-1].write_bytes(data[:24] + data[a:b])
    expected, _ = extract_flows(capture)
    got, stats = extract_flows(paths)
    same_flows(got, expected)
    assert stats.read.bytes_total == len(data) + 24 * 7


def test_empty_and_truncated_slices(tmp_path: Path) -> None:
    pkts = busy_scenario(seed=3, flows=120)
    data = write_pcap(tmp_path / "whole.pcap", pkts).read_bytes()
    slices = _slices(tmp_path, data, [40, 80])
    cut = slices[-1].read_bytes()[:-7]  # the last slice ends inside its last record
    slices[-1].write_bytes(cut)
    empty = tmp_path / "slice-empty.pcap"
    empty.write_bytes(b"")
    expected, whole_stats = extract_flows(data[:-7])
    got, stats = extract_flows([*slices, empty])
    same_flows(got, expected)
    assert stats.empty == [str(empty)]
    assert stats.read.truncated_records == whole_stats.read.truncated_records == 1
    assert stats.packets == len(pkts) - 1


def test_overlapping_captures_are_reported(tmp_path: Path) -> None:
    a = write_pcap(tmp_path / "a.pcap", [Pkt(0, C, S, 1, 2), Pkt(10 * SEC, C, S, 1, 2)])
    b = write_pcap(tmp_path / "b.pcap", [Pkt(4 * SEC, C, S, 3, 4), Pkt(5 * SEC, C, S, 3, 4)])
    _, stats = extract_flows([b, a])
    assert stats.overlaps == [(str(a), str(b), 6 * SEC)]


def test_folders_and_globs(tmp_path: Path) -> None:
    folder = tmp_path / "day"
    (folder / "sub").mkdir(parents=True)
    write_pcap(folder / "b.pcap", [Pkt(0, C, S, 1, 2)])
    write_pcap(folder / "sub" / "a.cap", [Pkt(0, C, S, 1, 2)])
    (folder / "notes.txt").write_text("not a capture")
    inputs = expand_inputs([str(folder)])
    assert inputs.captures == [str(folder / "b.pcap"), str(folder / "sub" / "a.cap")]
    assert inputs.ignored == [str(folder / "notes.txt")]
    assert expand_inputs([str(folder / "*.pcap")]).captures == [str(folder / "b.pcap")]
    url = f"file://{folder}/*.pcap"
    assert expand_inputs([url]).captures == [f"file://{folder}/b.pcap"]
    with pytest.raises(InputError, match="no capture matches"):
        expand_inputs([str(folder / "*.pcapng")])
    with pytest.raises(InputError, match="no such capture file"):
        expand_inputs([str(tmp_path / "missing.pcap")])


def test_cli_meters_a_folder_into_a_dataset(tmp_path: Path) -> None:
    pkts = busy_scenario(seed=11, flows=150)
    data = write_pcap(tmp_path / "whole.pcap", pkts).read_bytes()
    folder = tmp_path / "slices"
    folder.mkdir()
    for k, part in enumerate(slice_records(data, [50, 100, 200])):
        (folder / f"{k}.pcap").write_bytes(part)
    (folder / "README").write_text("rotated by tcpdump -C")
    out = tmp_path / "flows"
    res = subprocess.run(
        [sys.executable, "-m", "flowsentinel", "flows", str(folder), "-o", str(out), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["packets"] == len(pkts) and len(report["captures"]) == 4
    assert "not captures" in res.stderr
    got = pd.read_parquet(out)
    expected, _ = extract_flows(data)
    same_flows(got, expected)
