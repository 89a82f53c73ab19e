"""The robustness corpus: seeded damaged captures (damaged_captures.py) read by our reader, checked
against what dpkt reads of the undamaged originals minus exactly the damaged records."""

from __future__ import annotations

import faulthandler
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from damaged_captures import (
    Case,
    corpus,
    crafted_packets,
    dpkt_packets,
    is_subsequence,
    layout,
    mutate,
    overwrite,
    pcap_capture,
    pcapng_capture,
    read,
    real_capture,
    same,
    shift_times,
)
from typer.testing import CliRunner

from flowsentinel.capture import CaptureStats, check_damage, iter_records
from flowsentinel.capture.pcap import MAX_WIRE
from flowsentinel.cli.main import app
from flowsentinel.core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT.parent / "shared" / "datasets" / "pcaps"
REAL = [
    PCAPS / "attack" / "slowloris-lab.pcap",
    PCAPS / "benign" / "ppa3-dns.pcap",
    PCAPS / "benign" / "ppa3-http_google.pcapng",
    PCAPS / "benign" / "ppa3-icmp_traceroute.pcapng",
    PCAPS / "attack" / "stopddos-amp.TCP.syn.optionallyACK.optionallysamePort.pcapng",
]
REAL_HERE = [p for p in REAL if p.is_file()]
SEED = 20_170_707
CASES = corpus(SEED, REAL_HERE)
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A reader that loops forever (inside numba, where signals wait) ends the run instead."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def test_the_corpus_is_big_and_covers_every_damage() -> None:
    assert len(CASES) >= 100
    names = " ".join(c.name for c in CASES)
    for damage in ("cut header", "cut record", "cut block", "huge length", "zero length",
                   "beyond_snap", "overreach", "trailer block length", "idb length", "idb option",
                   "block type 0x1234", "link type", "times jump", "times shuffle", "junk",
                   "pcap-be-ns", "pcapng-be-ns-2if"):  # fmt: skip
        assert damage in names, damage


KINDS = sorted({c.name.split(" / ")[0] for c in CASES})


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_captures_read_every_undamaged_packet(kind: str) -> None:
    """Every base capture (crafted in each format and byte order, and real ones) with one
    kind of damage: one test per kind keeps the corpus fast (the cases are tiny)."""
    cases = [c for c in CASES if c.name.split(" / ")[0] == kind]
    assert cases
    for case in cases:
        try:
            check_case(case)
        except AssertionError as exc:
            raise AssertionError(f"{case.name}: {exc}") from exc


def check_case(case: Case) -> None:
    if case.error:
        with pytest.raises(InputError, match=case.error):
            read(case.data)
        return
    got, counters = read(case.data)
    small, small_counters = read(case.data, chunk=997)  # every chunk boundary on the way
    assert small == got and small_counters == counters
    if case.span is None:
        assert same(got, case.expected)
    else:  # the packets outside the damage are all read; damaged ones may be, as they are
        assert is_subsequence(case.expected, got)
        assert len(got) <= len(case.expected) + case.extra
        assert all(case.span[0] <= a and a + n <= case.span[1] for a, n in counters.damaged_ranges)
    if case.ranges is not None:
        assert counters.damaged_ranges == case.ranges
        assert counters.ranges_total == len(case.ranges)
    assert counters.bytes_skipped == sum(n for _, n in counters.damaged_ranges)
    assert counters.unreadable_packets == case.unreadable
    for name, value in case.counters.items():
        assert getattr(counters, name) == value, name
    if case.data[:4] != b"\x0a\x0d\x0d\x0a":  # classic pcap: every byte is accounted for
        read_bytes = sum(16 + len(d) for _, d in got)
        assert 24 + read_bytes + counters.bytes_skipped == len(case.data) == counters.bytes_total


def test_random_damage_never_raises_anything_but_one_input_error() -> None:
    """300 seeded random edits of crafted and real captures: a result or one InputError, the
    same whatever the chunk size, and in classic pcap every byte read or counted as skipped."""
    rng = np.random.default_rng(SEED + 1)
    packets = crafted_packets(rng, 40)
    bases = [pcap_capture(packets, big=True, nano=True).data, pcapng_capture(packets).data]
    bases += [p.read_bytes() for p in REAL_HERE if p.stat().st_size < 100_000]
    outcomes = {"read": 0, "error": 0}
    for k in range(300):
        data = mutate(bases[k % len(bases)], rng)
        try:
            got, counters = read(data)
        except InputError as exc:
            assert "\n" not in str(exc)
            outcomes["error"] += 1
            continue
        outcomes["read"] += 1
        assert read(data, chunk=997) == (got, counters)
        assert counters.bytes_total == len(data) >= counters.damaged_bytes
        if data[:4] != b"\x0a\x0d\x0d\x0a":
            assert 24 + sum(16 + len(d) for _, d in got) + counters.bytes_skipped == len(data)
    assert outcomes["read"] > 200


