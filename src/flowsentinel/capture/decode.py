"""Decode link, IP and transport headers of a record batch in one numba loop.

Supported link types: Ethernet (with any number of 802.1Q / 802.1ad VLAN tags), Linux cooked
capture v1 (SLL) and v2 (SLL2), raw IP (LINKTYPE_RAW, DLT_RAW, LINKTYPE_IPV4/IPV6), BSD
loopback (DLT_NULL, DLT_LOOP). Network layer IPv4 and IPv6 (extension headers followed);
transport TCP, UDP, ICMP and ICMPv6. Every packet that cannot be decoded gets a reason code and
is counted; nothing raises.

Addresses are kept as two unsigned 64-bit halves; an IPv4 address is stored in its IPv4-mapped
IPv6 form (``::ffff:a.b.c.d``) so that one key layout serves both families.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from flowsentinel.capture.kernels import kernel
from flowsentinel.capture.pcap import RecordBatch

# reasons a packet is not metered (index into the counters array)
OK: Final = 0
NON_IP: Final = 1
UNSUPPORTED_LINK: Final = 2
TRUNCATED: Final = 3
BAD_IP_HEADER: Final = 4
IP_FRAGMENT: Final = 5
OTHER_TRANSPORT: Final = 6
BAD_TRANSPORT_HEADER: Final = 7
REASONS: Final[tuple[str, ...]] = (
    "decoded",
    "not_ip",
    "unsupported_link_type",
    "truncated_headers",
    "bad_ip_header",
    "ip_fragment",
    "other_transport",
    "bad_transport_header",
)

LINK_NAMES: Final[dict[int, str]] = {
    0: "BSD loopback (NULL)",
    1: "Ethernet",
    12: "raw IP",
    14: "raw IP",
    101: "raw IP",
    108: "OpenBSD loopback",
    113: "Linux cooked (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2 (SLL2)",
}

V4_MAPPED: Final = np.uint64(0xFFFF00000000)

TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMP6: Final = 58


@dataclass
class Packets:
    """Decoded header fields, one entry per record (``reason != 0`` means not decodable)."""

    reason: np.ndarray  # int8
    ts: np.ndarray  # int64 µs
    v6: np.ndarray  # int8
    src_hi: np.ndarray  # uint64
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray  # int32
    dport: np.ndarray
    proto: np.ndarray  # int32
    payload: np.ndarray  # int32, transport payload bytes (IP length based)
    payload_frame: np.ndarray  # int32, up to the end of the frame (link padding included)
    hdr: np.ndarray  # int32, transport header bytes
    flags: np.ndarray  # int32, TCP flags byte
    win: np.ndarray  # int32, TCP window (-1 when not TCP)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@kernel(inline=True)
def _be16(b, p):  # pragma: no cover - numba
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@kernel(inline=True)
def _be64(b, p):  # pragma: no cover - numba
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(b[p + k])
    return v


@kernel(inline=True)
def _link_layer(buf, p, cap, end, lt):  # pragma: no cover - numba
    """The link header at ``p`` (VLAN tags included): (reason, ethertype, start of the network
    header); the reason is NON_IP when the ethertype is neither IPv4 nor IPv6."""
    etype: int | np.int64 = np.int64(-1)
    reason = OK
    if lt == 1 or lt == 113 or lt == 276:
        # Ethernet, Linux cooked v1 and v2: (header length, offset of the ethertype)
        size, at = (14, 12) if lt == 1 else ((16, 14) if lt == 113 else (20, 0))
        if cap < size:
            reason = TRUNCATED
        else:
            etype = _be16(buf, p + at)
            p += size
    elif lt == 101 or lt == 12 or lt == 14 or lt == 228 or lt == 229:
        if cap < 1:
            reason = TRUNCATED
        else:
            ver = buf[p] >> 4
            etype = 0x0800 if ver == 4 else (0x86DD if ver == 6 else 0)
    elif lt == 0 or lt == 108:
        if cap < 4:
            reason = TRUNCATED
        else:
            etype = _loopback_ethertype(buf, p, lt)
            p += 4
    else:
        reason = UNSUPPORTED_LINK
    # VLAN tags (802.1Q, 802.1ad, QinQ)
    while reason == OK and (etype == 0x8100 or etype == 0x88A8 or etype == 0x9100):
        if p + 4 > end:
            reason = TRUNCATED
        else:
            etype = _be16(buf, p + 2)
            p += 4
    if reason == OK and etype != 0x0800 and etype != 0x86DD:
        reason = NON_IP
    return reason, etype, p


@kernel(inline=True)
def _loopback_ethertype(buf, p, lt):  # pragma: no cover - numba
    """The ethertype of a BSD loopback header's address family (host byte order for DLT_NULL,
    network order for DLT_LOOP); 0 when neither IPv4 nor IPv6."""
    fam = (
        np.int64(buf[p])
        | (np.int64(buf[p + 1]) << 8)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 3]) << 24)
    )
    if lt == 108 or fam > 0xFFFF:
        fam = (
            (np.int64(buf[p]) << 24)
            | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8)
            | np.int64(buf[p + 3])
        )
    return (
        0x0800
        if fam == 2
        else (0x86DD if (fam == 10 or fam == 23 or fam == 24 or fam == 28 or fam == 30) else 0)
    )


@kernel(inline=True)
def _ipv4(buf, p, end, wire_end):  # pragma: no cover - numba
    """The IPv4 header at ``p``: (reason, protocol, end of the IP packet, start of the transport
    header, whether the addresses were read, then the addresses as source high and low halves,
    destination high and low halves). The addresses are returned, not stored: a helper given
    the output arrays made the loop ~35% slower (inlined or not)."""
    proto = np.int64(-1)
    ip_end = end
    reason = OK
    got = False
    shi_ = np.uint64(0)
    slo_ = np.uint64(0)
    dhi_ = np.uint64(0)
    dlo_ = np.uint64(0)
    if p + 20 > end:
        reason = TRUNCATED
    elif (buf[p] >> 4) != 4 or (buf[p] & 15) < 5:
        reason = BAD_IP_HEADER
    else:
        ihl = np.int64(buf[p] & 15) * 4
        tot = _be16(buf, p + 2)
        frag = _be16(buf, p + 6) & 0x1FFF
        proto = np.int64(buf[p + 9])
        s = np.uint64(
            (np.int64(buf[p + 12]) << 24) | (np.int64(buf[p + 13]) << 16)
            | (np.int64(buf[p + 14]) << 8) | np.int64(buf[p + 15])
        )  # fmt: skip
        d = np.uint64(
            (np.int64(buf[p + 16]) << 24) | (np.int64(buf[p + 17]) << 16)
            | (np.int64(buf[p + 18]) << 8) | np.int64(buf[p + 19])
        )  # fmt: skip
        got = True
        slo_ = V4_MAPPED | s
        dlo_ = V4_MAPPED | d
        if tot == 0:  # segmentation offload: the length field is not filled in
            ip_end = wire_end
        elif tot < ihl:
            reason = BAD_IP_HEADER
        else:
            ip_end = p + tot
        if frag != 0:
            reason = IP_FRAGMENT
        p += ihl
        if reason == OK and p > end:
            reason = TRUNCATED
    return reason, proto, ip_end, p, got, shi_, slo_, dhi_, dlo_


@kernel(inline=True)
def _ipv6(buf, p, end, wire_end):  # pragma: no cover - numba
    """The IPv6 header at ``p`` and its extension headers (hop-by-hop, routing, destination
    options, fragment); returns what :func:`_ipv4` returns."""
    proto = np.int64(-1)
    ip_end = end
    reason = OK
    got = False
    shi_ = np.uint64(0)
    slo_ = np.uint64(0)
    dhi_ = np.uint64(0)
    dlo_ = np.uint64(0)
    if p + 40 > end:
        reason = TRUNCATED
    elif (buf[p] >> 4) != 6:
        reason = BAD_IP_HEADER
    else:
        plen = _be16(buf, p + 4)
        nh = np.int64(buf[p + 6])
        got = True
        shi_ = _be64(buf, p + 8)
        slo_ = _be64(buf, p + 16)
        dhi_ = _be64(buf, p + 24)
        dlo_ = _be64(buf, p + 32)
        ip_end = p + 40 + plen if plen > 0 else wire_end
        p += 40
        while reason == OK and (nh == 0 or nh == 43 or nh == 60 or nh == 44):
            if p + 8 > end:
                reason = TRUNCATED
            elif nh == 44:
                if (_be16(buf, p + 2) & 0xFFF8) != 0:
                    reason = IP_FRAGMENT
                nh = np.int64(buf[p])
                p += 8
            else:
                nh = np.int64(buf[p])
                p += (np.int64(buf[p + 1]) + 1) * 8
        proto = nh
    return reason, proto, ip_end, p, got, shi_, slo_, dhi_, dlo_


@kernel(inline=True)
def _transport(buf, p, end, proto):  # pragma: no cover - numba
    """The TCP, UDP, ICMP or ICMPv6 header at ``p``: (reason, source port, destination port,
    header bytes, TCP flags, TCP window or -1)."""
    reason = OK
    sport = np.int64(0)
    dport = np.int64(0)
    th: int | np.int64 = np.int64(0)
    fl = np.int64(0)
    w = np.int64(-1)
    if proto == TCP:
        if p + 20 > end:
            reason = TRUNCATED
        else:
            th = np.int64(buf[p + 12] >> 4) * 4
            if th < 20:
                reason = BAD_TRANSPORT_HEADER
            elif p + th > end:
                reason = TRUNCATED
            else:
                sport = _be16(buf, p)
                dport = _be16(buf, p + 2)
                fl = np.int64(buf[p + 13])
                w = _be16(buf, p + 14)
    elif proto == UDP:
        if p + 8 > end:
            reason = TRUNCATED
        else:
            sport = _be16(buf, p)
            dport = _be16(buf, p + 2)
            th = 8
    elif proto == ICMP or proto == ICMP6:  # noqa: SIM109 (numba)
        if p + 8 > end:
            reason = TRUNCATED
        else:
            th = 8
    else:
        reason = OTHER_TRANSPORT
    return reason, sport, dport, th, fl, w


@kernel(
    "void(uint8[:], int64[:], int32[:], int32[:], int32[:], int8[:], int8[:], uint64[:], "
    "uint64[:], uint64[:], uint64[:], int32[:], int32[:], int32[:], int32[:], int32[:], "
    "int32[:], int32[:], int32[:], int64[:])"
)
def _decode(buf, offs, caps, wires, links, out_reason, v6, shi, slo, dhi, dlo, sp, dp, pr,
            pay, payf, hdr, flg, win, counters):  # fmt: skip  # pragma: no cover - numba
    n = offs.shape[0]
    for i in range(n):
        base = offs[i]
        cap = np.int64(caps[i])
        end = base + cap
        wire_end = base + np.int64(wires[i])
        reason, etype, p = _link_layer(buf, base, cap, end, links[i])
        proto = np.int64(-1)
        ip_end = end
        is6 = 0
        if reason == OK:
            if etype == 0x0800:
                reason, proto, ip_end, p, got, shi_, slo_, dhi_, dlo_ = _ipv4(buf, p, end, wire_end)
            else:
                is6 = 1
                reason, proto, ip_end, p, got, shi_, slo_, dhi_, dlo_ = _ipv6(buf, p, end, wire_end)
            if got:  # stored even when the packet is not metered (as they always were)
                shi[i] = shi_
                slo[i] = slo_
                dhi[i] = dhi_
                dlo[i] = dlo_
        sport = np.int64(0)
        dport = np.int64(0)
        th = np.int64(0)
        fl = np.int64(0)
        w = np.int64(-1)
        if reason == OK:
            reason, sport, dport, th, fl, w = _transport(buf, p, end, proto)
        out_reason[i] = reason
        counters[reason] += 1
        if reason != OK:
            continue
        v6[i] = is6
        sp[i] = sport
        dp[i] = dport
        pr[i] = proto
        hdr[i] = th
        flg[i] = fl
        win[i] = w
        pl = ip_end - p - th
        pay[i] = pl if pl > 0 else 0
        plf = wire_end - p - th
        payf[i] = plf if plf > 0 else 0


def decode(batch: RecordBatch, counters: np.ndarray) -> Packets:
    """Decode the headers of every record of a batch; adds to ``counters`` (one per reason)."""
    n = len(batch)
    pk = Packets(
        reason=np.empty(n, np.int8),
        ts=batch.ts_us,
        v6=np.zeros(n, np.int8),
        src_hi=np.zeros(n, np.uint64),
        src_lo=np.zeros(n, np.uint64),
        dst_hi=np.zeros(n, np.uint64),
        dst_lo=np.zeros(n, np.uint64),
        sport=np.zeros(n, np.int32),
        dport=np.zeros(n, np.int32),
        proto=np.zeros(n, np.int32),
        payload=np.zeros(n, np.int32),
        payload_frame=np.zeros(n, np.int32),
        hdr=np.zeros(n, np.int32),
        flags=np.zeros(n, np.int32),
        win=np.full(n, -1, np.int32),
    )
    if n:
        _decode(
            batch.buf, batch.offset, batch.caplen, batch.wirelen, batch.linktype, pk.reason,
            pk.v6, pk.src_hi, pk.src_lo, pk.dst_hi, pk.dst_lo, pk.sport, pk.dport, pk.proto,
            pk.payload, pk.payload_frame, pk.hdr, pk.flags, pk.win, counters,
        )  # fmt: skip
    return pk


def new_counters() -> np.ndarray:
    """A zeroed counters array for :func:`decode`."""
    return np.zeros(len(REASONS), np.int64)
