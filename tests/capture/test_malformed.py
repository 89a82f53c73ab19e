"""Malformed captures: skipped and counted, never a crash."""

from __future__ import annotations

import struct

import dpkt
import pytest
from craft import C, Pkt, S, frame, pcap_bytes, pcapng_bytes, tcp_session, udp_idle_session

from flowsentinel.capture import extract_flows
from flowsentinel.core.errors import InputError


def _records(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every record of a little-endian pcap."""
    out, pos = [], 24
    while pos < len(data):
        incl = struct.unpack("<I", data[pos + 8 : pos + 12])[0]
        out.append((pos, 16 + incl))
        pos += 16 + incl
    return out


def test_truncated_file_keeps_every_whole_record() -> None:
    data = pcap_bytes(udp_idle_session())
    last_start, _ = _records(data)[-1]
    df, stats = extract_flows(data[: last_start + 20])  # cut inside the last record
    assert stats.packets == 5
    assert stats.read.truncated_records == 1
    assert int(df["Total Fwd Packets"].sum() + df["Total Backward Packets"].sum()) == 5


def test_corrupt_record_length_resynchronises() -> None:
    data = bytearray(pcap_bytes(udp_idle_session()))
    pos, _ = _records(bytes(data))[2]
    data[pos + 8 : pos + 12] = struct.pack("<I", 0x7FFFFFF0)  # an impossible captured length
    df, stats = extract_flows(bytes(data))
    assert stats.read.corrupt_records == 1
    assert stats.read.bytes_skipped > 0
    assert stats.packets == 5  # only the corrupt record is lost
    assert len(df) == 1


def test_packets_too_short_for_their_headers_are_counted() -> None:
    good = [frame(p) for p in udp_idle_session()]
    bad = [
        frame(Pkt(0, C, S, 1, 2, flags=2))[:40],  # TCP header cut
        frame(Pkt(0, C, S, 1, 2, proto=17))[:20],  # IP header cut
        b"\x00" * 8,  # not even an Ethernet header
        frame(Pkt(0, C, S, 1, 2))[:14] + b"\x45" + b"\x00" * 5,
    ]
    import io

    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, snaplen=65535)
    for k, f in enumerate(good + bad):
        w.writepkt(f, ts=1_500_000_000 + k)
    df, stats = extract_flows(buf.getvalue())
    assert stats.skipped["truncated_headers"] == 4
    assert stats.decoded == len(good)
    assert len(df) >= 1


def test_non_ip_fragments_and_other_transports_are_counted() -> None:
    import io

    arp = dpkt.ethernet.Ethernet(type=0x0806, data=b"\x00" * 28)
    ip = dpkt.ip.IP(src=b"\x01\x02\x03\x04", dst=b"\x05\x06\x07\x08", p=47, data=b"\x00" * 8)  # GRE
    frag = dpkt.ip.IP(src=b"\x01\x02\x03\x04", dst=b"\x05\x06\x07\x08", p=17, data=b"\x00" * 16)
    frag.offset = 800  # a non-first fragment: no transport header
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, snaplen=65535)
    for k, pkt in enumerate(
        [arp, dpkt.ethernet.Ethernet(data=ip), dpkt.ethernet.Ethernet(data=frag)]
    ):
        w.writepkt(bytes(pkt), ts=1_500_000_000 + k)
    _, stats = extract_flows(buf.getvalue())
    assert stats.skipped["not_ip"] == 1
    assert stats.skipped["other_transport"] == 1
    assert stats.skipped["ip_fragment"] == 1


def test_unknown_link_type_is_counted_not_fatal() -> None:
    data = bytearray(pcap_bytes(tcp_session()))
    data[20:24] = struct.pack("<I", 147)  # LINKTYPE_USER0
    df, stats = extract_flows(bytes(data))
    assert len(df) == 0
    assert stats.skipped["unsupported_link_type"] == len(tcp_session())
    assert stats.to_dict()["file"]["link_types"] == {"147 (unsupported)": 9}


def test_truncated_pcapng_keeps_the_whole_blocks() -> None:
    data = pcapng_bytes(udp_idle_session())
    df, stats = extract_flows(data[:-30])
    assert stats.read.truncated_records == 1
    assert stats.packets == 5
    assert len(df) == 1


def test_pcapng_with_a_corrupt_block_length_skips_only_that_block() -> None:
    data = bytearray(pcapng_bytes(udp_idle_session()))
    # the third enhanced packet block: corrupt its length
    pos = [i for i in range(0, len(data), 4) if data[i : i + 4] == struct.pack("<I", 6)][2]
    blen = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
    data[pos + 4 : pos + 8] = struct.pack("<I", 7)
    _, stats = extract_flows(bytes(data))
    assert stats.read.corrupt_records == 1
    assert stats.read.damaged_ranges == [(pos, blen)]
    assert stats.packets == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not a capture at all", "not a pcap or pcapng"),
        (b"PAR1" + b"\x00" * 40, "not a pcap or pcapng"),
    ],
)
def test_not_a_capture_is_one_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        extract_flows(data)


def test_header_only_capture_has_no_flows() -> None:
    data = pcap_bytes([])
    df, stats = extract_flows(data)
    assert len(df) == 0 and stats.packets == 0
    assert "Flow ID" in df.columns
