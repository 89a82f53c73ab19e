"""Hand-made flow files for the tests (no rows of the real data sets are copied here)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from flowsentinel.core import schema as sc

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"

# The header of a CICFlowMeter-V4 (Java) flow CSV, as the tool writes it.
CICFLOWMETER_V4_HEADER: tuple[str, ...] = (
    "Flow ID", "Src IP", "Src Port", "Dst IP", "Dst Port", "Protocol", "Timestamp",
    "Flow Duration", "Tot Fwd Pkts", "Tot Bwd Pkts", "TotLen Fwd Pkts", "TotLen Bwd Pkts",
    "Fwd Pkt Len Max", "Fwd Pkt Len Min", "Fwd Pkt Len Mean", "Fwd Pkt Len Std",
    "Bwd Pkt Len Max", "Bwd Pkt Len Min", "Bwd Pkt Len Mean", "Bwd Pkt Len Std", "Flow Byts/s",
    "Flow Pkts/s", "Flow IAT Mean", "Flow IAT Std", "Flow IAT Max", "Flow IAT Min",
    "Fwd IAT Tot", "Fwd IAT Mean", "Fwd IAT Std", "Fwd IAT Max", "Fwd IAT Min", "Bwd IAT Tot",
    "Bwd IAT Mean", "Bwd IAT Std", "Bwd IAT Max", "Bwd IAT Min", "Fwd PSH Flags",
    "Bwd PSH Flags", "Fwd URG Flags", "Bwd URG Flags", "Fwd Header Len", "Bwd Header Len",
    "Fwd Pkts/s", "Bwd Pkts/s", "Pkt Len Min", "Pkt Len Max", "Pkt Len Mean", "Pkt Len Std",
    "Pkt Len Var", "FIN Flag Cnt", "SYN Flag Cnt", "RST Flag Cnt", "PSH Flag Cnt",
    "ACK Flag Cnt", "URG Flag Cnt", "CWE Flag Count", "ECE Flag Cnt", "Down/Up Ratio",
    "Pkt Size Avg", "Fwd Seg Size Avg", "Bwd Seg Size Avg", "Fwd Byts/b Avg",
    "Fwd Pkts/b Avg", "Fwd Blk Rate Avg", "Bwd Byts/b Avg", "Bwd Pkts/b Avg",
    "Bwd Blk Rate Avg", "Subflow Fwd Pkts", "Subflow Fwd Byts", "Subflow Bwd Pkts",
    "Subflow Bwd Byts", "Init Fwd Win Byts", "Init Bwd Win Byts", "Fwd Act Data Pkts",
    "Fwd Seg Size Min", "Active Mean", "Active Std", "Active Max", "Active Min", "Idle Mean",
    "Idle Std", "Idle Max", "Idle Min", "Label",
)  # fmt: skip


def fmt(value: object) -> str:
    """A CSV cell as CICFlowMeter writes it (Infinity, NaN, blank for None)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    return str(value)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]], newline: str = "\n") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline)
    writer.writerow(header)
    for row in rows:
        writer.writerow([fmt(v) for v in row])
    return buf.getvalue()


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    encoding: str = "utf-8",
    newline: str = "\n",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_text(header, rows, newline).encode(encoding))
    return path


def cic_row(i: int, label: str | None, n_features: int = len(sc.CIC_FEATURES)) -> list[object]:
    """Distinct, finite feature values for row ``i`` plus its label."""
    return [float(i * 100 + j) for j in range(n_features)] + [label]


def write_cic_file(
    path: Path,
    labels: Sequence[str | None],
    *,
    header: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> Path:
    """A CIC file in canonical names: every feature, then ``Label``."""
    head = list(header) if header is not None else [*sc.CIC_FEATURES, "Label"]
    rows = [cic_row(i, lab, len(head) - 1) for i, lab in enumerate(labels)]
    return write_csv(path, head, rows, encoding=encoding)


def unsw_partition_header() -> list[str]:
    return ["id", *sc.UNSW_FEATURES, "attack_cat", "label"]


_UNSW_TEXT = {
    "proto": ("tcp", "udp", "arp"),
    "service": ("-", "http", "dns"),
    "state": ("FIN", "INT", "CON"),
}


def unsw_partition_rows(cats_and_labels: Sequence[tuple[str, int]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, (cat, label) in enumerate(cats_and_labels):
        row: list[object] = [i + 1]
        for j, name in enumerate(sc.UNSW_FEATURES):
            if name in _UNSW_TEXT:
                row.append(_UNSW_TEXT[name][i % 3])
            else:
                row.append(float(i * 10 + j) + 0.5)
        rows.append([*row, cat, label])
    return rows


def write_unsw_partition(path: Path, cats_and_labels: Sequence[tuple[str, int]]) -> Path:
    return write_csv(path, unsw_partition_header(), unsw_partition_rows(cats_and_labels))


def write_ten_feature_parquet(path: Path, rows: int = 50) -> Path:
    """A CIC parquet with 10 feature columns + Label (like the cleaned Kaggle re-uploads)."""
    features = list(sc.CIC_FEATURES[:10])
    data: dict[str, list[object]] = {
        f: [float(i * 3 + j) for i in range(rows)] for j, f in enumerate(features)
    }
    data["Label"] = ["BENIGN" if i % 2 else "DoS Hulk" for i in range(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(data).write_parquet(path)
    return path
