"""Membership: which flows each incident covers, so that a flow's verdict reads in context.

The flow model judges one flow at a time. Some flows of an attack look ordinary on their own:
the two closing packets of a slowloris connection (a flow of their own, as CICFlowMeter cuts
them), a connection held open past the flow timeout, the trailing fragments of an amplified
answer. And some lone benign flows look like one packet of a flood (a DHCP exchange, the
answers to a traceroute). An incident (:mod:`flowsentinel.incidents`) is the detectors' joint
case on one target; a flow **belongs** to it when

- it goes to the incident's target (address, and port when the incident has one),
- it overlaps the incident's time span widened by the incident's closing gap (nothing
  flagged for that long ends an incident, so the same gap bounds what is part of it), and
- it was flagged in the incident's family, or its source sent such a flagged flow to that
  target in that span (the rest of an attacker's connections are the attack too), or the
  aggregate detector saw the incident (a flood) and the flow got no packet back, in the
  incident's protocol and within its own span (a flood is one-way: forged or reflected
  sources, fragments of amplified answers, each a flow the flow model may not know).

A flow in several incidents belongs to the first that opened. Flagged flows outside every
incident stay verdicts of the flow model alone: ``scan`` counts them apart, and they open no
alert.

Examples
--------
>>> import pandas as pd
>>> from flowsentinel.incidents import Incident
>>> inc = Incident(id="inc-1", family="DoS", label="DoS", target_ip="10.0.0.1",
...                target_port=80, protocol="tcp", first_us=10_000_000, last_us=20_000_000)
>>> flows = pd.DataFrame({
...     "src_ip": ["10.9.9.9", "10.9.9.9", "10.8.8.8"],
...     "dst_ip": ["10.0.0.1", "10.0.0.1", "10.0.0.1"],
...     "dst_port": [80, 80, 80],
...     "start_us": [12_000_000, 30_000_000, 12_000_000],
...     "end_us": [13_000_000, 31_000_000, 12_500_000],
...     "label": ["DoS", "BENIGN", "BENIGN"],
...     "protocol": ["tcp", "tcp", "tcp"], "bwd_packets": [0, 3, 2],
... })
>>> incident_members(flows, [inc], benign="BENIGN").tolist()
['inc-1', 'inc-1', None]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from flowsentinel.incidents import CLOSE_GAP_US, Incident, family_of, group_of

_COUNTS = ("fwd_packets", "fwd_bytes", "bwd_packets", "bwd_bytes")
#: the columns :func:`incident_members` reads
MEMBER_COLUMNS = (
    "src_ip", "dst_ip", "dst_port", "protocol", "start_us", "end_us", "bwd_packets", "label",
)  # fmt: skip


def incident_members(
    flows: pd.DataFrame,
    incidents: Sequence[Incident],
    benign: str,
    gap_us: int = CLOSE_GAP_US,
) -> pd.Series:
    """The id of the incident each flow belongs to (``None``: none), in the flows' order.

    Parameters
    ----------
    flows : DataFrame
        :data:`MEMBER_COLUMNS`: addresses and protocol as text, ``dst_port`` a number
        (missing: the flow has no port), ``start_us``/``end_us`` µs since 1970,
        ``bwd_packets`` the packets back, ``label`` the flow model's verdict.
    incidents : sequence of Incident
        In the order they opened (:attr:`IncidentBuilder.incidents`).
    benign : str
        The model's benign label.
    gap_us : int
        How far before and after an incident's span a flow may lie (default: the incidents'
        closing gap).
    """
    out = pd.Series([None] * len(flows), dtype=object)
    if not len(flows) or not incidents:
        return out
    flow_table, incident_table = _tables(flows, incidents, benign)
    pairs = _candidates(flow_table, incident_table, gap_us)
    direct = pairs["group"].to_numpy() == pairs["inc_group"].to_numpy()
    # an attacker: (incident, source) of a flagged flow of the incident's family
    key = pairs["inc"].to_numpy() * (int(flow_table["src"].max()) + 1) + pairs["src"].to_numpy()
    attacker = np.isin(key, key[direct])
    member = direct | attacker | _flood(pairs)
    first = pairs.loc[member, ["row", "inc"]].sort_values(["row", "inc"]).drop_duplicates("row")
    ids = np.array([i.id for i in incidents], dtype=object)
    out.iloc[first["row"].to_numpy()] = ids[first["inc"].to_numpy()]
    return out


def _tables(
    flows: pd.DataFrame, incidents: Sequence[Incident], benign: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The flows and the incidents with their addresses, protocols and families as integer
    codes (text is compared once, when factorised)."""
    dst, dst_names = pd.factorize(flows["dst_ip"].astype(str))
    protocol, protocol_names = pd.factorize(flows["protocol"].astype(str), use_na_sentinel=False)
    label, label_names = pd.factorize(flows["label"])
    families = {g: k for k, g in enumerate({group_of(i.family) for i in incidents})}
    group = np.array(  # -1: benign, -2: a family no incident has
        [-1 if n == benign else families.get(group_of(family_of(n)), -2) for n in label_names],
        dtype=np.int64,
    )
    flow_table = pd.DataFrame({
        "row": np.arange(len(flows)),
        "src": pd.factorize(flows["src_ip"].astype(str), use_na_sentinel=False)[0],
        "protocol": protocol,
        "one_way": pd.to_numeric(flows["bwd_packets"], errors="coerce").to_numpy("float64") == 0,
        "dst": dst,
        "dst_port": pd.to_numeric(flows["dst_port"], errors="coerce").to_numpy("float64"),
        "start_us": flows["start_us"].to_numpy("int64"),
        "end_us": flows["end_us"].to_numpy("int64"),
        "group": group[label] if len(label_names) else np.zeros(0, np.int64),
    })  # fmt: skip
    known = pd.Index(protocol_names)
    incident_table = pd.DataFrame({
        "inc": np.arange(len(incidents)),
        "dst": pd.Index(dst_names).get_indexer([i.target_ip for i in incidents]),
        "target_port": [np.nan if i.target_port is None else i.target_port for i in incidents],
        "first_us": [i.first_us for i in incidents],
        "last_us": [i.last_us for i in incidents],
        "inc_group": [families[group_of(i.family)] for i in incidents],
        # -2: any protocol; -1: one no flow has
        "inc_protocol": [-2 if i.protocol is None else int(known.get_indexer([i.protocol])[0])
                         for i in incidents],
        "flood": ["aggregate" in i.detection for i in incidents],
    })  # fmt: skip
    return flow_table, incident_table


