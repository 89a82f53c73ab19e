"""Which flows belong to which incident: against a flow-by-flow reading of the rule, on random
mixes, and on the cases that make the rule (a slowloris connection cut by the flow timeout, a
benign client of an attacked server, a lone flagged flow)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from flowsentinel.incidents import CLOSE_GAP_US, Detection, Incident, family_of, group_of
from flowsentinel.membership import grow_incidents, incident_members, member_figures

S = 1_000_000


def _incident(
    n: int, ip: str, port: int | None, first: int, last: int, family: str,
    detection: Detection = "flow", protocol: str | None = "tcp",
) -> Incident:  # fmt: skip
    return Incident(
        id=f"inc-{n}", family=family, label=family, target_ip=ip, target_port=port,
        protocol=protocol, first_us=first, last_us=last, detection=detection,
    )  # fmt: skip


COLUMNS = ["src_ip", "dst_ip", "dst_port", "start_us", "end_us", "label", "protocol", "bwd_packets"]


def _flows(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of (src, dst, port, start, end, label[, protocol, packets back]); two-way TCP by
    default."""
    return pd.DataFrame([(*r, "tcp", 1)[:8] for r in rows], columns=COLUMNS)


def _by_hand(flows: pd.DataFrame, incidents: list[Incident], benign: str) -> list[str | None]:
    """The rule read flow by flow, incident by incident (no merges, no arrays)."""
    rows = flows.to_dict("records")

    def near(r: dict, inc: Incident) -> bool:
        port_ok = inc.target_port is None or (
            r["dst_port"] is not None
            and r["dst_port"] == r["dst_port"]  # not NaN
            and int(r["dst_port"]) == inc.target_port
        )
        return (
            r["dst_ip"] == inc.target_ip and port_ok
            and r["end_us"] >= inc.first_us - CLOSE_GAP_US
            and r["start_us"] <= inc.last_us + CLOSE_GAP_US
        )  # fmt: skip

    def flagged_in(r: dict, inc: Incident) -> bool:
        return r["label"] != benign and group_of(family_of(r["label"])) == group_of(inc.family)

    def flood(r: dict, inc: Incident) -> bool:
        return (
            "aggregate" in inc.detection and r["bwd_packets"] == 0
            and (inc.protocol is None or r["protocol"] == inc.protocol)
            and r["end_us"] >= inc.first_us and r["start_us"] <= inc.last_us
        )  # fmt: skip

    out: list[str | None] = []
    for r in rows:
        found = None
        for inc in incidents:
            if not near(r, inc):
                continue
            attackers = {o["src_ip"] for o in rows if near(o, inc) and flagged_in(o, inc)}
            if flagged_in(r, inc) or r["src_ip"] in attackers or flood(r, inc):
                found = inc.id
                break
        out.append(found)
    return out


def test_slowloris_connections_cut_by_the_timeout_join_their_attacker() -> None:
    """The flagged teardown tails make the incident; the same client's long connections to
    the same server, minutes earlier but within the gap, are part of it; another client of the
    server and a lone flagged flow elsewhere are not."""
    inc = _incident(1, "10.0.0.80", 80, 200 * S, 201 * S, "DoS")
    flows = _flows([
        ("10.6.6.6", "10.0.0.80", 80, 200 * S, 200 * S + 10, "DoS slowloris"),  # a tail
        ("10.6.6.6", "10.0.0.80", 80, 80 * S, 199 * S, "BENIGN"),  # its connection, cut
        ("10.6.6.6", "10.0.0.80", 80, 10 * S, 130 * S, "BENIGN"),  # ends > 60 s before
        ("10.1.1.1", "10.0.0.80", 80, 150 * S, 151 * S, "BENIGN"),  # another client
        ("10.6.6.6", "10.0.0.80", 443, 190 * S, 191 * S, "BENIGN"),  # another port
        ("10.7.7.7", "10.0.0.99", 53, 200 * S, 200 * S, "DoS"),  # lone flagged flow
    ])  # fmt: skip
    got = incident_members(flows, [inc], benign="BENIGN").tolist()
    assert got == ["inc-1", "inc-1", None, None, None, None]


def test_a_flow_in_two_incidents_belongs_to_the_first_and_families_are_kept_apart() -> None:
    dos = _incident(1, "10.0.0.5", None, 100 * S, 110 * S, "DoS")
    ddos = _incident(2, "10.0.0.5", None, 105 * S, 120 * S, "DDoS")  # the same group as DoS
    scan = _incident(3, "10.0.0.5", None, 100 * S, 110 * S, "PortScan")
    flows = _flows([
        ("10.9.0.1", "10.0.0.5", 22, 106 * S, 107 * S, "DDoS"),  # in 1 and 2: the first
        ("10.9.0.2", "10.0.0.5", 23, 101 * S, 101 * S, "PortScan"),  # only the scan's
        ("10.9.0.2", "10.0.0.5", 24, 102 * S, 102 * S, "BENIGN"),  # its source: the scan's
    ])  # fmt: skip
    got = incident_members(flows, [dos, ddos, scan], benign="BENIGN").tolist()
    assert got == ["inc-1", "inc-3", "inc-3"]


