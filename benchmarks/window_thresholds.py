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

import polars as pl

from flowsentinel.capture.decode import decode, new_counters
from flowsentinel.capture.pcap import ReadCounters, iter_records
from flowsentinel.capture.windows import (
    DEFAULT_THRESHOLDS,
    LONG_US,
    V4_PREFIX,
    Baseline,
    host_windows,
    packet_frame,
)
from flowsentinel.datasets.lab import write_lab


def _halves(ip: str) -> tuple[int, int]:
    """An address as the packet arrays keep it: two 64-bit halves, IPv4 in its mapped form."""
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return 0, V4_PREFIX | int(address)
    return int(address) >> 64, int(address) & 0xFFFFFFFFFFFFFFFF


def benign_packets(lab: Path) -> pl.DataFrame:
    """The lab's packets that belong to a BENIGN session (either direction): a semi-join on
    the client's address and port (every session has its own client port)."""
    labels = pl.read_csv(lab / "labels.csv").filter(pl.col("Label") == "BENIGN")
    halves = [_halves(ip) for ip in labels["Source IP"].to_list()]  # per session, not packet
    clients = pl.DataFrame(
        {"hi": [h for h, _ in halves], "lo": [lo for _, lo in halves],
         "port": labels["Source Port"].cast(pl.Int32)},
        schema={"hi": pl.UInt64, "lo": pl.UInt64, "port": pl.Int32},
    )  # fmt: skip
    counters = new_counters()
    parts = [
        packet_frame(decode(batch, counters))
        for batch in iter_records(lab / "lab.pcap", ReadCounters())
    ]
    df = pl.concat(parts)
    key = ["hi", "lo", "port"]
    out = df.join(clients, left_on=["shi", "slo", "sport"], right_on=key, how="semi")
    back = df.join(clients, left_on=["dhi", "dlo", "dport"], right_on=key, how="semi")
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
    baseline = Baseline(margin=args.margin)  # the rule `flowsentinel baseline` applies
    baseline.add_hosts(hosts)
    print(f"{df.height:,} benign packets, {hosts.height:,} host windows of 10 s")
    print("| threshold | benign max | benign q99.9 | margin × q99.9 | in use |")
    print("|---|---:|---:|---:|---:|")
    for name, f in baseline.figures().items():
        use = getattr(DEFAULT_THRESHOLDS, name)
        print(f"| {name} | {f['benign_max']:,.0f} | {f['benign_quantile']:,.1f} | "
              f"{args.margin * f['benign_quantile']:,.1f} | {use:,} |")  # fmt: skip


if __name__ == "__main__":
    main()
