"""A small CIC-IDS2017-style flow file generated from a seed: the built-in default data.

The rows are simulated per flow (packet counts, sizes and gaps drawn per class) and every
derived feature is computed from those draws the way CICFlowMeter defines it, so the columns are
consistent with each other. It is written in the original MachineLearningCVE dialect (leading
spaces, the duplicated ``Fwd Header Length``) so that the real reading path is exercised, with a
few ``Infinity`` rates and duplicate rows as in the real files. It is a demonstration set, not a
substitute for the real data sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from flowsentinel.core import schema as sc

_CLASSES = {  # label: (share, fwd pkts λ, bwd pkts λ, fwd size μ, bwd size μ, gap μs, port)
    "BENIGN": (0.62, 8, 7, 120, 700, 40_000, 443),
    "DoS Hulk": (0.22, 4, 3, 380, 250, 1_500, 80),
    "DoS slowloris": (0.06, 6, 1, 12, 0, 9_000_000, 80),
    "DoS Slowhttptest": (0.05, 5, 1, 8, 0, 5_000_000, 80),
    "DoS GoldenEye": (0.05, 7, 5, 330, 1_400, 20_000, 80),
}


def _stats(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Total, max, min, mean, sample std of the first ``counts`` entries of each row."""
    mask = np.arange(values.shape[1])[None, :] < counts[:, None]
    n = counts.astype(float)
    safe = np.maximum(n, 1)
    v = np.where(mask, values, 0.0)
    total = v.sum(1)
    mean = np.where(n > 0, total / safe, 0.0)
    sq = np.where(mask, (values - mean[:, None]) ** 2, 0.0).sum(1)
    std = np.where(n > 1, np.sqrt(sq / np.maximum(n - 1, 1)), 0.0)
    vmax = np.where(n > 0, np.where(mask, values, -np.inf).max(1), 0.0)
    vmin = np.where(n > 0, np.where(mask, values, np.inf).min(1), 0.0)
    return total, vmax, vmin, mean, std