def test_one_way_flows_join_a_flood_the_windows_saw_within_its_own_span() -> None:
    """Forged or reflected sources the flow model never flagged: their one-way flows are the
    flood while the windows saw it, in its protocol; answered flows and flows outside the
    flood's own span (though within the closing gap) are not."""
    flood = _incident(1, "10.0.0.7", None, 100 * S, 110 * S, "DoS", "aggregate", "udp")
    flows = _flows([
        ("198.51.100.1", "10.0.0.7", 53, 101 * S, 101 * S, "BENIGN", "udp", 0),  # reflected
        ("198.51.100.2", "10.0.0.7", None, 105 * S, 105 * S, "BENIGN", "udp", 0),  # fragment
        ("198.51.100.3", "10.0.0.7", 53, 102 * S, 102 * S, "BENIGN", "udp", 1),  # answered
        ("198.51.100.4", "10.0.0.7", 80, 103 * S, 103 * S, "BENIGN", "tcp", 0),  # other proto
        ("198.51.100.5", "10.0.0.7", 53, 130 * S, 130 * S, "BENIGN", "udp", 0),  # after it
    ])  # fmt: skip
    got = incident_members(flows, [flood], benign="BENIGN").tolist()
    assert got == ["inc-1", "inc-1", None, None, None]
    flow_only = _incident(1, "10.0.0.7", None, 100 * S, 110 * S, "DoS", "flow", "udp")
    assert incident_members(flows, [flow_only], benign="BENIGN").isna().all()


def test_no_incidents_or_no_flows() -> None:
    flows = _flows([("10.9.0.1", "10.0.0.5", 22, 1, 2, "DoS")])
    assert incident_members(flows, [], "BENIGN").tolist() == [None]
    assert incident_members(flows.iloc[:0], [_incident(1, "a", None, 0, 1, "DoS")], "BENIGN").empty


@pytest.mark.parametrize("seed", range(25))
def test_random_mixes_match_the_rule_read_flow_by_flow(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = ["10.0.0.1", "10.0.0.2", "fd00::3"]
    sources = [f"192.0.2.{k}" for k in range(6)]
    labels = ["BENIGN", "BENIGN", "DoS Hulk", "DDoS", "PortScan", "Bot"]
    n = int(rng.integers(1, 60))
    starts = rng.integers(0, 400, n) * S // 2
    rows = [
        (
            str(rng.choice(sources)), str(rng.choice(targets)),
            None if rng.random() < 0.1 else int(rng.choice([80, 443, 53])),
            int(s), int(s + rng.integers(0, 90) * S), str(rng.choice(labels)),
            str(rng.choice(["tcp", "udp"])), int(rng.choice([0, 0, 1, 5])),
        )
        for s in starts
    ]  # fmt: skip
    incidents = [
        _incident(
            k, str(rng.choice(targets)), None if rng.random() < 0.4 else int(rng.choice([80, 443])),
            int(f), int(f + rng.integers(0, 60) * S), str(rng.choice(["DoS", "DDoS", "PortScan"])),
            cast(Detection, str(rng.choice(["flow", "aggregate", "flow+aggregate"]))),
            None if rng.random() < 0.3 else str(rng.choice(["tcp", "udp"])),
        )
        for k, f in enumerate(rng.integers(0, 300, int(rng.integers(0, 5))) * S, 1)
    ]  # fmt: skip
    flows = _flows(rows)
    assert incident_members(flows, incidents, "BENIGN").tolist() == _by_hand(
        flows, incidents, "BENIGN"
    )


def test_incidents_grow_to_their_flows() -> None:
    """An incident as large as its flows: their count, span and packets each way where these
    pass what it counted; an incident with no flows, or counting more already, keeps its own."""
    slow = _incident(1, "10.0.0.80", 80, 200 * S, 201 * S, "DoS")
    slow.flows, slow.to_target.packets, slow.from_target.packets = 1, 2, 0
    flood = _incident(2, "10.0.0.9", None, 100 * S, 110 * S, "DoS", "aggregate", "udp")
    flood.to_target.packets = 10_000  # the windows counted every packet
    quiet = _incident(3, "10.0.0.3", None, 100 * S, 110 * S, "DoS")
    flows = pd.DataFrame({
        "start_us": [200 * S, 80 * S, 101 * S], "end_us": [200 * S + 10, 199 * S, 102 * S],
        "fwd_packets": [2, 12, 40], "fwd_bytes": [0, 275, 4000],
        "bwd_packets": [0, 11, 0], "bwd_bytes": [0, 62, None],
    })  # fmt: skip
    members = pd.Series(["inc-1", "inc-1", "inc-2"], dtype=object)
    figures = member_figures(flows, members)
    assert figures.loc["inc-1"].to_dict() == {
        "fwd_packets": 14, "fwd_bytes": 275, "bwd_packets": 11, "bwd_bytes": 62, "flows": 2,
        "first_us": 80 * S, "last_us": 200 * S + 10,
    }  # fmt: skip
    grow_incidents([slow, flood, quiet], figures)
    assert (slow.flows, slow.first_us, slow.last_us) == (2, 80 * S, 201 * S)
    assert (slow.to_target.packets, slow.from_target.packets, slow.from_target.bytes) == (
        14,
        11,
        62,
    )
    assert (flood.flows, flood.to_target.packets, flood.to_target.bytes) == (1, 10_000, 4000)
    assert (quiet.flows, quiet.first_us, quiet.to_target.packets) == (0, 100 * S, 0)
