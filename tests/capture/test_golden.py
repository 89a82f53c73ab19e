"""Golden tests: hand-made captures whose every feature was computed by hand (in comments)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from craft import ACK, FIN, PSH, SYN, T0, C, Pkt, S, frame, pcap_bytes, pcapng_bytes, tcp_session
from craft import udp_idle_session as udp_session

from flowsentinel.capture import MeterConfig, Quirks, extract_flows
from flowsentinel.core.schema import CIC_FEATURES, CIC_IDENTIFIERS

ZERO_BULK = [
    "Fwd Avg Bytes/Bulk", "Fwd Avg Packets/Bulk", "Fwd Avg Bulk Rate", "Bwd Avg Bytes/Bulk",
    "Bwd Avg Packets/Bulk", "Bwd Avg Bulk Rate",
]  # fmt: skip


def flows_of(data: bytes, quirks: Quirks | None = None, **cfg: int) -> pd.DataFrame:
    df, stats = extract_flows(data, config=MeterConfig(quirks=quirks or Quirks(), **cfg))
    assert stats.problems == {}
    return df


def check(row: pd.Series, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        got = row[name]
        assert got == pytest.approx(value, rel=1e-9, abs=1e-9), f"{name}: {got} != {value}"


def sample_std(values: list[float]) -> float:
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


# The first flow of tcp_session(): packets p1..p7 (the FIN at 2100 µs closes it).
# forward (client): p1 SYN 0 B, p3 ACK 0 B, p4 PSH 100 B, p7 FIN 0 B; backward: p2 0, p5 0, p6 500
TCP_COMMON = {
    "Flow Duration": 2100,
    "Total Fwd Packets": 4,
    "Total Backward Packets": 3,
    "Total Length of Fwd Packets": 100,
    "Total Length of Bwd Packets": 500,
    "Fwd Packet Length Max": 100,
    "Fwd Packet Length Min": 0,
    "Fwd Packet Length Mean": 25,
    "Fwd Packet Length Std": 50,  # sqrt((3*25² + 75²)/3)
    "Bwd Packet Length Max": 500,
    "Bwd Packet Length Min": 0,
    "Bwd Packet Length Mean": 500 / 3,
    "Bwd Packet Length Std": sample_std([0, 0, 500]),
    "Flow Bytes/s": 600 / 0.0021,
    "Flow Packets/s": 7 / 0.0021,
    # flow IATs: 100 150 750 300 700 100
    "Flow IAT Mean": 350,
    "Flow IAT Std": sample_std([100, 150, 750, 300, 700, 100]),
    "Flow IAT Max": 750,
    "Flow IAT Min": 100,
    # forward IATs: 250 750 1100; backward: 1200 700
    "Fwd IAT Total": 2100,
    "Fwd IAT Mean": 700,
    "Fwd IAT Std": sample_std([250, 750, 1100]),
    "Fwd IAT Max": 1100,
    "Fwd IAT Min": 250,
    "Bwd IAT Total": 1900,
    "Bwd IAT Mean": 950,
    "Bwd IAT Std": sample_std([1200, 700]),
    "Bwd IAT Max": 1200,
    "Bwd IAT Min": 700,
    "Fwd Header Length": 80,
    "Bwd Header Length": 60,
    "Fwd Packets/s": 4 / 0.0021,
    "Bwd Packets/s": 3 / 0.0021,
    "Avg Fwd Segment Size": 25,
    "Avg Bwd Segment Size": 500 / 3,
    "Init_Win_bytes_forward": 29200,
    "act_data_pkt_fwd": 1,
    "min_seg_size_forward": 20,
    **{n: 0 for n in ["Active Mean", "Active Std", "Active Max", "Active Min"]},
    **{n: 0 for n in ["Idle Mean", "Idle Std", "Idle Max", "Idle Min"]},
    **{n: 0 for n in ZERO_BULK},
}


def test_tcp_session_cic2017_quirks() -> None:
    df = flows_of(pcap_bytes(tcp_session(), pad=False))
    assert list(df.columns) == [*CIC_IDENTIFIERS, *CIC_FEATURES]
    assert len(df) == 2  # the session and its teardown appendix
    first = df.iloc[0]
    assert first["Flow ID"] == "10.0.0.1-10.0.0.2-40000-80-6"
    assert (first["Source IP"], first["Source Port"]) == (C, 40000)
    assert (first["Destination IP"], first["Destination Port"], first["Protocol"]) == (S, 80, 6)
    assert first["Timestamp"] == "2017-07-14 02:40:00.000000"
    check(
        first,
        {
            **TCP_COMMON,
            # the first packet's length twice: 0 0 0 0 100 0 500 0 (n = 8)
            "Min Packet Length": 0,
            "Max Packet Length": 500,
            "Packet Length Mean": 75,
            "Packet Length Std": sample_std([0, 0, 0, 0, 100, 0, 500, 0]),
            "Packet Length Variance": sample_std([0, 0, 0, 0, 100, 0, 500, 0]) ** 2,
            "Average Packet Size": 600 / 7,
            # flags of the first packet (a SYN) only, in HashMap order: SYN sits under "PSH"
            "PSH Flag Count": 1,
            **{f"{f} Flag Count": 0 for f in ["FIN", "SYN", "RST", "ACK", "URG", "CWE", "ECE"]},
            "Fwd PSH Flags": 0,
            "Bwd PSH Flags": 0,
            "Down/Up Ratio": 0,  # 3 // 4
            "Init_Win_bytes_backward": 235,  # the last backward packet's window
            "Subflow Fwd Packets": 4,
            "Subflow Fwd Bytes": 100,
            "Subflow Bwd Packets": 3,
            "Subflow Bwd Bytes": 500,
        },
    )
    appendix = df.iloc[1]  # server FIN-ACK (starts a flow: FIN on a new flow does not end it)
    check(
        appendix,
        {"Total Fwd Packets": 1, "Total Backward Packets": 1, "Flow Duration": 100,
         "Init_Win_bytes_forward": 235, "Init_Win_bytes_backward": 229, "URG Flag Count": 1,
         "ACK Flag Count": 1},
    )  # fmt: skip
    assert appendix["Source IP"] == S


def test_tcp_session_corrected() -> None:
    df = flows_of(pcap_bytes(tcp_session(), pad=False), Quirks.none())
    first = df.iloc[0]
    lengths = [0, 0, 0, 100, 0, 500, 0]
    check(
        first,
        {
            **TCP_COMMON,
            "Min Packet Length": 0,
            "Max Packet Length": 500,
            "Packet Length Mean": 600 / 7,
            "Packet Length Std": sample_std(lengths),
            "Average Packet Size": 600 / 7,
            # every packet's flags, header order: FIN 1, SYN 2, RST 0, PSH 2, ACK 6
            "FIN Flag Count": 1,
            "SYN Flag Count": 2,
            "RST Flag Count": 0,
            "PSH Flag Count": 2,
            "ACK Flag Count": 6,
            "URG Flag Count": 0,
            "Fwd PSH Flags": 1,
            "Bwd PSH Flags": 1,
            "Down/Up Ratio": 0.75,
            "Init_Win_bytes_backward": 28960,  # the first backward packet (SYN-ACK)
            "Subflow Fwd Packets": 4,
            # the final active period is recorded: one period, 0 → 2100 µs (FIN included)
            "Active Mean": 2100,
            "Active Std": 0,
            "Active Max": 2100,
            "Active Min": 2100,
        },
    )


def test_udp_active_idle() -> None:
    df = flows_of(pcap_bytes(udp_session()))
    assert len(df) == 1
    row = df.iloc[0]
    # gaps above 5 s at 10 s (after 2 s of activity: idle 8 s) and 16.5 s (0.5 s active, 6 s idle)
    check(
        row,
        {
            "Protocol": 17,
            "Flow Duration": 16_500_000,
            "Total Fwd Packets": 4,
            "Total Backward Packets": 2,
            "Total Length of Fwd Packets": 150,
            "Total Length of Bwd Packets": 320,
            "Fwd Header Length": 32,
            "Bwd Header Length": 16,
            "min_seg_size_forward": 8,
            "Init_Win_bytes_forward": -1,
            "Init_Win_bytes_backward": -1,
            "act_data_pkt_fwd": 3,
            "Active Mean": 1_250_000,
            "Active Std": sample_std([2e6, 0.5e6]),
            "Active Max": 2_000_000,
            "Active Min": 500_000,
            "Idle Mean": 7_000_000,
            "Idle Std": sample_std([8e6, 6e6]),
            "Idle Max": 8_000_000,
            "Idle Min": 6_000_000,
            "Down/Up Ratio": 0,
            **{f"{f} Flag Count": 0 for f in ["FIN", "SYN", "RST", "PSH", "ACK", "URG"]},
        },
    )


def test_flow_cut_by_first_fin_and_later_packets_start_a_new_flow() -> None:
    pkts = [
        Pkt(0, C, S, 1, 2, flags=SYN),
        Pkt(10, C, S, 1, 2, flags=FIN | ACK),
        Pkt(20, C, S, 1, 2, flags=PSH | ACK, payload=7),
        Pkt(30, S, C, 2, 1, flags=ACK),
    ]
    df = flows_of(pcap_bytes(pkts))
    assert df["Total Fwd Packets"].tolist() == [2, 1]
    assert df["Total Backward Packets"].tolist() == [0, 1]
    assert df["Total Length of Fwd Packets"].tolist() == [0, 7]


def test_flow_timeout_and_single_packet_flows() -> None:
    s = 1_000_000
    pkts = [
        Pkt(0, C, S, 7, 8, proto=17, payload=1),
        Pkt(1 * s, S, C, 8, 7, proto=17, payload=2),
        # 121 s after the start: the flow ends; this backward packet starts the next flow, which
        # keeps the old direction (quirk) although its first packet is counted forward
        Pkt(121 * s, S, C, 8, 7, proto=17, payload=3),
        Pkt(122 * s, S, C, 8, 7, proto=17, payload=4),
        Pkt(130 * s, C, "10.9.9.9", 9, 9, proto=17, payload=5),  # a lone packet: never written
    ]
    df = flows_of(pcap_bytes(pkts), flow_timeout_us=120 * s)
    assert len(df) == 2
    a, b = df.iloc[0], df.iloc[1]
    check(a, {"Total Fwd Packets": 1, "Total Backward Packets": 1, "Flow Duration": s})
    assert b["Source IP"] == C  # the old direction
    check(b, {"Total Fwd Packets": 1, "Total Backward Packets": 1, "Total Length of Fwd Packets": 3,
              "Total Length of Bwd Packets": 4})  # fmt: skip
    corrected = flows_of(pcap_bytes(pkts), Quirks.none(), flow_timeout_us=120 * s)
    assert len(corrected) == 3  # the lone packet is a flow too
    follow = corrected[corrected["Source Port"] == 8].iloc[0]
    assert follow["Source IP"] == S
    assert follow["Total Fwd Packets"] == 2


def test_ethernet_padding_counts_as_payload_by_default() -> None:
    pkts = [Pkt(0, C, S, 1, 2, flags=SYN), Pkt(5, S, C, 2, 1, flags=SYN | ACK)]
    assert len(frame(pkts[0], pad=True)) == 60
    padded = flows_of(pcap_bytes(pkts, pad=True)).iloc[0]
    assert padded["Total Length of Fwd Packets"] == 6  # 54-byte frame padded to 60
    exact = flows_of(pcap_bytes(pkts, pad=True), Quirks().replace(payload_includes_padding=False))
    exact = exact.iloc[0]
    assert exact["Total Length of Fwd Packets"] == 0


def test_direction_by_address_only_on_one_host() -> None:
    lo = "127.0.0.1"
    pkts = [Pkt(0, lo, lo, 5000, 80, flags=SYN), Pkt(5, lo, lo, 80, 5000, flags=SYN | ACK)]
    quirky = flows_of(pcap_bytes(pkts)).iloc[0]
    assert (quirky["Total Fwd Packets"], quirky["Total Backward Packets"]) == (2, 0)
    exact = flows_of(pcap_bytes(pkts), Quirks().replace(direction_by_address_only=False)).iloc[0]
    assert (exact["Total Fwd Packets"], exact["Total Backward Packets"]) == (1, 1)


def test_ipv6_and_vlan_give_the_same_features_as_ipv4_ethernet() -> None:
    base = flows_of(pcap_bytes(tcp_session(), pad=False))
    v6_pkts = [
        Pkt(p.t_us, p.src.replace("10.0.0.", "2001:db8::"), p.dst.replace("10.0.0.", "2001:db8::"),
            p.sport, p.dport, p.proto, p.flags, p.payload, p.win)
        for p in tcp_session()
    ]  # fmt: skip
    v6 = flows_of(pcap_bytes(v6_pkts, pad=False))
    assert v6.iloc[0]["Source IP"] == "2001:db8::1"
    assert v6.iloc[0]["Flow ID"] == "2001:db8::1-2001:db8::2-40000-80-6"
    pd.testing.assert_frame_equal(
        v6[list(CIC_FEATURES)], base[list(CIC_FEATURES)], check_dtype=False
    )
    for link in ["vlan", "qinq", "sll", "sll2", "raw", "null", "loop"]:
        other = flows_of(pcap_bytes(tcp_session(), link, pad=False))
        pd.testing.assert_frame_equal(other, base, check_dtype=False, obj=link)


def test_pcapng_and_nanosecond_pcap_match_pcap() -> None:
    base = flows_of(pcap_bytes(tcp_session()))
    pd.testing.assert_frame_equal(flows_of(pcapng_bytes(tcp_session())), base)
    pd.testing.assert_frame_equal(flows_of(pcap_bytes(tcp_session(), nano=True)), base)


def test_icmp_flows() -> None:
    pkts = [
        Pkt(0, C, S, 0, 0, proto=1, payload=56),
        Pkt(300, S, C, 0, 0, proto=1, payload=56),
        Pkt(1_000_000, C, S, 0, 0, proto=1, payload=56),
    ]
    row = flows_of(pcap_bytes(pkts)).iloc[0]
    assert row["Protocol"] == 1
    check(row, {"Total Fwd Packets": 2, "Total Backward Packets": 1, "Fwd Header Length": 16,
                "Total Length of Fwd Packets": 112})  # fmt: skip


def test_zero_duration_rates_are_infinite_like_cicflowmeter() -> None:
    pkts = [Pkt(0, C, S, 1, 2, proto=17, payload=9), Pkt(0, C, S, 1, 2, proto=17, payload=9)]
    row = flows_of(pcap_bytes(pkts)).iloc[0]
    assert math.isinf(row["Flow Bytes/s"]) and math.isinf(row["Flow Packets/s"])
    assert row["Fwd Packets/s"] == 0
    assert flows_of(pcap_bytes(pkts), Quirks.none()).iloc[0]["Flow Bytes/s"] == 0


def test_bulk_and_subflows_when_corrected() -> None:
    s = 1_000_000
    pkts = [Pkt(0, C, S, 1, 2, flags=ACK, payload=100)]
    pkts += [Pkt(k * 1000, C, S, 1, 2, flags=ACK, payload=100) for k in range(1, 5)]
    pkts += [Pkt(3 * s + k * 1000, C, S, 1, 2, flags=ACK, payload=10) for k in range(2)]
    row = flows_of(pcap_bytes(pkts, pad=False), Quirks.none()).iloc[0]
    # one forward bulk: 5 packets of 100 B within 4 ms (counted from the 4th packet on)
    check(row, {"Fwd Avg Bytes/Bulk": 500, "Fwd Avg Packets/Bulk": 5,
                "Fwd Avg Bulk Rate": 500 / 0.004, "Bwd Avg Bytes/Bulk": 0,
                # a gap above 1 s splits two subflows
                "Subflow Fwd Packets": 7 // 2, "Subflow Fwd Bytes": 520 // 2})  # fmt: skip
    quirky = flows_of(pcap_bytes(pkts, pad=False)).iloc[0]
    check(quirky, {n: 0 for n in ZERO_BULK} | {"Subflow Fwd Packets": 7})


def test_timestamp_is_utc_with_microseconds() -> None:
    pkts = [Pkt(123_456, C, S, 1, 2, proto=17), Pkt(200_000, S, C, 2, 1, proto=17)]
    row = flows_of(pcap_bytes(pkts)).iloc[0]
    assert row["Timestamp"] == "2017-07-14 02:40:00.123456"
    assert T0 == 1_500_000_000
