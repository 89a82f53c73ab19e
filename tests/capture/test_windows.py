"""The aggregate detector and the incidents it opens, on hand-made captures and the shared
real floods (golden values: counts of the packets each scenario crafts)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tests.capture.craft import ACK, FIN, PSH, SYN, Pkt, pcap_bytes

from flowsentinel.capture import CaptureStats, iter_flow_arrays
from flowsentinel.capture.windows import address, host_windows, top_sources
from flowsentinel.incidents import Incident
from flowsentinel.scanning import Aggregate

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "pcaps"
VICTIM = "198.51.100.7"
S = 1_000_000


def incidents_of(data: bytes | Path) -> tuple[list[Incident], Aggregate, CaptureStats]:
    aggregate = Aggregate()
    stats = CaptureStats()
    for _ in iter_flow_arrays(data, stats=stats, tap=aggregate.tap):
        pass
    aggregate.finish()
    return aggregate.builder.incidents, aggregate, stats


def _spoofed(rng: random.Random) -> str:
    return (
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def spoofed_syn_flood(n: int = 5_000, seconds: float = 2.0) -> list[Pkt]:
    """``n`` SYNs to VICTIM:80, each from its own forged address (one-packet flows)."""
    rng = random.Random(1)
    step = int(seconds * S / n)
    return [Pkt(i * step, _spoofed(rng), VICTIM, rng.randint(1024, 65535), 80, flags=SYN)
            for i in range(n)]  # fmt: skip


def udp_flood(n: int = 4_000) -> list[Pkt]:
    """A UDP flood from 2,000 sources to random ports of VICTIM in one second."""
    rng = random.Random(2)
    sources = [_spoofed(rng) for _ in range(2_000)]
    return [Pkt(i * (S // n), sources[i % 2_000], VICTIM, rng.randint(1024, 65535),
                rng.randint(1, 65535), proto=17, payload=512) for i in range(n)]  # fmt: skip


def low_rate_flood(seconds: int = 120, per_second: int = 2) -> list[Pkt]:
    """Two SYNs a second from forged sources for two minutes (under any volume threshold)."""
    rng = random.Random(3)
    return [Pkt(t * S + k * (S // per_second), _spoofed(rng), VICTIM, rng.randint(1024, 65535),
                443, flags=SYN) for t in range(seconds) for k in range(per_second)]  # fmt: skip


def port_scan(ports: int = 200) -> list[Pkt]:
    """A SYN scan of 200 ports from one source; closed ports answer with RST."""
    out = []
    for i, port in enumerate(range(1, ports + 1)):
        out.append(Pkt(i * 5_000, "203.0.113.9", VICTIM, 55555, port, flags=SYN))
        out.append(Pkt(i * 5_000 + 200, VICTIM, "203.0.113.9", port, 55555, flags=4 | ACK))
    return out


def benign_bursts() -> list[Pkt]:
    """Busy but benign: 30 clients each open 20 complete HTTP connections in one second, a
    big download, and DNS queries answered from port 53."""
    out: list[Pkt] = []
    for c in range(30):
        client = f"10.1.0.{c + 1}"
        for k in range(20):
            t = (c * 20 + k) * 1_500
            sport = 40_000 + c * 100 + k
            out += [
                Pkt(t, client, VICTIM, sport, 80, flags=SYN),
                Pkt(t + 100, VICTIM, client, 80, sport, flags=SYN | ACK),
                Pkt(t + 200, client, VICTIM, sport, 80, flags=ACK),
                Pkt(t + 300, client, VICTIM, sport, 80, flags=PSH | ACK, payload=300),
                Pkt(t + 400, VICTIM, client, 80, sport, flags=PSH | ACK, payload=1400),
                Pkt(t + 500, client, VICTIM, sport, 80, flags=FIN | ACK),
                Pkt(t + 600, VICTIM, client, 80, sport, flags=FIN | ACK),
            ]
    for i in range(1_500):  # a download: 1,500 full segments in 3 s
        out.append(Pkt(2 * S + i * 2_000, VICTIM, "10.1.0.1", 80, 41_000, flags=ACK,
                       payload=1400))  # fmt: skip
    for i in range(200):  # DNS: 200 queries from ephemeral ports, answered
        out.append(Pkt(6 * S + i * 10_000, "10.1.0.2", "10.1.0.53", 30_000 + i, 53, proto=17,
                       payload=40))  # fmt: skip
        out.append(Pkt(6 * S + i * 10_000 + 300, "10.1.0.53", "10.1.0.2", 53, 30_000 + i,
                       proto=17, payload=120))  # fmt: skip
    return sorted(out, key=lambda p: p.t_us)


def test_spoofed_syn_flood_is_one_incident_with_every_packet() -> None:
    incidents, _, stats = incidents_of(pcap_bytes(spoofed_syn_flood()))
    assert stats.meter["single_dropped"] == 5_000  # the flow model sees none of them
    assert len(incidents) == 1
    inc = incidents[0]
    assert (inc.target_ip, inc.target_port, inc.protocol) == (VICTIM, 80, "tcp")
    assert (inc.family, inc.label, inc.detection) == ("DDoS", "SYN flood", "aggregate")
    assert inc.to_target.packets == 5_000 and inc.from_target.packets == 0
    assert inc.sources >= 4_900 and inc.spoofing_suspected
    assert inc.state == "closed" and inc.confidence == 1.0
    assert inc.evidence and inc.evidence[0]["half_open"] > 0


def test_udp_flood_to_random_ports() -> None:
    incidents, _, _ = incidents_of(pcap_bytes(udp_flood()))
    assert len(incidents) == 1
    inc = incidents[0]
    assert (inc.target_ip, inc.target_port, inc.protocol) == (VICTIM, None, "udp")
    assert inc.family == "DDoS" and inc.label == "UDP flood"
    assert inc.to_target.packets == 4_000 and inc.to_target.bytes == 4_000 * (8 + 512)
    assert inc.sources == 2_000 and not inc.spoofing_suspected  # two packets per source


def test_low_rate_flood_is_one_incident_over_its_whole_span() -> None:
    pkts = low_rate_flood()
    incidents, _, _ = incidents_of(pcap_bytes(pkts))
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.label == "SYN flood" and inc.target_port == 443
    assert inc.to_target.packets >= 0.95 * len(pkts)
    assert inc.duration_s >= 0.9 * 120


def test_port_scan_is_a_portscan_incident_not_a_flood() -> None:
    incidents, _, _ = incidents_of(pcap_bytes(port_scan()))
    assert [(i.family, i.target_ip, i.target_port) for i in incidents] == [
        ("PortScan", VICTIM, None)
    ]
    assert incidents[0].top_sources == [("203.0.113.9", 200)]
    assert incidents[0].evidence[0]["ports"] == 200


def test_benign_bursts_do_not_alert() -> None:
    incidents, aggregate, stats = incidents_of(pcap_bytes(benign_bursts()))
    assert stats.packets == 30 * 20 * 7 + 1_500 + 400
    assert aggregate.windows.windows > 0  # the windows were evaluated
    assert incidents == []


def test_incident_events_open_update_close_at_a_bounded_rate() -> None:
    aggregate = Aggregate(live=True)  # as watch: incidents open and change while it runs
    events = []

    def tap(pk: object) -> None:
        aggregate.tap(pk)  # type: ignore[arg-type]  # Packets, from the pipeline
        events.extend(aggregate.events())

    pkts = low_rate_flood(seconds=300)
    for _ in iter_flow_arrays(pcap_bytes(pkts), tap=tap, batch_packets=100):
        pass
    aggregate.finish()
    events += aggregate.events()
    states = [e.state for e in events]
    assert states[0] == "open" and states[-1] == "closed"
    assert set(states[1:-1]) == {"update"}
    assert len(states) - 2 <= 300 // 10  # at most one update per 10 s of traffic


STOPDDOS = sorted(PCAPS.glob("attack/stopddos-*"))
BENIGN = sorted(PCAPS.glob("benign/*.pcap*"))


@pytest.mark.skipif(not STOPDDOS, reason="the shared stopddos captures are not here")
@pytest.mark.parametrize("path", STOPDDOS, ids=lambda p: p.name)
def test_each_real_flood_is_one_incident_covering_its_packets(path: Path) -> None:
    incidents, _, _ = incidents_of(path)
    from flowsentinel.capture.decode import decode, new_counters
    from flowsentinel.capture.pcap import ReadCounters, iter_records
    from flowsentinel.capture.windows import address

    to: dict[str, int] = {}
    counters = new_counters()
    for batch in iter_records(path, ReadCounters()):
        pk = decode(batch, counters)
        for hi, lo in zip(pk.dst_hi.tolist(), pk.dst_lo.tolist(), strict=True):
            if hi or lo:
                key = address(hi, lo)
                to[key] = to.get(key, 0) + 1
    target, packets = max(to.items(), key=lambda kv: kv[1])
    on_target = [i for i in incidents if i.target_ip == target]
    assert len(on_target) == 1, [(i.target_ip, i.family, i.label) for i in incidents]
    assert on_target[0].to_target.packets >= 0.95 * packets
    assert on_target[0].family in ("DoS", "DDoS")


@pytest.mark.skipif(not BENIGN, reason="the shared benign captures are not here")
def test_no_incident_on_the_benign_captures() -> None:
    opened = {p.name: incidents_of(p)[0] for p in BENIGN}
    assert {k: v for k, v in opened.items() if v} == {}


def test_a_flow_finished_after_its_incident_closed_joins_it() -> None:
    from flowsentinel.incidents import IncidentBuilder

    b = IncidentBuilder(min_flows=1)
    hit_first = 1_500_000_000_000_000
    b.advance(hit_first + 600_000_000)  # ten minutes later: nothing open
    records = [
        {"label": "DoS Hulk", "dst_ip": VICTIM, "dst_port": 80, "protocol": "tcp",
         "start": "2017-07-14T02:40:00+00:00", "duration_s": 1.0, "fwd_packets": 3,
         "bwd_packets": 2, "fwd_bytes": 10, "bwd_bytes": 20, "src_ip": "192.0.2.1",
         "probability": 0.9},
    ]  # fmt: skip
    b.add_flows(records, "BENIGN")
    b.add_flows(records, "BENIGN")  # the same attack, its second flow, as late
    assert len(b.incidents) == 1 and b.incidents[0].flows == 2
    assert b.incidents[0].to_target.packets == 6 and b.incidents[0].state == "closed"


def test_flows_command_says_where_every_packet_went(tmp_path: Path) -> None:
    import json

    from tests.capture.craft import tcp_session
    from typer.testing import CliRunner

    from flowsentinel.cli.main import app

    cap = tmp_path / "flood.pcap"
    cap.write_bytes(pcap_bytes(tcp_session() + spoofed_syn_flood(n=300)[1:]))
    result = CliRunner().invoke(app, ["flows", str(cap), "-o", str(tmp_path / "f.csv")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "single-packet flows left out (CIC parity) │ 299" in text
    # the session's 9 packets are in its two flows; the 299 forged SYNs are flows of one
    as_json = CliRunner().invoke(app, ["flows", str(cap), "-o", str(tmp_path / "g.csv"), "--json"])
    stats = json.loads(as_json.stdout[as_json.stdout.index("{") :])
    single = stats["flow_ends"]["single_dropped"]
    assert stats["flow_packets"] + single == stats["packets"] == 9 + 299


def test_flagged_windows_do_not_depend_on_batches_or_slices(tmp_path: Path) -> None:
    """The lab's flagged windows (figures, top sources, lead-ins) are the same read in one
    batch, in batches of a few thousand packets, and as four slices: ties are broken by
    value and a lead-in evaluated with the previous batch keeps its sources."""
    from flowsentinel.capture.pcap import split_ranges
    from flowsentinel.capture.windows import WindowDetector
    from flowsentinel.datasets.lab import build_lab

    pcap = tmp_path / "lab.pcap"
    pcap.write_bytes(build_lab(7, 0.3)[0])
    data = pcap.read_bytes()
    slices = []
    for k, (a, b) in enumerate(split_ranges(pcap, 4, min_bytes=1)):
        slices.append(tmp_path / f"slice-{k}.pcap")
        slices[-1].write_bytes(data[:24] + data[a:b])

    def hits(source: Any, batch: int = 65_536) -> list[Any]:
        detector, out = WindowDetector(), []

        def tap(pk: Any) -> None:
            detector.add(pk)
            out.extend(detector.take())

        for _ in iter_flow_arrays(source, tap=tap, batch_packets=batch):
            pass
        detector.flush()
        return out + detector.take()

    whole = hits(pcap)
    assert len(whole) > 20 and any(h.held and not h.figures for h in whole)  # lead-ins
    assert hits(pcap, batch=3_001) == whole
    assert hits([str(s) for s in slices]) == whole


def _random_packets(seed: int, n: int = 3_000) -> dict[str, Any]:
    """Packets of three windows between hosts whose IPv6 addresses share their low halves (the
    keys are 128 bits), ports and protocols drawn from small pools (ties for the dominant one)."""
    rng = np.random.default_rng(seed)
    v4 = [(0, 0xFFFF_0000_0000 | 0xC633_6400 | k) for k in range(1, 6)]
    v6 = [(0x2001_0DB8 << 32 | h, 7) for h in range(4)]
    hosts = v4 + v6
    src = rng.integers(0, len(hosts), n)
    dst = (src + rng.integers(1, len(hosts), n)) % len(hosts)
    proto = rng.choice([6, 6, 17, 1, -1], n)
    syn = (proto == 6) & (rng.random(n) < 0.4)
    return {
        "ts": np.sort(rng.integers(0, 3 * LONG, n)).astype(np.int64) + 1_700_000_000 * S,
        "shi": np.array([hosts[k][0] for k in src], np.uint64),
        "slo": np.array([hosts[k][1] for k in src], np.uint64),
        "dhi": np.array([hosts[k][0] for k in dst], np.uint64),
        "dlo": np.array([hosts[k][1] for k in dst], np.uint64),
        "sport": rng.choice([53, 80, 1024, 40000], n).astype(np.int32),
        "dport": rng.choice([22, 80, 443], n).astype(np.int32),
        "proto": proto.astype(np.int32),
        "bytes": rng.integers(40, 1500, n).astype(np.int64),
        "syn": syn,
        "synack": (proto == 6) & ~syn & (rng.random(n) < 0.3),
        "udp": proto == 17,
        "icmp": proto == 1,
        "frag": proto == -1,
    }


LONG = 10 * S


def _figures_one_by_one(p: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    """The host figures counted packet by packet (the reference for ``host_windows``)."""

    def top(counts: Counter) -> tuple[int, int]:
        value = min(v for v, k in counts.items() if k == max(counts.values()))
        return value, counts[value]

    rows = [dict(zip(p, values, strict=True)) for values in zip(*p.values(), strict=True)]
    into: dict[tuple, list] = defaultdict(list)
    out_of: dict[tuple, list] = defaultdict(list)
    for r in rows:
        w = int(r["ts"]) // LONG * LONG
        into[(w, int(r["dhi"]), int(r["dlo"]))].append(r)
        out_of[(w, int(r["shi"]), int(r["slo"]))].append(r)
    figures = {}
    for key, rs in into.items():
        per_source = Counter((int(r["shi"]), int(r["slo"])) for r in rs)
        udp_sources = {(int(r["shi"]), int(r["slo"])) for r in rs if r["udp"]}
        seconds = defaultdict(Counter)
        for r in rs:
            s = int(r["ts"]) // S
            seconds[s].update(packets=1, syn=int(r["syn"]), udp=int(r["udp"]), icmp=int(r["icmp"]))
        sent = out_of.get(key, [])
        f = {
            "packets_in": len(rs), "bytes_in": sum(int(r["bytes"]) for r in rs),
            "first_us": min(int(r["ts"]) for r in rs), "last_us": max(int(r["ts"]) for r in rs),
            "syn_in": sum(map(int, (r["syn"] for r in rs))),
            "fragments_in": sum(map(int, (r["frag"] for r in rs))),
            "sources": len(per_source), "udp_sources": len(udp_sources),
            "one_packet_sources": sum(1 for k in per_source.values() if k == 1),
            "packets_out": len(sent), "syn_out": sum(int(r["syn"]) for r in sent),
            "synack_out": sum(int(r["synack"]) for r in sent),
            **{f"{name}_1s": max(c[name] for c in seconds.values())
               for name in ("packets", "syn", "udp", "icmp")},
        }  # fmt: skip
        for column in ("dport", "sport", "proto"):
            value, count = top(Counter(int(r[column]) for r in rs))
            f[f"top_{column}"], f[f"top_{column}_share"] = value, count / len(rs)
        f["half_open"] = max(0, f["syn_in"] - f["synack_out"])
        figures[key] = f
    return figures


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_host_figures_equal_a_count_packet_by_packet(seed: int) -> None:
    """``host_windows`` and ``top_sources`` (dense codes, bincounts) against a count made one
    packet at a time: 128-bit host keys, ties of the dominant port broken by the smallest."""
    p = _random_packets(seed)
    p["skey"] = p["slo"] ^ (p["shi"] * np.uint64(0x9E3779B97F4A7C15))
    df = pl.DataFrame(p).with_columns((pl.col("ts") // LONG * LONG).alias("w"))
    hosts = host_windows(df)
    expected = _figures_one_by_one(p)
    got = {(r["w"], r["dhi"], r["dlo"]): r for r in hosts.iter_rows(named=True)}
    assert got.keys() == expected.keys() and len(got) > 20
    for key, figures in expected.items():
        assert {k: got[key][k] for k in figures} == figures, key
    cols = {c: df[c].to_numpy() for c in df.columns}
    tops = top_sources(cols, hosts, k=3)
    for (w, dhi, dlo), sources in tops.items():
        rows = (cols["w"] == w) & (cols["dhi"] == dhi) & (cols["dlo"] == dlo)
        counts: dict[tuple[int, int], int] = {}
        for hi, lo in zip(cols["shi"][rows].tolist(), cols["slo"][rows].tolist(), strict=True):
            counts[(hi, lo)] = counts.get((hi, lo), 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert sources == [(address(hi, lo), n) for (hi, lo), n in ranked]
    assert len(tops) == hosts.height
