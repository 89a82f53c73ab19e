"""demo → registered lab model → scan (real lab pcaps, real MLflow store, the console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dask_cluster import DaskCluster
from flowsentinel.capture import CaptureStats
from flowsentinel.capture.pcap import split_ranges
from flowsentinel.core.settings import Settings
from flowsentinel.scanning import Aggregate, flow_identity, iter_capture_frames, scan_frames
from flowsentinel.scoring import Detector

pytestmark = pytest.mark.slow


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWSENTINEL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "flowsentinel", *args],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo")
    home, out = root / "home", root / "out"
    res = _cli("demo", "--out", str(out), "--scale", "0.3", "--n-iter", "0", home=home)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "demonstration" in res.stderr
    return home, out


def test_demo_registers_a_model_and_scans_an_unseen_capture(demo: tuple[Path, Path]) -> None:
    home, out = demo
    for name in ("clean.parquet", "cleaning_report.json", "train.parquet", "test.parquet"):
        assert (out / "clean" / name).is_file(), name
    assert len(list((out / "clean").glob("*.png"))) == 3  # the seed's three heatmaps
    verdicts = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    truth = pd.read_csv(out / "lab-unseen" / "lab_flows.csv", usecols=["Label"])["Label"]
    assert len(verdicts) == len(truth)  # one verdict per flow
    assert {"label", "probability", "attack_probability", "src_ip", "start", "incident_id"} <= set(
        verdicts[0]
    )
    flagged = sum(v["label"] != "BENIGN" for v in verdicts)
    attacks = int((truth != "BENIGN").sum())
    assert abs(flagged - attacks) / attacks < 0.1  # the lab DoS families are recognised
    listed = json.loads(_cli("models", "list", "--json", home=home).stdout)
    assert any(r["name"] == "flowsentinel-lab-dos" and "champion" in r["aliases"] for r in listed)


def test_scan_uses_the_demo_model_by_default(demo: tuple[Path, Path], tmp_path: Path) -> None:
    home, out = demo
    pcap = out / "lab" / "lab.pcap"
    target = tmp_path / "v.jsonl"
    res = _cli("scan", str(pcap), "-o", str(target), "--json", home=home)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["model"]["name"] == "flowsentinel-lab-dos"
    lines = target.read_text().splitlines()
    assert len(lines) == summary["flows"] == sum(summary["by_label"].values())
    assert summary["capture"]["packets"] > 0
    # every line names the incident it belongs to; the summary counts them
    records = [json.loads(x) for x in lines]
    ids = {i["id"] for i in summary["incidents"]}
    member = [r["incident_id"] is not None for r in records]
    assert {r["incident_id"] for r in records} - {None} <= ids
    placed = summary["incident_flows"]
    assert placed["flows"] == sum(member)
    assert placed["flagged"] + placed["joined"] == placed["flows"]
    flagged = [r["label"] != "BENIGN" for r in records]
    assert placed["flagged_alone"] == sum(f and not m for f, m in zip(flagged, member, strict=True))
    truth = pd.read_csv(out / "lab" / "lab_flows.csv", usecols=["Label"])["Label"] != "BENIGN"
    attack = truth.to_numpy()
    in_incident = pd.Series(member).to_numpy()
    assert in_incident[attack].mean() > 0.95  # the attacks' flows sit in their incidents
    assert in_incident[~attack].mean() < 0.02  # benign flows seldom do
    # the same flows as a CSV file give the same verdicts
    res_csv = _cli("scan", str(out / "lab" / "lab_flows.csv"), "--json", home=home)
    assert res_csv.returncode == 0, res_csv.stderr
    assert json.loads(res_csv.stdout)["by_label"] == summary["by_label"]


def test_scan_errors_are_one_line(demo: tuple[Path, Path], tmp_path: Path) -> None:
    home, _ = demo
    missing = _cli("scan", str(tmp_path / "nope.pcap"), home=home)
    assert missing.returncode == 2 and "no such capture file" in missing.stderr
    no_model = _cli("scan", str(tmp_path / "nope.pcap"), home=tmp_path / "empty-home")
    assert no_model.returncode != 0 and "Traceback" not in no_model.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all" * 10)
    res = _cli("scan", str(junk), home=home)
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_scan_of_slices_on_a_cluster_equals_the_whole_capture(
    demo: tuple[Path, Path], tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    """Rotated slices scanned on a real scheduler with two workers: the verdicts and incidents
    of the whole capture scanned in-process (records compared without their row number, as
    the cluster emits flows partition by partition)."""
    home, out = demo
    pcap = out / "lab" / "lab.pcap"
    data = pcap.read_bytes()
    slices = []
    for k, (a, b) in enumerate(split_ranges(pcap, 4, min_bytes=1)):
        slices.append(tmp_path / f"slice-{k}.pcap")
        slices[-1].write_bytes(data[:24] + data[a:b])
    whole, parts = tmp_path / "whole.jsonl", tmp_path / "parts.jsonl"
    res = _cli("scan", str(pcap), "-o", str(whole), "--json", home=home)
    assert res.returncode == 0, res.stderr[-2000:]
    res_cluster = _cli(
        "scan", *map(str, slices[::-1]), "-o", str(parts), "--json", "--cluster",
        dask_cluster.address, home=home,
    )  # fmt: skip
    assert res_cluster.returncode == 0, res_cluster.stderr[-2000:]
    a, b = json.loads(res.stdout), json.loads(res_cluster.stdout)
    assert a["by_label"] == b["by_label"] and a["flows"] == b["flows"]
    assert a["incidents"] == b["incidents"]

    def records(path: Path) -> list[dict]:
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.startswith('{"row"')]
        for r in rows:
            del r["row"]
        return sorted(rows, key=lambda r: (r["flow_id"], r["start"] or "", r["duration_s"]))

    ra, rb = records(whole), records(parts)
    diffs = [
        (k, x.get(k), y.get(k)) for x, y in zip(ra, rb, strict=True) for k in x if x[k] != y[k]
    ]
    # novelty is a nearest-neighbour distance: two reference rows at a near-tie may swap with
    # the batch's floating-point blocking (every other field is identical)
    assert [d for d in diffs if d[0] != "novelty" or d[1] != pytest.approx(d[2], rel=1e-5)] == []


PCAPS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "pcaps"
SLOWLORIS_SERVER = ("192.168.56.102", 80)


def _scan_in_process(home: Path, capture: Path) -> tuple[Any, pd.Series, pd.DataFrame]:
    """The demo model's scan of ``capture`` as ``scan`` runs it: (aggregate, each flow's
    incident, the flows' identity)."""
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    det = Detector.load("models:/flowsentinel-lab-dos@champion", settings)
    aggregate = Aggregate(benign=det.classes[0])
    identity: list[pd.DataFrame] = []

    def frames() -> Iterator[pd.DataFrame]:  # the identities as scan_frames takes the frames
        for frame in iter_capture_frames(capture, CaptureStats(), aggregate):
            identity.append(flow_identity(frame, det.dataset))
            yield frame

    scan_frames(frames(), det, None, aggregate=aggregate)
    ids = pd.concat(identity, ignore_index=True) if identity else pd.DataFrame()
    placed, _ = aggregate.place()
    return aggregate, placed, ids


