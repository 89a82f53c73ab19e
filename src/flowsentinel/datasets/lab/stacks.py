"""TCP/IP stacks (initial TTL, SYN window, MSS, option layouts) and network paths (RTT, jitter,
loss, hop count, MSS clamping), drawn from distributions rather than constants."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stack:
    """What one operating system's TCP/IP stack puts on the wire."""

    name: str
    ttl: int
    syn_wins: tuple[int, ...]
    mss: int
    wscale: int  # -1: no window scale option
    sack: bool
    timestamps: bool
    layout: str  # option order in the SYN: linux, windows, mac, lwip
    rwnd_max: int  # largest receive window it grows to (bytes)
    delack_us: int  # delayed-ACK timer


STACKS: dict[str, Stack] = {
    "linux": Stack(
        "linux", 64, (64240, 29200, 65160), 1460, 7, True, True, "linux", 3_145_728, 40_000
    ),
    "windows": Stack(
        "windows", 128, (64240, 65535, 8192), 1460, 8, True, False, "windows", 4_194_304, 200_000
    ),
    "macos": Stack("macos", 64, (65535,), 1460, 6, True, True, "mac", 2_097_152, 100_000),
    "ios": Stack("ios", 64, (65535,), 1460, 5, True, True, "mac", 1_048_576, 100_000),
    "android": Stack(
        "android", 64, (65535, 64240), 1460, 9, True, True, "linux", 6_291_456, 40_000
    ),
    "iot": Stack("iot", 64, (5840, 2920, 1460), 536, -1, False, False, "lwip", 5840, 250_000),
    "netdev": Stack("netdev", 255, (4128, 16384), 536, -1, False, False, "lwip", 16384, 200_000),
}
#: client operating systems with their share of hosts
CLIENT_MIX: tuple[tuple[str, float], ...] = (
    ("windows", 0.38),
    ("linux", 0.12),
    ("macos", 0.14),
    ("ios", 0.12),
    ("android", 0.14),
    ("iot", 0.07),
    ("netdev", 0.03),
)


def draw_stack(rng: np.random.Generator) -> Stack:
    """A client stack drawn from :data:`CLIENT_MIX`."""
    names = [n for n, _ in CLIENT_MIX]
    share = np.array([w for _, w in CLIENT_MIX])
    return STACKS[names[int(rng.choice(len(names), p=share / share.sum()))]]


def _mss(value: int) -> bytes:
    """The MSS option."""
    return struct.pack("!BBH", 2, 4, value)


def syn_options(stack: Stack, mss: int, peer: Stack | None = None) -> tuple[bytes, int]:
    """The option bytes of a SYN (``peer`` None) or of a SYN-ACK answering ``peer``'s SYN, and
    the offset of TSval in them (-1 without timestamps)."""
    ts = stack.timestamps and (peer is None or peer.timestamps)
    ws = stack.wscale >= 0 and (peer is None or peer.wscale >= 0)
    sack = stack.sack and (peer is None or peer.sack)
    tsopt = b"\x08\x0a" + b"\0" * 8
    wsopt = b"\x03\x03" + bytes([max(stack.wscale, 0)])
    if stack.layout == "lwip":
        return _mss(mss), -1
    if stack.layout == "windows":
        opt = _mss(mss) + (b"\x01" + wsopt if ws else b"") + (b"\x01\x01\x04\x02" if sack else b"")
        return _pad(opt), -1
    if stack.layout == "mac":
        opt = _mss(mss) + (b"\x01" + wsopt if ws else b"")
        at = -1
        if ts:
            opt += b"\x01\x01"
            at = len(opt) + 2
            opt += tsopt
        opt += b"\x04\x02" if sack else b""
        return _pad(opt), at
    opt = _mss(mss)
    at = -1
    if ts:
        opt += b"\x04\x02" if sack else b"\x01\x01"
        at = len(opt) + 2
        opt += tsopt
    elif sack:
        opt += b"\x01\x01\x04\x02"
    if ws:
        opt += b"\x01" + wsopt
    return _pad(opt), at


def _pad(opt: bytes) -> bytes:
    """End-of-options bytes up to a multiple of 4."""
    return opt + b"\0" * (-len(opt) % 4)


@dataclass(frozen=True)
class NetPath:
    """One network path between a host and the capture point."""

    kind: str
    rtt_us: int
    jitter: float  # relative spread of each one-way delay
    loss: float
    hops: int
    mss_clamp: int  # 0: none
    bw: float  # bottleneck, bytes per microsecond


_PATHS = (  # kind, share, median RTT ms, sigma, jitter, loss, hops, bytes/µs
    ("lan", 0.30, 0.4, 0.6, 0.3, 0.0005, 0, 60.0),
    ("metro", 0.20, 8, 0.5, 0.15, 0.002, 6, 8.0),
    ("continental", 0.22, 45, 0.4, 0.1, 0.005, 12, 5.0),
    ("intercontinental", 0.15, 180, 0.3, 0.1, 0.01, 18, 3.0),
    ("mobile", 0.10, 70, 0.5, 0.5, 0.02, 14, 1.5),
    ("satellite", 0.03, 600, 0.1, 0.15, 0.02, 16, 1.0),
)
_CLAMPS = (0, 0, 0, 0, 0, 1452, 1400, 1380, 1360)  # PPPoE, VPNs


def draw_path(rng: np.random.Generator, kind: str | None = None, local: bool = False) -> NetPath:
    """A path: ``local`` forces the LAN, ``kind`` a named one, else drawn from the mix."""
    if local:
        kind = "lan"
    rows = {r[0]: r for r in _PATHS}
    if kind is None:
        share = np.array([r[1] for r in _PATHS[1:]])
        kind = _PATHS[1 + int(rng.choice(len(share), p=share / share.sum()))][0]
    _k, _s, median, sigma, jitter, loss, hops, bw = rows[kind]
    rtt = max(80, int(rng.lognormal(np.log(median * 1000), sigma)))
    lossy = float(loss * rng.uniform(0, 2.5))
    clamp = 0 if kind == "lan" else int(rng.choice(_CLAMPS))
    hop = hops + (int(rng.integers(-4, 8)) if hops else int(rng.integers(0, 2)))
    return NetPath(kind, rtt, jitter, lossy, max(hop, 0), clamp, bw * rng.uniform(0.3, 1.5))


def delays(rng: np.random.Generator, path: NetPath, n: int) -> np.ndarray:
    """``n`` one-way delays (µs) around half the path's RTT, with its jitter."""
    base = path.rtt_us / 2
    return (base * (1 + path.jitter * rng.exponential(1.0, n))).astype(np.int64)
