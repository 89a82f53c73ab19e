"""Cross-source evaluation: train on one source, score the others, in one run.

Models trained on one network collapse on another (Engelen et al. 2021; Arp et al. 2022). This
benchmark measures how much, for every pair of the sources at hand:

- **lab → lab (unseen seed)**: the demo's model on a second lab capture it never saw; the
  same-source baseline of the lab pairs below.
- **lab → captures**: the demo's model (``flowsentinel demo``: the built-in lab, models rf, xgb,
  lgbm, champion registered) on every real capture of ``../shared/datasets/pcaps``, metered and
  scored as ``flowsentinel scan`` does (:func:`flowsentinel.scanning.iter_capture_frames`, then
  :meth:`flowsentinel.scoring.Detector.predict`).
- **lab → CIC-IDS2017 rows**: the same model on the DoS and BENIGN rows of the grouped sample
  and the BENIGN rows of the other CIC files that hold every column the model needs.
- **CIC-IDS2017 holdout**: the CIC model's own test rows (from its training run): the
  same-source baseline of the next pairs.
- **CIC-IDS2017 → lab**: a ``dos`` model trained on the CIC rows on the unseen lab's flows.
- **CIC-IDS2017 → captures**: the same CIC model on the real captures.

Each pair reports the detection rate on attack flows, the flagged share of benign flows, the
share of flows marked novel and the confident-wrong rate (a wrong verdict on a flow marked
in-distribution, over all labelled flows). Flows marked novel come from ``Verdicts``'s optional
``in_distribution`` array; when the scoring path does not give one, every flow counts as
in-distribution (the confident-wrong rate is then the error rate), and the run says so.

Usage::

    python benchmarks/bench_generalization.py [--seed 42] [--scale 1.0] [--quick]
        [--model URI] [--json PATH]

Everything is trained into a temporary MLflow store; ``--model`` scores with an existing model
(of the store that ``FLOWSENTINEL_HOME`` points at) instead of training the lab model.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from flowsentinel.capture import CaptureStats
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError, ModelError
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.datasets.lab import write_lab
from flowsentinel.datasets.reader import read_file
from flowsentinel.demo import DEMO_MODELS
from flowsentinel.models.training import TrainConfig, train
from flowsentinel.scanning import (
    Aggregate,
    check_capture_model,
    flow_identity,
    hand_over,
    iter_capture_frames,
    read_flows,
)
from flowsentinel.scoring import Detector, Verdicts

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
PCAPS = SHARED / "pcaps"
CIC_DIR = SHARED / "cicids2017"
CIC_GROUPED = CIC_DIR / "cicids2017-sample-grouped-labels.csv.gz"
CIC_BENIGN_FILES = (
    CIC_DIR / "friday-ddos-machinelearningcve-head9998.csv.gz",
    CIC_DIR / "thursday-webattacks-trafficlabelling.csv.gz",
)
CIC_PARQUETS = (
    CIC_DIR / "friday-ddos-10features.parquet",
    CIC_DIR / "friday-ddos-11features.parquet",
)
# slowloris-lab.pcap: every flow CICFlowMeter extracted is 10.0.2.15 → 192.168.56.102:80, and
# its reference flow file labels none of them ("No Label"): flows with this server are attack
SLOWLORIS = "slowloris-lab.pcap"
SLOWLORIS_SERVER = ("192.168.56.102", 80)
UNLABELLED = {"", "no label", "nan", "none"}

ATTACK, BENIGN, UNKNOWN = 1, 0, -1  # truth codes of a flow
LAB_NAME = "bench-lab-dos"
CIC_NAME = "bench-cicids2017-dos"


# --- metrics (pure) ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """Flow counts of one scored source; rates come from :func:`rates` (sums add up)."""

    flows: int = 0
    attack: int = 0  # flows labelled attack
    benign: int = 0  # flows labelled benign
    detected: int = 0  # attack flows flagged
    flagged_benign: int = 0  # benign flows flagged
    flagged_unlabelled: int = 0  # flows of unknown truth flagged
    marked: int = 0  # flows the novelty check judged (in_distribution given)
    novel: int = 0  # flows marked out of distribution
    confident_wrong: int = 0  # labelled, wrong verdict, marked in-distribution

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def unlabelled(self) -> int:
        return self.flows - self.attack - self.benign


def count_flows(
    truth: np.ndarray, flagged: np.ndarray, in_distribution: np.ndarray | None = None
) -> Counts:
    """The counts of one scored source.

    Parameters
    ----------
    truth
        Per flow: ``ATTACK`` (1), ``BENIGN`` (0) or ``UNKNOWN`` (-1, e.g. an attack capture
        whose flows are not all attack).
    flagged
        Per flow: the verdict is not BENIGN.
    in_distribution
        Per flow: the model's novelty check says the flow is like its training rows; ``None``
        (no novelty check): every flow counts as in-distribution, none is marked.

    Returns
    -------
    Counts
        A flow is wrong when labelled attack and not flagged or labelled benign and flagged;
        confident-wrong when also in-distribution. Flows of unknown truth are never wrong.
    """
    truth = np.asarray(truth)
    flagged = np.asarray(flagged, dtype=bool)
    marked = in_distribution is not None
    in_dist = np.asarray(in_distribution if marked else np.ones(len(truth)), dtype=bool)
    if not len(truth) == len(flagged) == len(in_dist):
        raise ValueError(
            f"truth, flagged and in_distribution differ in length: "
            f"{len(truth)}, {len(flagged)}, {len(in_dist)}"
        )
    attack, benign = truth == ATTACK, truth == BENIGN
    unknown = ~(attack | benign)
    wrong = (attack & ~flagged) | (benign & flagged)
    return Counts(
        flows=len(truth),
        attack=int(attack.sum()),
        benign=int(benign.sum()),
        detected=int((attack & flagged).sum()),
        flagged_benign=int((benign & flagged).sum()),
        flagged_unlabelled=int((unknown & flagged).sum()),
        marked=len(truth) if marked else 0,
        novel=int((~in_dist).sum()),
        confident_wrong=int((wrong & in_dist).sum()),
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rates(c: Counts) -> dict[str, float | None]:
    """The figures of a pair from its counts (``None`` where the denominator is zero).

    ``detection_rate``: flagged attack flows over attack flows; ``flagged_benign_share``:
    flagged benign flows over benign flows; ``flagged_unlabelled_share``: the same for flows of
    unknown truth; ``novel_share``: flows marked novel over the flows the novelty check judged
    (``None`` without one); ``confident_wrong_rate``:
    in-distribution flows with a wrong verdict over all labelled flows.
    """
    return {
        "detection_rate": _share(c.detected, c.attack),
        "flagged_benign_share": _share(c.flagged_benign, c.benign),
        "flagged_unlabelled_share": _share(c.flagged_unlabelled, c.unlabelled),
        "novel_share": _share(c.novel, c.marked),
        "confident_wrong_rate": _share(c.confident_wrong, c.attack + c.benign),
    }


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of the share ``k / n`` (95 % for the default ``z``; ``None``
    when ``n`` is 0): the real sources are small, so every share carries one."""
    if n == 0:
        return None
    p, z2 = k / n, z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def intervals(c: Counts) -> dict[str, tuple[float, float] | None]:
    """The 95 % Wilson interval of each of :func:`rates`."""
    return {
        "detection_rate": wilson_interval(c.detected, c.attack),
        "flagged_benign_share": wilson_interval(c.flagged_benign, c.benign),
        "flagged_unlabelled_share": wilson_interval(c.flagged_unlabelled, c.unlabelled),
        "novel_share": wilson_interval(c.novel, c.marked),
        "confident_wrong_rate": wilson_interval(c.confident_wrong, c.attack + c.benign),
    }


