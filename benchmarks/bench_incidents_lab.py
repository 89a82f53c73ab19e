"""Benchmark: incidents on the built-in lab — every attack packet inside an incident of its
family, no incident on benign traffic.

The truth is packet-level: the lab capture (``--seed``, ``--scale``) is metered with the
corrected definitions (single-packet flows kept, so every packet of a spoofed flood is in a
flow) and each flow takes the label of its crafted session (``datasets.lab.labeller_for``). The
scan is the product's: ``scan`` of the capture with a model trained on a lab of another seed
(``--train-seed``; or ``--model``), its aggregate detector and incident builder.

An attack flow is inside an incident when an incident of the DoS family (DoS or DDoS) has the
flow's destination as its target and its span, widened by ``--slack`` seconds, overlaps the
flow. An incident is a false one when no attack packet is inside it.

    FLOWSENTINEL_HOME=/tmp/bench-home .venv/bin/python benchmarks/bench_incidents_lab.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from flowsentinel.capture import CaptureStats, MeterConfig, Quirks, write_flows
from flowsentinel.datasets.lab import build_lab, labeller_for, write_lab
from flowsentinel.scanning import Aggregate, iter_capture_frames, scan_frames
from flowsentinel.scoring import Detector


def truth_flows(pcap: Path, sessions: list, work: Path) -> pd.DataFrame:
    """Every flow of the capture (single packets included) with its session's label."""
    out = work / "truth.parquet"
    config = MeterConfig(quirks=Quirks.none())
    write_flows(pcap, out, config=config, labeller=labeller_for(sessions))
    df = pd.read_parquet(out)
    start = pd.to_datetime(df["Timestamp"], utc=True).dt.as_unit("us").astype("int64")
    return pd.DataFrame({
        "dst": df["Destination IP"].astype(str),
        "start": start,
        "end": start + df["Flow Duration"].astype("int64"),
        "packets": df["Total Fwd Packets"] + df["Total Backward Packets"],
        "attack": df["Label"] != "BENIGN",
        "label": df["Label"],
    })  # fmt: skip


def train_model(seed: int, scale: float, work: Path) -> str:
    """A rf DoS model on a lab of another seed, registered in FLOWSENTINEL_HOME."""
    lab = work / "train-lab"
    write_lab(lab, seed=seed, scale=scale)
    cmd = [sys.executable, "-m", "flowsentinel", "train", str(lab / "lab_flows.csv"),
           "--dataset", "cicids2017", "--task", "dos", "--models", "rf", "--n-iter", "0",
           "--json"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return f"models:/{json.loads(res.stdout)['champion']['registered_model']}@champion"


def incidents_of(pcap: Path, model: str) -> tuple[list[dict], int]:
    with contextlib.redirect_stdout(sys.stderr):
        det = Detector.load(model)
    aggregate = Aggregate(benign=det.classes[0])
    frames = iter_capture_frames(pcap, CaptureStats(), aggregate)
    summary = scan_frames(frames, det, None, aggregate=aggregate)
    return aggregate.incidents(), summary.flows


def coverage(truth: pd.DataFrame, incidents: list[dict], slack_s: float) -> dict[str, object]:
    inside = np.zeros(len(truth), bool)
    false_incidents = []
    slack = int(slack_s * 1e6)
    for inc in incidents:
        if inc["family"] not in ("DoS", "DDoS"):
            continue
        hit = (
            (truth["dst"].to_numpy() == inc["target_ip"])
            & (truth["end"].to_numpy() >= inc["first_us"] - slack)
            & (truth["start"].to_numpy() <= inc["last_us"] + slack)
        )
        if not (hit & truth["attack"].to_numpy()).any():
            false_incidents.append({k: inc[k] for k in ("target_ip", "label", "detection")})
        inside |= hit
    attack = truth["attack"].to_numpy()
    packets = truth["packets"].to_numpy()
    by_label = (
        truth[attack]
        .assign(inside=inside[attack], p=packets[attack])
        .groupby("label")
        .apply(lambda g: round(float(g.loc[g["inside"], "p"].sum() / g["p"].sum()), 4))
        .to_dict()
    )
    return {
        "attack_packets": int(packets[attack].sum()),
        "attack_packets_inside": round(
            float(packets[attack & inside].sum() / packets[attack].sum()), 4
        ),
        "by_label": by_label,
        "benign_packets_inside_incidents": int(packets[~attack & inside].sum()),
        "benign_packets": int(packets[~attack].sum()),
        "incidents": len(incidents),
        "false_incidents": len(false_incidents),
        "false_incident_examples": false_incidents[:5],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7, help="the lab scanned")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--train-seed", type=int, default=1, help="the lab the model learns from")
    ap.add_argument("--train-scale", type=float, default=0.5)
    ap.add_argument("--model", help="a model URI instead of training one")
    ap.add_argument("--slack", type=float, default=1.0, help="seconds around an incident's span")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("FLOWSENTINEL_HOME", str(work / "home"))
        model = args.model or train_model(args.train_seed, args.train_scale, work)
        data, sessions = build_lab(args.seed, args.scale)
        pcap = work / "lab.pcap"
        pcap.write_bytes(data)
        truth = truth_flows(pcap, sessions, work)
        incidents, flows = incidents_of(pcap, model)
        report = {"lab_seed": args.seed, "scale": args.scale, "model": model, "scan_flows": flows,
                  **coverage(truth, incidents, args.slack)}  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
