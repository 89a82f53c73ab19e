"""Live capture from a network interface (Linux ``AF_PACKET``), through the same meter.

No libpcap binding is needed: a raw packet socket delivers whole frames, which are gathered
into record batches (every ``flush_interval_s`` or ``batch_packets``) and decoded and metered
exactly like a file. Needs root or ``CAP_NET_RAW``. Flows are emitted when they end (FIN, flow
timeout measured on the wall clock, or when the capture stops).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from flowsentinel.capture.decode import REASONS, decode, new_counters
from flowsentinel.capture.frame import flows_to_arrow
from flowsentinel.capture.meter import FlowMeter, MeterConfig
from flowsentinel.capture.pcap import RecordBatch
from flowsentinel.capture.stream import CaptureStats, PacketTap, count_flows
from flowsentinel.core.errors import InputError

if TYPE_CHECKING:  # pandas costs 0.2-0.3 s of start-up; tables convert through pyarrow
    import pandas as pd

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
# the kernel's receive time of each frame (struct timespec in the ancillary data), not the
# time this process got round to reading it: a reader that fell behind (a batch being scored)
# would otherwise give a whole burst one time, and its flows wrong durations and gaps
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # = SCM_TIMESTAMPNS on Linux
_STAMP = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_STAMP.size) if hasattr(socket, "CMSG_SPACE") else 0
_ARPHRD_LINK = {1: 1, 772: 1, 65534: 101, 65535: 101, 778: 101}  # ether, loopback, none/tun


def _open_socket(interface: str) -> socket.socket:
    if not hasattr(socket, "AF_PACKET"):
        raise InputError("live capture needs Linux (AF_PACKET sockets)")
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    except PermissionError:
        raise InputError("live capture needs root or the CAP_NET_RAW capability") from None
    try:
        sock.bind((interface, 0))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot capture on interface {interface!r} ({exc.strerror})") from None
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.settimeout(0.2)
    return sock


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The frame's receive time (µs) from its ancillary data; this process's clock if absent."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _STAMP.size:
            sec, nsec = _STAMP.unpack_from(data)
            return int(sec * 1_000_000 + nsec // 1000)
    return time.time_ns() // 1000


def _batch(frames: list[bytes], stamps: list[int], links: list[int]) -> RecordBatch:
    lengths = np.fromiter((len(f) for f in frames), np.int64, len(frames))
    offsets = np.zeros(len(frames), np.int64)
    if len(frames):
        np.cumsum(lengths[:-1], out=offsets[1:])
    buf = np.frombuffer(b"".join(frames), np.uint8) if frames else np.empty(0, np.uint8)
    size = lengths.astype(np.int32)
    return RecordBatch(buf, offsets, size, size.copy(), np.array(stamps, np.int64),
                       np.array(links, np.int32))  # fmt: skip


def iter_live_records(
    interface: str,
    *,
    batch_packets: int = 8192,
    flush_interval_s: float = 1.0,
    stop: threading.Event | None = None,
    max_packets: int | None = None,
    snaplen: int = 65_535,
) -> Iterator[RecordBatch]:
    """Yield record batches captured live on ``interface`` until ``stop`` is set (the packets
    the kernel had already queued when it was set are still read and yielded)."""
    sock = _open_socket(interface)
    total = 0
    limit = max_packets if max_packets is not None else -1
    try:
        while True:
            stopping = stop is not None and stop.is_set()
            if stopping:
                sock.setblocking(False)  # drain what arrived before the stop, then end
            frames: list[bytes] = []
            stamps: list[int] = []
            links: list[int] = []
            deadline = time.monotonic() + flush_interval_s
            while len(frames) < batch_packets and (stopping or time.monotonic() < deadline):
                if not stopping and stop is not None and stop.is_set():
                    break
                if limit >= 0 and total + len(frames) >= limit:
                    break
                try:
                    data, ancillary, _, addr = sock.recvmsg(snaplen, _ANCILLARY)
                except (TimeoutError, BlockingIOError):
                    if stopping:
                        break
                    continue
                hatype, pkttype = addr[3], addr[2]
                if hatype == 772 and pkttype == _PACKET_OUTGOING:
                    continue  # loopback frames are seen twice; keep the incoming copy
                frames.append(data)
                stamps.append(_kernel_stamp(ancillary))
                links.append(_ARPHRD_LINK.get(hatype, -1))
            total += len(frames)
            yield _batch(frames, stamps, links)
            done = limit >= 0 and total >= limit
            if done or (stopping and len(frames) < batch_packets):
                return
    finally:
        sock.close()


def iter_live_flow_batches(
    interface: str,
    *,
    config: MeterConfig | None = None,
    stats: CaptureStats | None = None,
    stop: threading.Event | None = None,
    flush_interval_s: float = 1.0,
    max_packets: int | None = None,
    kind: Literal["pandas", "arrow"] = "pandas",
    tap: PacketTap | None = None,
) -> Iterator[pd.DataFrame | pa.Table]:
    """Yield DataFrames of flows as they end on a live interface (until ``stop`` is set or
    ``max_packets`` were captured; the flows still open are then flushed); ``tap`` sees every
    decoded batch once the meter has it."""
    stats = stats if stats is not None else CaptureStats()
    stats.source = f"interface {interface}"
    meter = FlowMeter(config)
    counters = new_counters()
    records = iter_live_records(
        interface, flush_interval_s=flush_interval_s, stop=stop, max_packets=max_packets
    )

    def emit() -> Iterator[pd.DataFrame | pa.Table]:
        stats.skipped = {r: int(c) for r, c in zip(REASONS[1:], counters[1:].tolist(), strict=True)}
        stats.meter = meter.counter_dict()
        flows = meter.take()
        if len(flows):
            count_flows(stats, flows)
            table = flows_to_arrow(flows)
            yield table if kind == "arrow" else table.to_pandas()

    for batch in records:
        if len(batch):
            stats.packets += len(batch)
            stats.read.records += len(batch)
            pk = decode(batch, counters)
            meter.add(pk)
            if tap is not None:
                tap(pk)
        meter.expire(time.time_ns() // 1000)
        yield from emit()
    meter.flush()
    yield from emit()