def test_base_captures_agree_with_dpkt() -> None:
    """The corpus' own layout parser reads the undamaged captures exactly as dpkt does."""
    from damaged_captures import check_layout

    rng = np.random.default_rng(SEED)
    packets = crafted_packets(rng)
    for big in (False, True):
        check_layout(pcap_capture(packets, big=big, nano=True))
        check_layout(pcapng_capture(packets, big=big, tsresol=9))
    for path in REAL_HERE:
        check_layout(real_capture(path))
        got, counters = read(path.read_bytes())
        assert same(got, dpkt_packets(path.read_bytes())) and counters.bytes_skipped == 0


def test_the_resynchronisation_has_no_time_window() -> None:
    """A clock jump of decades next to a damaged record: the records after it are read."""
    rng = np.random.default_rng(1)
    cap = pcap_capture(crafted_packets(rng, 12))
    jumped = layout(shift_times(cap, rng, "jump").data, "jumped")
    rec = jumped.records[len(jumped.records) // 2]
    data = bytearray(jumped.data)
    data[rec.start + 8 : rec.start + 12] = (MAX_WIRE * 8).to_bytes(4, "little")
    got, counters = read(bytes(data))
    want = [(r.ts_us, r.data) for r in jumped.records if r is not rec]
    assert same(got, want)
    assert counters.damaged_ranges == [(rec.start, rec.length)]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["slowloris-lab.pcap", "ppa3-http_google.pcapng"])