def figures(c: Counts) -> dict[str, Any]:
    return {"counts": asdict(c), "rates": rates(c), "intervals_95": intervals(c)}


# --- scoring through the product's path --------------------------------------------------------
@dataclass
class Novelty:
    """Whether the verdicts carried an ``in_distribution`` array (seen over every call)."""

    with_array: int = 0
    without: int = 0

    def read(self, verdicts: Verdicts) -> np.ndarray | None:
        found = getattr(verdicts, "in_distribution", None)
        if found is None:
            self.without += 1
            return None
        self.with_array += 1
        return np.asarray(found, dtype=bool)

    def describe(self) -> str:
        if self.with_array and not self.without:
            return "present: flows outside the model's training distribution are marked novel"
        if self.with_array:
            return (
                f"partial: {self.with_array} model calls gave in_distribution, "
                f"{self.without} did not (their flows count as in-distribution)"
            )
        return (
            "absent: Verdicts carries no in_distribution array, every flow counts as "
            "in-distribution (confident-wrong = wrong)"
        )


@dataclass
class Scored:
    """The flagged verdicts and novelty marks of the flows of one source, in order."""

    flagged: list[np.ndarray] = field(default_factory=list)
    marks: list[np.ndarray | None] = field(default_factory=list)

    def add(self, verdicts: Verdicts, novelty: Novelty) -> None:
        self.flagged.append(np.asarray(verdicts.codes) != 0)  # class 0 is BENIGN
        self.marks.append(novelty.read(verdicts))

    def counts(self, truth: np.ndarray, flagged: np.ndarray | None = None) -> Counts:
        """:func:`count_flows` of these verdicts against ``truth`` (same order); ``flagged``
        replaces the model's flags (``scan``'s verdicts in context), the novelty marks stay."""
        if not self.flagged:
            return count_flows(truth, np.zeros(0, bool))
        if flagged is None:
            flagged = np.concatenate(self.flagged)
        if all(m is None for m in self.marks):
            return count_flows(truth, flagged)
        in_dist = [
            np.ones(len(f), bool) if m is None else m
            for f, m in zip(self.flagged, self.marks, strict=True)
        ]
        return count_flows(truth, flagged, np.concatenate(in_dist))


