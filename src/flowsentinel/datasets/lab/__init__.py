"""The built-in lab: a deterministic, labelled packet capture crafted by the project.

``write_lab(DIR)`` writes ``DIR/lab.pcap`` (Ethernet, microsecond pcap), ``DIR/labels.csv`` (one
row per crafted session: the 5-tuple of its first packet, its start time, its kind and its
label) and ``DIR/lab_flows.csv`` (the flow meter's output for ``lab.pcap`` with a ``Label``
column).

The capture (15 minutes, in the style of the CIC-IDS2017 Wednesday: web server 192.168.10.50,
attacker 172.16.0.1) mixes many TCP/IP stacks (Linux, Windows, macOS/iOS, Android, embedded),
paths from the LAN to satellite links (jitter, loss, retransmissions, MSS clamping), IPv4 and
IPv6 hosts, clients behind NAT, and benign applications (web, TLS, QUIC, DNS, NTP, SSH, bulk
transfers, video, mail, databases, SMB/RDP, IoT, DHCP/DHCPv6, ICMP, multicast) and TCP that
fails (refused, unanswered, stalled, caught mid-stream) with DoS attacks at several rates
(HTTP floods, slow attacks, SYN/UDP/ACK/RST/ICMP floods, amplification over 21 reflector
services, SYN-ACK reflection). Modules: ``stacks`` (stacks and paths), ``tcp`` (a
connection), ``benign``/``chatter``/``failures`` (benign traffic), ``attacks``/``floods``/
``synflood``/``amplification`` (attacks), ``wire`` (the vectorised pcap writer). No root, no
network.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from flowsentinel.capture.meter import OI_DPORT, OI_PROTO, OI_SPORT, FlowArrays
from flowsentinel.capture.output import Labeller, write_flows
from flowsentinel.datasets.lab import (
    amplification,
    attacks,
    benign,
    chatter,
    failures,
    floods,
    synflood,
)
from flowsentinel.datasets.lab.base import Lab, Session, endpoint_key
from flowsentinel.datasets.lab.wire import to_pcap
from flowsentinel.datasets.lab.world import World

BENIGN = benign.BENIGN
HULK, SLOWLORIS, SLOWPOST, SLOWREAD = (
    attacks.HULK,
    attacks.SLOWLORIS,
    attacks.SLOWPOST,
    attacks.SLOWREAD,
)
SYNFLOOD, UDPFLOOD, ACKFLOOD, RSTFLOOD, ICMPFLOOD = (
    floods.SYNFLOOD,
    floods.UDPFLOOD,
    floods.ACKFLOOD,
    floods.RSTFLOOD,
    floods.ICMPFLOOD,
)
REFLECTION, SYNACK_REFLECTION = floods.REFLECTION, floods.SYNACK_REFLECTION
LABELS = (
    BENIGN,
    HULK,
    SLOWLORIS,
    SLOWPOST,
    SLOWREAD,
    SYNFLOOD,
    UDPFLOOD,
    ACKFLOOD,
    RSTFLOOD,
    ICMPFLOOD,
    REFLECTION,
    SYNACK_REFLECTION,
)

__all__ = ["LABELS", "LabResult", "Session", "build_lab", "labeller_for", "write_lab"]

Generator = Callable[[Lab, World, int], None]

#: what the lab generates at scale 1: (generator, sessions or packets)
MIX: tuple[tuple[Generator, int], ...] = (
    (benign.web, 260),
    (benign.browser_pages, 110),
    (benign.short_https, 420),
    (benign.bulk, 20),
    (benign.video, 10),
    (lambda lab, w, n: benign.ssh(lab, w, n, max(1, n // 3)), 24),
    (lambda lab, w, n: benign.dns(lab, w, n, max(1, n // 15)), 700),
    (benign.quic, 50),
    (benign.ntp, 90),
    (benign.mail, 80),
    (benign.database, 80),
    (benign.lan_sessions, 24),
    (benign.iot, 60),
    (failures.tcp_failures, 300),
    (chatter.dhcp, 20),
    (chatter.ping, 60),
    (chatter.traceroute, 6),
    (chatter.multicast, 80),
    (attacks.hulk, 650),
    (attacks.slowloris, 110),
    (attacks.slowpost, 80),
    (attacks.slowread, 60),
    (synflood.syn_flood, 3500),
    (floods.udp_flood, 1500),
    (floods.ack_rst_flood, 500),
    (floods.icmp_flood, 300),
    (amplification.reflection, 8000),
    (floods.synack_reflection, 400),
)


@dataclass
class LabResult:
    """What :func:`write_lab` wrote: its three files, packets, sessions and flows per label."""

    pcap: Path
    labels: Path
    flows: Path
    packets: int
    sessions: int
    flow_labels: dict[str, int]


def build_lab(seed: int = 42, scale: float = 1.0) -> tuple[bytes, list[Session]]:
    """The lab capture's bytes (pcap) and its sessions, deterministic for a seed."""
    lab = Lab(np.random.default_rng(seed))
    world = World.make(lab)
    for generate, base in MIX:
        generate(lab, world, max(2, round(base * scale)))
    data, _n = to_pcap(lab.pk, lab.rng)
    return data, lab.sessions


