"""The built-in lab capture: deterministic, labelled, both classes well represented."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flowsentinel.capture import extract_flows
from flowsentinel.cli.main import app
from flowsentinel.datasets.lab import LABELS, build_lab
from flowsentinel.datasets.reader import read_file


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, _ = build_lab(seed=3, scale=0.1)
    b, _ = build_lab(seed=3, scale=0.1)
    c, _ = build_lab(seed=4, scale=0.1)
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    assert a != c


@pytest.mark.slow
def test_the_bytes_do_not_depend_on_the_process() -> None:
    """Nothing hash-ordered reaches the capture: two interpreters with different hash seeds."""
    code = (
        "import hashlib; from flowsentinel.datasets.lab import build_lab; "
        "print(hashlib.sha256(build_lab(seed=5, scale=0.05)[0]).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(k)},
        ).stdout
        for k in (1, 2)
    }
    assert len(digests) == 1


def test_lab_command_writes_a_labelled_capture(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    result = CliRunner().invoke(app, ["lab", "--out", str(out), "--seed", "7", "--scale", "0.3"])
    assert result.exit_code == 0, result.output
    df, report = read_file(out / "lab_flows.csv")
    assert report.dialect == "trafficlabelling" and report.unknown_columns == []
    assert set(df["Label"].unique()) == set(LABELS)
    # every label is grouped into the DoS family by the data layer, except BENIGN
    families = dict(df.group_by("Label").agg(pl.col("Family").first()).iter_rows())
    assert families == {label: ("BENIGN" if label == "BENIGN" else "DoS") for label in LABELS}
    share_dos = (df["Family"] == "DoS").mean()
    assert 0.3 <= share_dos <= 0.7
    # the flows file is exactly the meter's output for lab.pcap, plus Label; the only packets
    # not metered are non-first IP fragments (the fragmented floods), counted, never hidden
    flows, stats = extract_flows(out / "lab.pcap")
    assert len(flows) == df.height and set(stats.problems) == {"ip_fragment"}
    assert flows["Flow ID"].tolist() == df["Flow ID"].to_list()
    labels = pl.read_csv(out / "labels.csv")
    assert labels.columns[-2:] == ["Kind", "Label"] and labels.height > 0.3 * df.height
    # a 5-tuple may carry several sessions (pings, DHCP broadcasts), never two labels
    tuples = ["Source IP", "Source Port", "Destination IP", "Destination Port", "Protocol"]
    assert labels.group_by(tuples).agg(pl.col("Label").n_unique())["Label"].max() == 1


@pytest.mark.slow
def test_default_lab_is_large_enough_and_fast() -> None:
    started = time.perf_counter()
    data, sessions = build_lab(seed=42)
    seconds = time.perf_counter() - started
    flows, stats = extract_flows(data)
    assert 6000 <= len(flows) <= 12_000
    assert 150_000 <= stats.packets <= 300_000 and len(data) < 160e6
    attacks = {s.label for s in sessions} - {"BENIGN"}
    assert attacks == set(LABELS) - {"BENIGN"}
    assert seconds < 60  # about 8 s on a busy 2-core machine