def score_frames(
    det: Detector, frames: Iterable[pd.DataFrame], novelty: Novelty,
    aggregate: Aggregate | None = None,
) -> tuple[Scored, pd.DataFrame]:  # fmt: skip
    """Score every frame (one ``predict`` call each); returns the verdicts and the flows'
    identifiers, in the same order. With ``aggregate`` (the frames of a capture), every flow
    and the flagged ones go to it as ``scan`` hands them over (``scanning.scan_frames``)."""
    scored = Scored()
    ids: list[pd.DataFrame] = []
    for frame in frames:
        if len(frame) == 0:
            continue
        verdicts = det.predict(frame)
        scored.add(verdicts, novelty)
        ids.append(frame[[c for c in sc.CIC_IDENTIFIERS if c in frame.columns]])
        if aggregate is not None:
            hand_over(aggregate, verdicts, frame, flow_identity(frame, det.dataset), det)
    return scored, (pd.concat(ids, ignore_index=True) if ids else pd.DataFrame())


def scan_counts(scored: Scored, truth: np.ndarray, aggregate: Aggregate) -> Counts:
    """The counts of ``scan``'s verdicts in context: a flow is flagged when it belongs to an
    incident (``Aggregate.place``), with the flow model's novelty marks."""
    placed, _ = aggregate.place()
    return scored.counts(truth, placed.notna().to_numpy(dtype=bool))


# --- lab → captures ------------------------------------------------------------------------------
def capture_group(path: Path) -> str:
    """``benign`` (every flow benign), ``dos`` (a flood or slowloris) or ``other-attack``."""
    if path.parent.name == "benign":
        return "benign"
    if path.name.startswith("stopddos-") or path.name == SLOWLORIS:
        return "dos"
    return "other-attack"


