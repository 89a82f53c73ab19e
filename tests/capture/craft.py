"""Hand-made packets for the capture tests, built with dpkt (independent of our decoder)."""

from __future__ import annotations

import io
import socket
import struct
from dataclasses import dataclass, field

import dpkt

T0 = 1_500_000_000  # whole seconds: every offset below is an exact number of microseconds

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128


@dataclass
class Pkt:
    """One packet of a scenario: time offset (µs), direction, TCP flags or UDP, payload size."""

    t_us: int
    src: str
    dst: str
    sport: int
    dport: int
    proto: int = 6  # 6 TCP, 17 UDP, 1 ICMP
    flags: int = ACK
    payload: int = 0
    win: int = 1000
    tcp_options: bytes = b""
    extra: dict = field(default_factory=dict)


def _ip(p: Pkt) -> dpkt.Packet:
    v6 = ":" in p.src
    if p.proto == 6:
        l4 = dpkt.tcp.TCP(
            sport=p.sport, dport=p.dport, seq=1000, ack=1, flags=p.flags, win=p.win,
            opts=p.tcp_options, data=b"x" * p.payload,
        )  # fmt: skip
        l4.off = (20 + len(p.tcp_options)) // 4
    elif p.proto == 17:
        l4 = dpkt.udp.UDP(sport=p.sport, dport=p.dport, data=b"u" * p.payload)
        l4.ulen = 8 + p.payload
    else:
        l4 = dpkt.icmp.ICMP(
            type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"i" * p.payload)
        )
    if v6:
        ip = dpkt.ip6.IP6(
            src=socket.inet_pton(socket.AF_INET6, p.src),
            dst=socket.inet_pton(socket.AF_INET6, p.dst),
            nxt=p.proto, hlim=64, data=l4,
        )  # fmt: skip
        ip.plen = len(bytes(l4))
        return ip
    ip = dpkt.ip.IP(
        src=socket.inet_aton(p.src), dst=socket.inet_aton(p.dst), p=p.proto, ttl=64, data=l4
    )
    ip.len = 20 + len(bytes(l4))
    return ip


def frame(p: Pkt, link: str = "eth", pad: bool = False) -> bytes:
    """The packet's bytes under one link layer (Ethernet frames padded to 60 bytes)."""
    ip = _ip(p)
    raw = bytes(ip)
    etype = 0x86DD if ":" in p.src else 0x0800
    if link == "eth":
        data = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=raw))
        if pad and len(data) < 60:
            data += b"\x00" * (60 - len(data))
        return data
    if link == "vlan":
        eth = b"\x04" * 6 + b"\x02" * 6 + struct.pack("!HHH", 0x8100, 42, etype)
        data = eth + raw
        return data + b"\x00" * max(0, 60 - len(data)) if pad else data
    if link == "qinq":
        eth = b"\x04" * 6 + b"\x02" * 6 + struct.pack("!HHHHH", 0x88A8, 7, 0x8100, 42, etype)
        return eth + raw
    if link == "sll":
        return bytes(
            dpkt.sll.SLL(
                type=0, hrd=1, hlen=6, hdr=b"\x02" * 6 + b"\x00\x00", ethtype=etype, data=raw
            )
        )
    if link == "sll2":
        return struct.pack("!HHIHBB8s", etype, 0, 1, 1, 0, 6, b"\x02" * 8) + raw
    if link == "raw":
        return raw
    if link == "null":
        return struct.pack("<I", 30 if ":" in p.src else 2) + raw
    if link == "loop":
        return struct.pack(">I", 30 if ":" in p.src else 2) + raw
    raise ValueError(link)


LINKTYPES = {
    "eth": dpkt.pcap.DLT_EN10MB,
    "vlan": dpkt.pcap.DLT_EN10MB,
    "qinq": dpkt.pcap.DLT_EN10MB,
    "sll": 113,
    "sll2": 276,
    "raw": 101,
    "null": 0,
    "loop": 108,
}


def pcap_bytes(
    pkts: list[Pkt], link: str = "eth", *, nano: bool = False, pad: bool = False
) -> bytes:
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, snaplen=65535, linktype=LINKTYPES[link])
    for p in pkts:
        w.writepkt(frame(p, link, pad), ts=T0 + p.t_us / 1e6)
    data = buf.getvalue()
    return to_nanoseconds(data) if nano else data


def to_nanoseconds(data: bytes) -> bytes:
    """The same little-endian pcap with nanosecond timestamps (exact: fractions × 1000)."""
    out = bytearray(b"\x4d\x3c\xb2\xa1" + data[4:24])
    pos = 24
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[pos : pos + 16])
        out += struct.pack("<IIII", sec, usec * 1000, incl, orig) + data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
    return bytes(out)


def pcapng_bytes(pkts: list[Pkt], link: str = "eth", *, pad: bool = False) -> bytes:
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf, snaplen=65535, linktype=LINKTYPES[link])
    for p in pkts:
        w.writepkt(frame(p, link, pad), ts=T0 + p.t_us / 1e6)
    return buf.getvalue()


C, S = "10.0.0.1", "10.0.0.2"


def tcp_session() -> list[Pkt]:
    """Handshake, one request, one response, client FIN, then the teardown appendix."""
    return [
        Pkt(0, C, S, 40000, 80, flags=SYN, win=29200),
        Pkt(100, S, C, 80, 40000, flags=SYN | ACK, win=28960),
        Pkt(250, C, S, 40000, 80, flags=ACK, win=229),
        Pkt(1000, C, S, 40000, 80, flags=PSH | ACK, payload=100, win=229),
        Pkt(1300, S, C, 80, 40000, flags=ACK, win=235),
        Pkt(2000, S, C, 80, 40000, flags=PSH | ACK, payload=500, win=235),
        Pkt(2100, C, S, 40000, 80, flags=FIN | ACK, win=229),
        Pkt(2200, S, C, 80, 40000, flags=FIN | ACK, win=235),
        Pkt(2300, C, S, 40000, 80, flags=ACK, win=229),
    ]


def udp_idle_session() -> list[Pkt]:
    """A UDP exchange with two gaps above the 5 s activity timeout."""
    s = 1_000_000
    return [
        Pkt(0, C, S, 5353, 53, proto=17, payload=40),
        Pkt(1 * s, S, C, 53, 5353, proto=17, payload=120),
        Pkt(2 * s, C, S, 5353, 53, proto=17, payload=40),
        Pkt(10 * s, C, S, 5353, 53, proto=17, payload=60),
        Pkt(10 * s + 500_000, S, C, 53, 5353, proto=17, payload=200),
        Pkt(16 * s + 500_000, C, S, 5353, 53, proto=17, payload=10),
    ]