def _candidates(flows: pd.DataFrame, incidents: pd.DataFrame, gap_us: int) -> pd.DataFrame:
    """(flow, incident) pairs of a flow to the incident's target within its widened span."""
    pairs = flows.merge(incidents[incidents["dst"] >= 0], on="dst")
    port = pairs["target_port"].to_numpy()
    same_port = np.isnan(port) | (pairs["dst_port"].to_numpy() == port)
    inside = (pairs["end_us"].to_numpy() >= pairs["first_us"].to_numpy() - gap_us) & (
        pairs["start_us"].to_numpy() <= pairs["last_us"].to_numpy() + gap_us
    )
    return pairs[same_port & inside].reset_index(drop=True)


def _flood(pairs: pd.DataFrame) -> np.ndarray:
    """One-way flows within the own span of an incident the aggregate detector saw, in its
    protocol when it has one."""
    protocol = pairs["inc_protocol"].to_numpy()
    same = (protocol == -2) | (pairs["protocol"].to_numpy() == protocol)
    inside = (pairs["end_us"].to_numpy() >= pairs["first_us"].to_numpy()) & (
        pairs["start_us"].to_numpy() <= pairs["last_us"].to_numpy()
    )
    flood = pairs["flood"].to_numpy(dtype=bool) & pairs["one_way"].to_numpy(dtype=bool)
    return flood & same & inside


def member_figures(flows: pd.DataFrame, members: pd.Series) -> pd.DataFrame:
    """Per incident id: its flows (``flows``), their span (``first_us``, ``last_us``) and their
    packets and bytes each way (``fwd_packets``, ``fwd_bytes``, ``bwd_packets``,
    ``bwd_bytes``; missing counts as 0)."""
    inside = members.notna().to_numpy(dtype=bool)
    part = flows.loc[inside, ["start_us", "end_us", *_COUNTS]].reset_index(drop=True)
    for name in _COUNTS:
        part[name] = pd.to_numeric(part[name], errors="coerce").fillna(0).astype("int64")
    part["id"] = members[inside].to_numpy()
    grouped = part.groupby("id", sort=False)
    out = grouped[list(_COUNTS)].sum()
    out["flows"] = grouped.size()
    out["first_us"] = grouped["start_us"].min()
    out["last_us"] = grouped["end_us"].max()
    return out


def grow_incidents(incidents: Sequence[Incident], figures: pd.DataFrame) -> None:
    """Each incident as large as its flows (:func:`member_figures`): their count, their span,
    and their packets and bytes each way where these exceed what the incident counted (its
    windows count every packet to the target; its flagged flows are among its flows)."""
    rows = figures.to_dict("index")
    for inc in incidents:
        row = rows.get(inc.id)
        if row is None:
            continue
        inc.flows = max(inc.flows, int(row["flows"]))
        inc.first_us = min(inc.first_us, int(row["first_us"]))
        inc.last_us = max(inc.last_us, int(row["last_us"]))
        inc.to_target.packets = max(inc.to_target.packets, int(row["fwd_packets"]))
        inc.to_target.bytes = max(inc.to_target.bytes, int(row["fwd_bytes"]))
        inc.from_target.packets = max(inc.from_target.packets, int(row["bwd_packets"]))
        inc.from_target.bytes = max(inc.from_target.bytes, int(row["bwd_bytes"]))