def slowloris_rule(reference: Path) -> str:
    """How slowloris-lab flows are labelled: its reference flow file labels none of them (the
    rule is the attacked server); stop if a newer copy of the file does label them."""
    labels = pd.read_csv(reference, usecols=["Label"])["Label"].astype(str).str.strip()
    if not labels.str.lower().isin(UNLABELLED).all():
        raise SystemExit(f"{reference} labels its flows now: label slowloris flows from it")
    host, port = SLOWLORIS_SERVER
    return (
        f"{reference.name} labels no flow ({len(labels)} x 'No Label'): flows with "
        f"{host}:{port} (the attacked server) are attack, others benign"
    )


def capture_truth(path: Path, ids: pd.DataFrame) -> np.ndarray:
    """The truth of every flow of a capture, by its group (see :func:`capture_group`)."""
    n, group = len(ids), capture_group(path)
    if group == "benign":
        return np.full(n, BENIGN, np.int8)
    if group == "other-attack":
        return np.full(n, UNKNOWN, np.int8)
    if path.name != SLOWLORIS:
        return np.full(n, ATTACK, np.int8)  # one-way inbound floods: every flow is the attack
    if n == 0:
        return np.zeros(0, np.int8)
    host, port = SLOWLORIS_SERVER
    to_server = (ids["Destination IP"] == host) & (ids["Destination Port"] == port)
    from_server = (ids["Source IP"] == host) & (ids["Source Port"] == port)
    return np.where(to_server | from_server, ATTACK, BENIGN).astype(np.int8)


def captures() -> list[Path]:
    return sorted(
        p
        for p in PCAPS.glob("*/*")
        if p.suffix in (".pcap", ".pcapng") and p.parent.name in ("benign", "attack")
    )


def score_capture(det: Detector, path: Path, novelty: Novelty) -> dict[str, Any]:
    """The flow model's verdicts on a capture's flows, and ``scan``'s (flows in incidents)."""
    stats = CaptureStats()
    aggregate = Aggregate(benign=det.classes[0])
    frames = iter_capture_frames(path, stats, aggregate)
    scored, ids = score_frames(det, frames, novelty, aggregate)
    truth = capture_truth(path, ids)
    return {
        "capture": f"{path.parent.name}/{path.name}",
        "group": capture_group(path),
        "packets": stats.packets,
        "single_packet_flows_dropped": stats.meter.get("single_dropped", 0),
        "incidents": len(aggregate.builder.incidents),
        **figures(scored.counts(truth)),
        "scan": figures(scan_counts(scored, truth, aggregate)),
    }


def score_lab_capture(det: Detector, lab: Any, novelty: Novelty) -> dict[str, Any]:
    """A lab capture scanned as ``scan`` does (flows in incidents flagged), truth from the
    lab's labelled flows (the same meter, the same flows in the same order)."""
    aggregate = Aggregate(benign=det.classes[0])
    frames = iter_capture_frames(lab.pcap, CaptureStats(), aggregate)
    scored, ids = score_frames(det, frames, novelty, aggregate)
    labelled = pd.read_csv(lab.flows, usecols=["Flow ID", sc.LABEL])
    if not labelled["Flow ID"].astype(str).equals(ids["Flow ID"].astype(str)):
        raise SystemExit(f"{lab.flows} and {lab.pcap} give different flows")
    labels = labelled[sc.LABEL].astype(str).str.strip()
    truth = np.where(labels == sc.BENIGN, BENIGN, ATTACK).astype(np.int8)
    return {
        "incidents": len(aggregate.builder.incidents),
        "flow model": figures(scored.counts(truth)),
        "scan": figures(scan_counts(scored, truth, aggregate)),
    }


