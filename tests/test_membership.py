"""Which flows belong to which incident: against a flow-by-flow reading of the rule, on random
mixes, and on the cases that make the rule (a slowloris connection cut by the flow timeout, a
benign client of an attacked server, a lone flagged flow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowsentinel.incidents import CLOSE_GAP_US, Incident, family_of, group_of
from flowsentinel.membership import incident_members

S = 1_000_000


def _incident(n: int, ip: str, port: int | None, first: int, last: int, family: str) -> Incident:
    return Incident(
        id=f"inc-{n}", family=family, label=family, target_ip=ip, target_port=port,
        protocol="tcp", first_us=first, last_us=last,
    )  # fmt: skip


def _flows(rows: list[tuple[str, str, int | None, int, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["src_ip", "dst_ip", "dst_port", "start_us", "end_us", "label"]
    )


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

    out: list[str | None] = []
    for r in rows:
        found = None
        for inc in incidents:
            if not near(r, inc):
                continue
            attackers = {o["src_ip"] for o in rows if near(o, inc) and flagged_in(o, inc)}
            if flagged_in(r, inc) or r["src_ip"] in attackers:
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
        )
        for s in starts
    ]  # fmt: skip
    incidents = [
        _incident(
            k, str(rng.choice(targets)), None if rng.random() < 0.4 else int(rng.choice([80, 443])),
            int(f), int(f + rng.integers(0, 60) * S), str(rng.choice(["DoS", "DDoS", "PortScan"])),
        )
        for k, f in enumerate(rng.integers(0, 300, int(rng.integers(0, 5))) * S, 1)
    ]  # fmt: skip
    flows = _flows(rows)
    assert incident_members(flows, incidents, "BENIGN").tolist() == _by_hand(
        flows, incidents, "BENIGN"
    )