def _canonical(
    src: np.ndarray, sport: np.ndarray, dst: np.ndarray, dport: np.ndarray, proto: np.ndarray
) -> pd.DataFrame:
    """One undirected key per row (``lo endpoint~hi endpoint~protocol``), built column-wise."""
    a = pd.Series(src, dtype=object) + "|" + pd.Series(sport).astype(str)
    b = pd.Series(dst, dtype=object) + "|" + pd.Series(dport).astype(str)
    first = (pd.Series(src, dtype=object) < pd.Series(dst, dtype=object)) | (
        (pd.Series(src, dtype=object) == pd.Series(dst, dtype=object))
        & (pd.Series(sport) <= pd.Series(dport))
    )
    key = np.where(first, a + "~" + b, b + "~" + a)
    return pd.DataFrame({"key": key + "~" + pd.Series(proto).astype(str)})


def labeller_for(sessions: list[Session]) -> Labeller:
    """A ``write_flows`` labeller: each flow takes the label of the session with its 5-tuple
    (both directions). Tuples are unique per label by construction (``Lab.session``); a flow
    that matches no session is an error, never a silent drop."""
    keys = {endpoint_key(s.src, s.sport, s.dst, s.dport, s.proto): s.label for s in sessions}
    ks = list(keys)
    table_keys = _canonical(
        np.array([k[0] for k in ks], object),
        np.array([k[1] for k in ks]),
        np.array([k[2] for k in ks], object),
        np.array([k[3] for k in ks]),
        np.array([k[4] for k in ks]),
    )
    lookup = pd.Series(list(keys.values()), index=table_keys["key"].to_numpy())

    def label(flows: FlowArrays, table: pa.Table) -> pa.Table:
        """The table with ``Label`` appended (raises when a flow matches no session)."""
        ids = flows.ids
        k = _canonical(
            np.array(table.column("Source IP").to_pylist(), object),
            ids[:, OI_SPORT],
            np.array(table.column("Destination IP").to_pylist(), object),
            ids[:, OI_DPORT],
            ids[:, OI_PROTO],
        )
        found = lookup.reindex(k["key"].to_numpy())
        if found.isna().any():
            first = k["key"][found.isna().to_numpy()].iloc[0]
            raise RuntimeError(f"a lab flow matches no crafted session: {first}")
        return table.append_column("Label", pa.array(found.to_numpy().tolist(), pa.string()))

    return label


def write_lab(out: Path, *, seed: int = 42, scale: float = 1.0) -> LabResult:
    """Write lab.pcap, labels.csv and lab_flows.csv into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data, sessions = build_lab(seed, scale)
    pcap = out / "lab.pcap"
    pcap.write_bytes(data)
    labels = out / "labels.csv"
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "Source IP",
                "Source Port",
                "Destination IP",
                "Destination Port",
                "Protocol",
                "Timestamp",
                "Kind",
                "Label",
            ]
        )
        for s in sorted(sessions, key=lambda s: s.start_us):
            stamp = np.datetime64(s.start_us, "us").astype(str).replace("T", " ")
            w.writerow([s.src, s.sport, s.dst, s.dport, s.proto, stamp, s.kind, s.label])
    flows = out / "lab_flows.csv"
    counts: dict[str, int] = {}
    labeller = labeller_for(sessions)

    def counting(fa: FlowArrays, table: pa.Table) -> pa.Table:
        """Label one batch and add its flows to the counts per label."""
        table = labeller(fa, table)
        for v, c in pd.Series(table.column("Label").to_pylist()).value_counts().items():
            counts[str(v)] = counts.get(str(v), 0) + int(c)
        return table

    stats = write_flows(pcap, flows, labeller=counting)
    return LabResult(pcap, labels, flows, stats.packets, len(sessions), counts)
