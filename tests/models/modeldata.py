"""Generated UNSW-NB15-shaped rows for model tests (no real rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowsentinel.core import schema as sc


def unsw_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A UNSW-NB15 partition-shaped frame whose label depends on sttl, sbytes and the service."""
    rng = np.random.default_rng(seed)
    label = (rng.random(rows) < 0.4).astype(int)
    data: dict[str, object] = {"id": np.arange(1, rows + 1)}
    for name in sc.UNSW_FEATURES:
        data[name] = rng.gamma(2.0, 50.0, rows).round(3)
    data["proto"] = rng.choice(["tcp", "udp", "ospf", "sctp"], rows)
    data["service"] = np.where(label == 1, rng.choice(["dns", "-", "http"], rows), "-")
    data["state"] = rng.choice(["FIN", "INT", "CON"], rows)
    data["sttl"] = np.where(label == 1, 254, rng.choice([31, 62], rows))
    data["sbytes"] = np.where(label == 1, 200 + rng.integers(0, 50, rows), data["sbytes"])
    data["is_ftp_login"] = rng.choice([0, 0, 0, 1, 2], rows)
    data["attack_cat"] = np.where(label == 1, rng.choice(["Exploits", "Generic"], rows), "Normal")
    data["label"] = label
    return pd.DataFrame(data)