@pytest.mark.integration
@pytest.mark.skipif(not PCAPS.is_dir(), reason="the shared captures are not here")
def test_demo_model_in_context_on_the_real_captures(demo: tuple[Path, Path]) -> None:
    """The demo model with the aggregate detector: no benign capture opens an incident (so
    no benign flow belongs to one), and every slowloris flow to the attacked server belongs to
    the one incident on it, the teardown tails the flow model calls benign included."""
    home, _ = demo
    for capture in sorted(PCAPS.glob("benign/*.pcap*")):
        aggregate, members, _ = _scan_in_process(home, capture)
        assert aggregate.builder.incidents == [], capture.name
        assert members.isna().all(), capture.name
    aggregate, members, ids = _scan_in_process(home, PCAPS / "attack" / "slowloris-lab.pcap")
    host, port = SLOWLORIS_SERVER
    attack = ((ids["dst_ip"] == host) & (ids["dst_port"] == port)).to_numpy()
    assert attack.sum() == 300
    (incident,) = [i for i in aggregate.builder.incidents if i.target_ip == host]
    assert (members[attack] == incident.id).all()
    # and the incident covers them: every packet of the attack's flows, their whole span
    sent = int(ids.loc[attack, "fwd_packets"].sum()) + int(ids.loc[attack, "bwd_packets"].sum())
    assert incident.to_target.packets + incident.from_target.packets == sent
    assert incident.flows == 300 and incident.duration_s > 100