def score_captures(det: Detector, novelty: Novelty) -> dict[str, Any]:
    """A model on every capture: per capture and totals per group."""
    rows = [score_capture(det, p, novelty) for p in captures()]
    totals: dict[str, Counts] = {}
    scan: dict[str, Counts] = {}
    for row in rows:
        totals[row["group"]] = totals.get(row["group"], Counts()) + Counts(**row["counts"])
        scan[row["group"]] = scan.get(row["group"], Counts()) + Counts(**row["scan"]["counts"])
    for t in (totals, scan):
        t["dos+benign"] = t.get("dos", Counts()) + t.get("benign", Counts())
    dos_rows = [r for r in rows if r["group"] == "dos"]
    dos_rates = [r["rates"]["detection_rate"] for r in dos_rows if r["counts"]["attack"]]
    dropped = sum(r["single_packet_flows_dropped"] for r in dos_rows)
    dos = totals.get("dos", Counts())
    return {
        "labelling": {
            "benign": "benign/*: every flow benign",
            "dos": "attack/stopddos-* (one-way inbound floods): every flow attack; "
            + slowloris_rule(PCAPS / "attack" / f"{SLOWLORIS}_Flow.csv"),
            "other-attack": "attack/ppa3-*: truth per flow unknown (not floods), flagged share "
            "only, never in the DoS figures",
        },
        "captures": rows,
        "totals": {k: figures(v) for k, v in totals.items()},
        "scan_totals": {k: figures(v) for k, v in scan.items()},
        "dos_capture_mean_detection": float(np.mean(dos_rates)) if dos_rates else None,
        # the meter never writes a flow of one packet (as CICFlowMeter): such attack flows are
        # never scored, so never flagged
        "dos_single_packet_flows_dropped": dropped,
        "dos_detection_counting_dropped_flows": _share(dos.detected, dos.attack + dropped),
    }


# --- flow files: the lab's flows, CIC-IDS2017 rows ----------------------------------------------
def family_truth(families: pl.Series) -> np.ndarray:
    """Truth from the reader's ``Family`` column: DoS attack, BENIGN benign, else unknown."""
    fam = families.to_numpy()
    return np.select([fam == "DoS", fam == sc.BENIGN], [ATTACK, BENIGN], UNKNOWN).astype(np.int8)


