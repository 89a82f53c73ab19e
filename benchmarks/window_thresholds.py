"""How the aggregate detector's thresholds were learnt: figures of benign 10 s host windows.

Builds the lab capture (``flowsentinel lab``: deterministic benign web/DNS traffic and DoS
sessions, with a label per session), keeps the packets of the BENIGN sessions only, computes
the detector's host windows over them (:func:`flowsentinel.capture.windows.host_windows`) and
prints, per thresholded figure, the benign maximum and 99.9th percentile, ``margin`` × that
quantile, the floor and the threshold in use. A threshold is ``max(floor, margin × q99.9)``;
the floors keep the detector quiet on small captures where quantiles mean little.

    .venv/bin/python benchmarks/window_thresholds.py --scale 1
"""

from __future__ import annotations

import argparse
import ipaddress
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from flowsentinel.capture.decode import decode, new_counters
from flowsentinel.capture.pcap import ReadCounters, iter_records
from flowsentinel.capture.windows import (
    DEFAULT_THRESHOLDS,
    LONG_US,
    V4_PREFIX,
    host_windows,
    packet_frame,
)
from flowsentinel.datasets.lab import write_lab

#: threshold field → the host-window figure it bounds (and the floor in use)
FIGURES = {
    "packets_1s": "packets_1s",
    "sources_10s": "sources",
    "half_open_10s": "unmatched",
    "half_open_1s": "syn_1s",
    "udp_1s": "udp_1s",
    "udp_sources_10s": "udp_sources",
    "icmp_1s": "icmp_1s",
    "fragments_10s": "fragments_in",
}


def benign_packets(lab: Path) -> pl.DataFrame:
    """The lab's packets that belong to a BENIGN session (either direction): a semi-join on
    the client's address and port (every session has its own client port)."""
    labels = pl.read_csv(lab / "labels.csv").filter(pl.col("Label") == "BENIGN")
    mapped = [
        V4_PREFIX | int(ipaddress.IPv4Address(ip)) for ip in labels["Source IP"].to_list()
    ]  # one per session, not per packet
    clients = pl.DataFrame(
        {"lo": mapped, "port": labels["Source Port"].cast(pl.Int32)},
        schema={"lo": pl.UInt64, "port": pl.Int32},
    )
    counters = new_counters()
    parts = [
        packet_frame(decode(batch, counters))
        for batch in iter_records(lab / "lab.pcap", ReadCounters())
    ]
    df = pl.concat(parts)
    out = df.join(clients, left_on=["slo", "sport"], right_on=["lo", "port"], how="semi")
    back = df.join(clients, left_on=["dlo", "dport"], right_on=["lo", "port"], how="semi")
    return pl.concat([out, back]).sort("ts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--margin", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_lab(Path(tmp), seed=7, scale=args.scale)
        df = benign_packets(Path(tmp))
    hosts = host_windows(df.with_columns((pl.col("ts") // LONG_US * LONG_US).alias("w")))
    hosts = hosts.with_columns((pl.col("half_open") + pl.col("backscatter")).alias("unmatched"))
    print(f"{df.height:,} benign packets, {hosts.height:,} host windows of 10 s")
    print("| threshold | benign max | benign q99.9 | margin × q99.9 | in use |")
    print("|---|---:|---:|---:|---:|")
    for name, column in FIGURES.items():
        values = hosts[column].to_numpy().astype(float)
        q = float(np.quantile(values, 0.999))
        use = getattr(DEFAULT_THRESHOLDS, name)
        print(f"| {name} | {values.max():,.0f} | {q:,.1f} | {args.margin * q:,.1f} | {use:,} |")


if __name__ == "__main__":
    main()