def generate_flows(rows: int = 20_000, seed: int = 42) -> pl.DataFrame:
    """Simulated labelled flows in canonical CIC columns (``Destination Port`` first)."""
    rng = np.random.default_rng(seed)
    names = list(_CLASSES)
    shares = np.array([c[0] for c in _CLASSES.values()])
    label_idx = rng.choice(len(names), size=rows, p=shares / shares.sum())
    p = np.array([c[1:] for c in _CLASSES.values()], dtype=float)[label_idx]
    fwd_n = 1 + rng.poisson(p[:, 0])
    bwd_n = rng.poisson(p[:, 1])
    width = int(max(fwd_n.max(), bwd_n.max(), 1))
    fwd_len = np.rint(rng.gamma(2.0, p[:, 2:3] / 2.0, size=(rows, width)))
    bwd_len = np.rint(rng.gamma(2.0, np.maximum(p[:, 3:4], 1) / 2.0, size=(rows, width)))
    bwd_len = np.where(p[:, 3:4] == 0, 0.0, bwd_len)
    fwd_gap = np.rint(rng.exponential(p[:, 4:5], size=(rows, width)))
    bwd_gap = np.rint(rng.exponential(p[:, 4:5], size=(rows, width)))
    f_tot, f_max, f_min, f_mean, f_std = _stats(fwd_len, fwd_n)
    b_tot, b_max, b_min, b_mean, b_std = _stats(bwd_len, bwd_n)
    fi_tot, fi_max, fi_min, fi_mean, fi_std = _stats(fwd_gap, fwd_n - 1)
    bi_tot, bi_max, bi_min, bi_mean, bi_std = _stats(bwd_gap, np.maximum(bwd_n - 1, 0))
    both_len = np.concatenate([fwd_len, bwd_len], axis=1)
    both_mask_n = fwd_n + bwd_n
    order = np.argsort(
        ~(
            np.arange(2 * width)[None, :] % width
            < np.where(np.arange(2 * width)[None, :] < width, fwd_n[:, None], bwd_n[:, None])
        ),
        axis=1,
        kind="stable",
    )
    packed = np.take_along_axis(both_len, order, axis=1)
    _a_tot, a_max, a_min, a_mean, a_std = _stats(packed, both_mask_n)
    duration = np.maximum(fi_tot, bi_tot) + rng.integers(0, 50, rows)
    duration = np.where(rng.random(rows) < 0.003, 0, duration)  # zero-length flows → Infinity
    flow_gaps_n = np.maximum(both_mask_n - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_s = 1e6 / duration
        flow_bytes = (f_tot + b_tot) * per_s
        flow_pkts = both_mask_n * per_s
        fwd_pkts_s = fwd_n * per_s
        bwd_pkts_s = bwd_n * per_s
    iat_mean = duration / flow_gaps_n
    iat_std = (fi_std + bi_std) / 2
    idle = np.where(duration > 5_000_000, duration * 0.8, 0.0)
    active = np.where(idle > 0, duration - idle, 0.0)
    syn = np.ones(rows)
    fin = (rng.random(rows) < np.where(label_idx == 0, 0.7, 0.2)).astype(float)
    psh = (f_tot > 0).astype(float)
    win_f = np.where(label_idx == 0, 64_240, rng.choice([29_200, 8_192, 256], rows)).astype(float)
    win_b = np.where(bwd_n > 0, rng.choice([65_535, 28_960, 235], rows), -1).astype(float)
    port = np.where(label_idx == 0, rng.choice([443, 80, 53, 22, 8080], rows), 80).astype(float)
    cols: dict[str, np.ndarray] = {
        "Destination Port": port,
        "Flow Duration": duration.astype(float),
        "Total Fwd Packets": fwd_n.astype(float),
        "Total Backward Packets": bwd_n.astype(float),
        "Total Length of Fwd Packets": f_tot,
        "Total Length of Bwd Packets": b_tot,
        "Fwd Packet Length Max": f_max,
        "Fwd Packet Length Min": f_min,
        "Fwd Packet Length Mean": f_mean,
        "Fwd Packet Length Std": f_std,
        "Bwd Packet Length Max": b_max,
        "Bwd Packet Length Min": b_min,
        "Bwd Packet Length Mean": b_mean,
        "Bwd Packet Length Std": b_std,
        "Flow Bytes/s": flow_bytes,
        "Flow Packets/s": flow_pkts,
        "Flow IAT Mean": iat_mean,
        "Flow IAT Std": iat_std,
        "Flow IAT Max": np.maximum(fi_max, bi_max),
        "Flow IAT Min": np.minimum(fi_min, np.where(bwd_n > 1, bi_min, fi_min)),
        "Fwd IAT Total": fi_tot,
        "Fwd IAT Mean": fi_mean,
        "Fwd IAT Std": fi_std,
        "Fwd IAT Max": fi_max,
        "Fwd IAT Min": fi_min,
        "Bwd IAT Total": bi_tot,
        "Bwd IAT Mean": bi_mean,
        "Bwd IAT Std": bi_std,
        "Bwd IAT Max": bi_max,
        "Bwd IAT Min": bi_min,
        "Fwd PSH Flags": psh,
        "Bwd PSH Flags": np.zeros(rows),
        "Fwd URG Flags": np.zeros(rows),
        "Bwd URG Flags": np.zeros(rows),
        "Fwd Header Length": 32.0 * fwd_n,
        "Bwd Header Length": 32.0 * bwd_n,
        "Fwd Packets/s": fwd_pkts_s,
        "Bwd Packets/s": bwd_pkts_s,
        "Min Packet Length": a_min,
        "Max Packet Length": a_max,
        "Packet Length Mean": a_mean,
        "Packet Length Std": a_std,
        "Packet Length Variance": a_std**2,
        "FIN Flag Count": fin,
        "SYN Flag Count": syn,
        "RST Flag Count": np.zeros(rows),
        "PSH Flag Count": psh,
        "ACK Flag Count": 1 - fin,
        "URG Flag Count": np.zeros(rows),
        "CWE Flag Count": np.zeros(rows),
        "ECE Flag Count": np.zeros(rows),
        "Down/Up Ratio": np.floor(bwd_n / np.maximum(fwd_n, 1)),
        "Average Packet Size": a_mean * both_mask_n / np.maximum(both_mask_n - 1, 1),
        "Avg Fwd Segment Size": f_mean,
        "Avg Bwd Segment Size": b_mean,
        "Fwd Avg Bytes/Bulk": np.zeros(rows),
        "Fwd Avg Packets/Bulk": np.zeros(rows),
        "Fwd Avg Bulk Rate": np.zeros(rows),
        "Bwd Avg Bytes/Bulk": np.zeros(rows),
        "Bwd Avg Packets/Bulk": np.zeros(rows),
        "Bwd Avg Bulk Rate": np.zeros(rows),
        "Subflow Fwd Packets": fwd_n.astype(float),
        "Subflow Fwd Bytes": f_tot,
        "Subflow Bwd Packets": bwd_n.astype(float),
        "Subflow Bwd Bytes": b_tot,
        "Init_Win_bytes_forward": win_f,
        "Init_Win_bytes_backward": win_b,
        "act_data_pkt_fwd": (fwd_len > 0).sum(1).astype(float).clip(max=fwd_n),
        "min_seg_size_forward": np.full(rows, 32.0),
        "Active Mean": active,
        "Active Std": np.zeros(rows),
        "Active Max": active,
        "Active Min": active,
        "Idle Mean": idle,
        "Idle Std": np.zeros(rows),
        "Idle Max": idle,
        "Idle Min": idle,
    }
    frame = pl.DataFrame(cols).with_columns(
        pl.Series(sc.LABEL, np.array(names, dtype=object)[label_idx], dtype=pl.String)
    )
    dupes = rng.choice(rows, size=rows // 50, replace=False)  # ~2% exact duplicates, as real data
    return pl.concat([frame, frame[dupes]])


def write_cic_csv(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write canonical CIC flows in the MachineLearningCVE dialect (as the Kaggle files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame.with_columns(pl.col(sc.CIC_DUPLICATE_OF).alias(sc.CIC_DUPLICATE_COLUMN))
    order = [
        "Destination Port",
        *sc.CIC_FEATURES[:53],
        sc.CIC_DUPLICATE_COLUMN,
        *sc.CIC_FEATURES[53:],
        sc.LABEL,
    ]
    out = out.select(order)
    header = ",".join(
        f" {sc.CIC_DUPLICATE_OF}" if c == sc.CIC_DUPLICATE_COLUMN else f" {c}" for c in order
    )
    body = out.write_csv(include_header=False, float_precision=None)
    body = body.replace("inf", "Infinity")
    path.write_text(header + "\n" + body)
    return path


def write_demo_dataset(out_dir: str | Path, rows: int = 20_000, seed: int = 42) -> Path:
    """Generate the built-in demonstration CSV into ``out_dir`` and return its path."""
    return write_cic_csv(generate_flows(rows, seed), Path(out_dir) / "flowsentinel-demo-flows.csv")