def flagged_by_label(labels: np.ndarray, flagged: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per label (``DoS Hulk``, ``BENIGN``...): its flows and the share of them flagged."""
    names, inverse = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    flows = np.bincount(inverse, minlength=len(names))
    hits = np.bincount(inverse, weights=np.asarray(flagged, float), minlength=len(names))
    return {
        str(name): {"flows": int(n), "flagged_share": float(h / n)}
        for name, n, h in zip(names, flows, hits, strict=True)
    }


def score_rows(det: Detector, frame: pl.DataFrame, novelty: Novelty) -> dict[str, Any]:
    """Score labelled rows (``Label``, ``Family`` columns) in one ``predict`` call: their
    :func:`figures` and :func:`flagged_by_label`."""
    if frame.height == 0:
        return figures(Counts()) | {"by_label": {}}
    scored = Scored()
    scored.add(det.predict(frame), novelty)
    counts = scored.counts(family_truth(frame.get_column(sc.FAMILY)))
    labels = frame.get_column(sc.LABEL).fill_null("(none)").to_numpy()
    return figures(counts) | {"by_label": flagged_by_label(labels, scored.flagged[0])}


def score_flow_file(det: Detector, path: Path, novelty: Novelty) -> dict[str, Any]:
    """A labelled flow file, read as ``scan`` reads one (``scanning.read_flows``)."""
    flows = read_flows(path, "csv", det)
    return score_rows(det, pl.from_pandas(flows.frame), novelty)


def lab_to_cic(det: Detector, novelty: Novelty) -> dict[str, Any]:
    """The lab model on CIC rows: DoS and BENIGN rows of the grouped sample, BENIGN rows of the
    other files that hold every column the model needs (the rest is reported as skipped)."""
    files: list[dict[str, Any]] = []
    total = Counts()
    for path in (CIC_GROUPED, *CIC_BENIGN_FILES, *CIC_PARQUETS):
        keep = ["DoS", sc.BENIGN] if path == CIC_GROUPED else [sc.BENIGN]
        frame, _ = read_file(path, dataset=det.dataset)
        missing = det.missing(list(frame.columns))
        if missing:
            files.append(
                {
                    "file": path.name,
                    "skipped": f"lacks {len(missing)} of the model's {len(det.features)} columns",
                }
            )
            continue
        scored = score_rows(det, frame.filter(pl.col(sc.FAMILY).is_in(keep)), novelty)
        total = total + Counts(**scored["counts"])
        files.append({"file": path.name, "rows_read": frame.height, "kept": keep, **scored})
    return {"files": files, "totals": figures(total)}


# --- training ------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What a run trains: the lab size and the models."""

    seed: int
    scale: float
    models: tuple[str, ...]
    n_iter: int


def train_model(
    sources: list[Path], name: str, plan: Plan, settings: Settings, *, mixed: str = "error"
) -> tuple[Detector, dict[str, Any]]:
    """Train and register ``name`` (task ``dos``) in ``settings``' store; its champion."""
    result = train(
        TrainConfig(
            sources=[str(s) for s in sources],
            task="dos",
            models=list(plan.models),
            n_iter=plan.n_iter,
            registered_name=name,
            seed=plan.seed,
            mixed=mixed,
        ),
        settings,
        progress=lambda text: print(f"  [{name}] {text}", file=sys.stderr, flush=True),
    )
    return Detector.load(f"models:/{name}@champion", settings), result


def holdout_counts(result: dict[str, Any]) -> Counts:
    """The champion's test rows of a training run as counts (no novelty: none marked)."""
    champion = result["champion"]["name"]
    entry = next(m for m in result["models"] if m["name"] == champion)
    (tn, fp), (fn, tp) = entry["confusion_matrix"]
    return Counts(
        flows=tn + fp + fn + tp,
        attack=fn + tp,
        benign=tn + fp,
        detected=tp,
        flagged_benign=fp,
        confident_wrong=fp + fn,
    )


def describe_model(det: Detector, result: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": det.uri, "model": det.model, "features": len(det.features)}
    if result is not None:
        out |= {
            "protocol_details": result.get("protocol_details"),
            "n_train": result["n_train"],
            "n_test": result["n_test"],
            "champion": result["champion"],
            "test_metrics": {m["name"]: m["metrics"] for m in result["models"]},
        }
    return out


# --- output ------------------------------------------------------------------------------------
COLUMNS = (
    "flows", "attack", "benign", "detection", "flagged benign", "flagged (unlabelled)", "novel",
    "confident-wrong",
)  # fmt: skip


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}"


def cells(fig: dict[str, Any], with_intervals: bool = False) -> list[str]:
    """The table cells of one source's figures (``COLUMNS``), with their 95 % intervals."""
    c, r, ci = fig["counts"], fig["rates"], fig["intervals_95"]

    def share(name: str) -> str:
        if not with_intervals or ci[name] is None:
            return _pct(r[name])
        low, high = ci[name]
        return f"{_pct(r[name])} ({100 * low:.1f}–{100 * high:.1f})"

    unlabelled = c["flows"] - c["attack"] - c["benign"]
    return [
        f"{c['flows']:,}",
        f"{c['attack']:,}",
        f"{c['benign']:,}",
        share("detection_rate"),
        share("flagged_benign_share"),
        share("flagged_unlabelled_share") if unlabelled else "-",
        share("novel_share"),
        share("confident_wrong_rate"),
    ]


def markdown(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_table(report: dict[str, Any]) -> str:
    pairs = report["pairs"]
    lab_base = pairs["lab→lab (unseen seed)"]["rates"]
    cic_base = pairs["cicids2017 holdout"]["rates"]
    caps = pairs["lab→captures"]["totals"]
    sources = [
        ("lab → lab (unseen seed), baseline", pairs["lab→lab (unseen seed)"], None),
        (
            "lab → lab capture, scan (flows in incidents)",
            pairs["lab→lab capture, scan"]["scan"],
            lab_base,
        ),
        ("lab → DoS + benign captures", caps["dos+benign"], lab_base),
        (
            "lab → DoS + benign captures, scan (flows in incidents)",
            pairs["lab→captures"]["scan_totals"]["dos+benign"],
            lab_base,
        ),
        ("lab → CIC-IDS2017 rows", pairs["lab→cicids2017"]["totals"], lab_base),
        ("CIC-IDS2017 holdout, baseline", pairs["cicids2017 holdout"], None),
        ("CIC-IDS2017 → lab (unseen seed)", pairs["cicids2017→lab"], cic_base),
        (
            "CIC-IDS2017 → DoS + benign captures",
            pairs["cicids2017→captures"]["totals"]["dos+benign"],
            cic_base,
        ),
        (
            "CIC-IDS2017 → DoS + benign captures, scan (flows in incidents)",
            pairs["cicids2017→captures"]["scan_totals"]["dos+benign"],
            cic_base,
        ),
    ]
    rows = []
    for name, fig, base in sources:
        r = fig["rates"]
        ratios = (
            ["-", "-"]
            if base is None
            else [
                _ratio(r["detection_rate"], base["detection_rate"]),
                _ratio(r["flagged_benign_share"], base["flagged_benign_share"]),
            ]
        )
        rows.append([name, *cells(fig, with_intervals=True), *ratios])
    header = ["pair", *COLUMNS, "detection ÷ baseline", "flagged benign ÷ baseline"]
    title = "Summary (95 % Wilson intervals; ratios against the same-source baseline of this run)"
    return markdown(title, header, rows)


def capture_tables(caps: dict[str, Any], model: str, per_capture: bool) -> list[str]:
    rows = [
        [r["capture"], f"{r['packets']:,}", f"{r['single_packet_flows_dropped']:,}",
         str(r["incidents"]), *cells(r), *cells(r["scan"])[3:5]]
        for r in caps["captures"]
    ]  # fmt: skip
    header = ["capture", "packets", "1-packet flows dropped", "incidents", *COLUMNS,
              "scan: detection", "scan: flagged benign"]  # fmt: skip
    totals = [[group, *cells(fig)] for group, fig in caps["totals"].items()]
    totals += [[f"{group}, scan", *cells(fig)] for group, fig in caps["scan_totals"].items()]
    return [
        *([markdown(f"{model} → captures, per capture", header, rows)] if per_capture else []),
        markdown(f"{model} → captures, totals", ["group", *COLUMNS], totals),
        f"{model}: DoS detection, mean over the DoS captures: "
        f"{_pct(caps['dos_capture_mean_detection'])}; "
        f"counting the {caps['dos_single_packet_flows_dropped']:,} one-packet flows the meter "
        f"drops as missed: {_pct(caps['dos_detection_counting_dropped_flows'])}\n",
    ]


def label_table(report: dict[str, Any]) -> str:
    """The unseen lab's flows per label: the share each model flags."""
    lab = report["pairs"]["lab→lab (unseen seed)"]["by_label"]
    cic = report["pairs"]["cicids2017→lab"]["by_label"]
    rows = [
        [name, f"{lab[name]['flows']:,}", _pct(lab[name]["flagged_share"]),
         _pct(cic[name]["flagged_share"]) if name in cic else "n/a"]
        for name in lab
    ]  # fmt: skip
    header = ["lab label", "flows", "flagged by the lab model", "flagged by the CIC model"]
    return markdown("unseen lab flows, per label", header, rows)


def render(report: dict[str, Any]) -> str:
    files = report["pairs"]["lab→cicids2017"]["files"]
    scored = [[f["file"], *cells(f)] for f in files if "counts" in f]
    parts = [
        summary_table(report),
        label_table(report),
        *capture_tables(report["pairs"]["lab→captures"], "lab", per_capture=True),
        *capture_tables(report["pairs"]["cicids2017→captures"], "CIC-IDS2017", per_capture=False),
        markdown("lab → CIC-IDS2017 rows, per file", ["file", *COLUMNS], scored),
        *(f"skipped {f['file']}: {f['skipped']}\n" for f in files if "skipped" in f),
    ]
    return "\n".join(parts)


# --- main ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seed", type=int, default=42, help="seed of the lab and of training")
    ap.add_argument("--scale", type=float, default=None, help="lab size (default 1, quick 0.25)")
    ap.add_argument("--quick", action="store_true", help="small lab, one model, one candidate")
    ap.add_argument("--model", default=None, help="score with this lab-trained model URI")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    return ap.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(args.seed, args.scale or 0.25, ("xgb",), 1)
    return Plan(args.seed, args.scale or 1.0, tuple(DEMO_MODELS), 3)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    plan = plan_of(args)
    settings = Settings(
        home=work / "home", mlflow_tracking_uri=f"sqlite:///{work / 'home' / 'mlflow.db'}"
    )
    novelty = Novelty()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    lab = write_lab(work / "lab", seed=plan.seed, scale=plan.scale)
    unseen = write_lab(work / "lab-unseen", seed=plan.seed + 1, scale=plan.scale)
    seconds["labs"] = time.perf_counter() - t

    t = time.perf_counter()
    lab_result: dict[str, Any] | None = None
    if args.model:
        lab_det = Detector.load(args.model, get_settings())
        check_capture_model(lab_det)  # the captures give CIC-IDS2017 flows
    else:
        lab_det, lab_result = train_model([lab.flows], LAB_NAME, plan, settings)
    seconds["train lab model"] = time.perf_counter() - t

    t = time.perf_counter()
    cic_sources = [CIC_GROUPED, *CIC_BENIGN_FILES]
    cic_det, cic_result = train_model(cic_sources, CIC_NAME, plan, settings, mixed="intersect")
    seconds["train cic model"] = time.perf_counter() - t

    pairs: dict[str, Any] = {}
    t = time.perf_counter()
    pairs["lab→lab (unseen seed)"] = score_flow_file(lab_det, unseen.flows, novelty)
    pairs["lab→lab capture, scan"] = score_lab_capture(lab_det, unseen, novelty)
    pairs["lab→captures"] = score_captures(lab_det, novelty)
    pairs["cicids2017→captures"] = score_captures(cic_det, novelty)
    seconds["score captures"] = time.perf_counter() - t
    t = time.perf_counter()
    pairs["lab→cicids2017"] = lab_to_cic(lab_det, novelty)
    pairs["cicids2017 holdout"] = figures(holdout_counts(cic_result))
    pairs["cicids2017→lab"] = score_flow_file(cic_det, unseen.flows, novelty)
    seconds["score flow files"] = time.perf_counter() - t
    return {
        "command": command_line(),
        "plan": asdict(plan),
        "novelty": novelty.describe(),
        "models": {
            "lab": describe_model(lab_det, lab_result),
            "cicids2017": describe_model(cic_det, cic_result)
            | {"sources": [p.name for p in cic_sources]},
        },
        "lab": {"train": lab.flow_labels, "unseen": unseen.flow_labels},
        "pairs": pairs,
        "seconds": seconds,
    }


def command_line() -> str:
    return shlex.join(["python", *sys.argv])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.scale is not None and not 0.05 <= args.scale <= 20:
        raise SystemExit("error: --scale must be within 0.05 and 20 (as `flowsentinel demo`)")
    if not PCAPS.is_dir() or not CIC_GROUPED.is_file():
        raise SystemExit(f"needs the shared data sets at {SHARED}")
    print(f"command: {command_line()}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-generalization-") as tmp:
        try:
            report = run(args, Path(tmp))
        except (InputError, ModelError) as exc:  # one line, as the CLI gives them
            raise SystemExit(f"error: {exc}") from None
    report["seconds"]["total"] = time.perf_counter() - started
    print(f"novelty: {report['novelty']}")
    print(render(report))
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