def test_real_capture_with_years_added_to_its_second_half_reads_completely(name: str) -> None:
    path = next((p for p in REAL_HERE if p.name == name), None)
    if path is None:
        pytest.skip(f"the shared captures are not here ({PCAPS} is absent)")
    cap = real_capture(path)
    half = cap.packets[len(cap.packets) // 2].start
    data = bytearray(cap.data)
    o = cap.order()
    for rec in cap.packets[len(cap.packets) // 2 :]:
        if cap.fmt == "pcap":  # + 7 years to the seconds
            sec = int.from_bytes(data[rec.start : rec.start + 4], "big" if o == ">" else "little")
            data[rec.start : rec.start + 4] = (sec + 7 * 365 * 86400).to_bytes(
                4, "big" if o == ">" else "little"
            )
        else:  # + 7 years to the raw 64-bit time (microsecond resolution)
            hi = int.from_bytes(data[rec.start + 12 : rec.start + 16], "little")
            lo = int.from_bytes(data[rec.start + 16 : rec.start + 20], "little")
            raw = ((hi << 32) | lo) + 7 * 365 * 86400 * 1_000_000
            data[rec.start + 12 : rec.start + 20] = (raw >> 32).to_bytes(4, "little") + (
                raw & 0xFFFFFFFF
            ).to_bytes(4, "little")
    got, counters = read(bytes(data))
    want = dpkt_packets(bytes(data))
    assert half > cap.header and len(want) == len(cap.packets)
    assert same(got, want)
    assert counters.bytes_skipped == 0 and counters.corrupt_records == 0
    assert got[len(got) // 2][0] - got[len(got) // 2 - 1][0] > 6 * 365 * 86400 * 1_000_000


# ---------------------------------------------------------------------------------------------
# the damage threshold: check_damage and the commands


def _damaged(share: str) -> bytes:
    """A crafted capture with no damage, a little (one bad record length) or a lot (zeros)."""
    rng = np.random.default_rng(7)
    cap = pcap_capture(crafted_packets(rng, 200))
    if share == "none":
        return cap.data
    if share == "little":
        rec = cap.records[100]
        data = bytearray(cap.data)
        data[rec.start + 8 : rec.start + 12] = (0).to_bytes(4, "little")
        return bytes(data)
    case = overwrite(cap, rng, "zeros")
    data = bytearray(case.data)
    a = len(data) // 4
    data[a : a + len(data) // 2] = bytes(len(data) // 2)
    return bytes(data)


def test_check_damage_raises_above_the_share_and_warns_below() -> None:
    stats = CaptureStats(source="x.pcap")
    for _ in iter_records(_damaged("lot"), stats.read):
        pass
    assert stats.read.damaged_share > 0.4
    with pytest.raises(InputError, match=r"x.pcap: \d+\.\d % of the file could not be read"):
        check_damage(stats)
    line = check_damage(stats, allow_damaged=True)
    assert line is not None and "first at byte" in line
    assert check_damage(stats, max_share=0.9) == line
    clean = CaptureStats(source="ok.pcap")
    data = pcap_capture(crafted_packets(np.random.default_rng(3), 5)).data
    for _ in iter_records(data, clean.read):
        pass
    assert check_damage(clean) is None


def test_flows_exits_non_zero_on_a_badly_damaged_capture(tmp_path: Path) -> None:
    cap = tmp_path / "capture.pcap"
    cap.write_bytes(_damaged("lot"))
    out = tmp_path / "flows.csv"
    res = runner.invoke(app, ["flows", str(cap), "-o", str(out), "--json"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "% of the file could not be read" in errors[0] and "--allow-damaged" in errors[0]
    assert not out.exists()
    stats = json.loads(res.stdout)
    assert stats["file"]["damaged_ranges"] and stats["file"]["damaged_share"] > 0.4
    ok = runner.invoke(app, ["flows", str(cap), "-o", str(out), "--json", "--allow-damaged"])
    assert ok.exit_code == 0 and out.exists()
    assert "warning:" in ok.stderr and "could not be read" in ok.stderr


def test_flows_reports_a_little_damage_and_goes_on(tmp_path: Path) -> None:
    cap = tmp_path / "capture.pcap"
    data = _damaged("little")
    cap.write_bytes(data)
    got, counters = read(data)
    res = runner.invoke(app, ["flows", str(cap), "-o", str(tmp_path / "f.parquet"), "--json"])
    assert res.exit_code == 0
    stats = json.loads(res.stdout)
    assert stats["packets"] == len(got) == 199
    assert stats["file"]["damaged_ranges"] == [list(r) for r in counters.damaged_ranges]
    assert f"damaged bytes {counters.damaged_ranges[0][0]:,}" in res.stderr
    assert "warning:" in res.stderr


def test_flows_on_a_cut_header_is_one_line(tmp_path: Path) -> None:
    cap = tmp_path / "cut.pcap"
    cap.write_bytes(pcap_capture(crafted_packets(np.random.default_rng(2), 3)).data[:20])
    res = runner.invoke(app, ["flows", str(cap), "-o", str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().splitlines() == [
        "error: " + f"{cap}: the capture is cut inside its 24-byte file header (20 bytes)"
    ]


@pytest.fixture
def tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """scan with a real (tiny) decision tree of the zoo, trained here on two features of crafted
    flows."""
    from flowsentinel.capture import extract_flows
    from flowsentinel.models.zoo import SPECS, build_pipeline
    from flowsentinel.scoring import Detector

    features = ["Flow Duration", "Total Fwd Packets"]
    flows, _ = extract_flows(_damaged("none"))
    labels = np.arange(len(flows)) % 2
    tree = build_pipeline(SPECS["dt"], features, [], seed=0, undersample=False)
    tree.fit(flows[features], labels)
    det = Detector(
        pipeline=tree, uri="tiny", name="tiny", version=None, dataset="cicids2017",
        task="binary", classes=["BENIGN", "DoS"], features=features, categorical=[],
    )  # fmt: skip
    monkeypatch.setattr(Detector, "load", classmethod(lambda cls, model=None, settings=None: det))


@pytest.mark.usefixtures("tiny_model")
def test_scan_exits_non_zero_on_a_badly_damaged_capture(tmp_path: Path) -> None:
    cap = tmp_path / "capture.pcap"
    cap.write_bytes(_damaged("lot"))
    verdicts = tmp_path / "v.jsonl"
    res = runner.invoke(app, ["scan", str(cap), "-o", str(verdicts), "--json"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--allow-damaged" in errors[0]
    assert not verdicts.exists()
    summary = json.loads(res.stdout)
    assert summary["capture"]["file"]["damaged_ranges"] and summary["flows"] > 0
    ok = runner.invoke(app, ["scan", str(cap), "-o", str(verdicts), "--allow-damaged"])
    assert ok.exit_code == 0, ok.output
    assert len(verdicts.read_text().splitlines()) > 0 and "warning:" in ok.stderr
