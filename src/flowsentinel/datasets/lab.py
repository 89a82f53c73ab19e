"""The built-in lab: a deterministic, labelled packet capture crafted by the project.

``write_lab(DIR)`` writes ``DIR/lab.pcap`` (Ethernet, microsecond pcap), ``DIR/labels.csv`` (one
row per crafted session: the 5-tuple of its first packet, its start time and its label) and
``DIR/lab_flows.csv`` (the flow meter's output for ``lab.pcap`` with a ``Label`` column).

Traffic, in the style of the CIC-IDS2017 Wednesday capture (web server 192.168.10.50, attacker
172.16.0.1): benign web sessions (handshake, keep-alive requests with think times, responses in
MSS-sized segments, FIN teardown) and DNS lookups; then the DoS families: an HTTP flood in the
style of Hulk (many short connections with randomised URLs), slowloris (partial headers kept
alive every 10-15 s), slow POST in the style of slowhttptest (a large Content-Length sent a few
bytes at a time), a SYN flood from spoofed sources and a UDP flood. Every session uses its own
5-tuple, so each flow's label is found from its 5-tuple. No root, no network: the packets are
written byte by byte.
"""

from __future__ import annotations

import csv
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowsentinel.capture.meter import OI_DPORT, OI_PROTO, OI_SPORT, FlowArrays
from flowsentinel.capture.output import Labeller, write_flows

T_BASE = 1_499_245_200  # 2017-07-05 09:00:00 UTC (a Wednesday, like CIC-IDS2017's DoS day)
SERVER = "192.168.10.50"
DNS_SERVER = "192.168.10.3"
ATTACKER = "172.16.0.1"
CLIENTS = [f"192.168.10.{k}" for k in (5, 8, 9, 12, 14, 15, 16, 17, 19, 25)]
MSS = 1448

BENIGN = "BENIGN"
HULK = "DoS Hulk"
SLOWLORIS = "DoS slowloris"
SLOWPOST = "DoS Slowhttptest"
SYNFLOOD = "DoS SYN flood"
UDPFLOOD = "DoS UDP flood"
LABELS = (BENIGN, HULK, SLOWLORIS, SLOWPOST, SYNFLOOD, UDPFLOOD)

_F, _S, _R, _P, _A = 1, 2, 4, 8, 16
_MAC_A = bytes.fromhex("001e4fa11b01")
_MAC_B = bytes.fromhex("00192a7ce3f0")


def _ip_bytes(ip: str) -> bytes:
    return bytes(int(x) for x in ip.split("."))


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass
class Session:
    src: str
    sport: int
    dst: str
    dport: int
    proto: int
    start_us: int
    label: str


@dataclass
class _Capture:
    rng: np.random.Generator
    records: list[tuple[int, int, bytes]] = field(default_factory=list)  # (ts, order, frame)
    sessions: list[Session] = field(default_factory=list)
    _ip_id: int = 0
    _ports: set[tuple[str, int]] = field(default_factory=set)
    _filler: bytes = b""

    def __post_init__(self) -> None:
        self._filler = self.rng.integers(32, 127, 4096, dtype=np.uint8).tobytes()

    def port(self, host: str, low: int = 32768, high: int = 60999) -> int:
        while True:
            p = int(self.rng.integers(low, high))
            if (host, p) not in self._ports:
                self._ports.add((host, p))
                return p

    def text(self, n: int, head: bytes = b"") -> bytes:
        body = head[:n]
        while len(body) < n:
            body += self._filler[: n - len(body)]
        return body

    def frame(self, t: int, src: str, dst: str, proto: int, l4: bytes, ttl: int = 64) -> None:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        hdr = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self._ip_id, 0x4000, ttl, proto, 0,
            _ip_bytes(src), _ip_bytes(dst),
        )  # fmt: skip
        hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
        eth = (_MAC_B + _MAC_A if src == SERVER else _MAC_A + _MAC_B) + b"\x08\x00"
        data = eth + hdr + l4
        if len(data) < 60:
            data += b"\x00" * (60 - len(data))  # Ethernet padding, as on the wire
        self.records.append((t, len(self.records), data))

    def tcp(self, t: int, src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
            flags: int, win: int, payload: bytes = b"", mss: bool = False) -> None:  # fmt: skip
        opts = struct.pack("!BBH", 2, 4, 1460) if mss else b""
        off = (20 + len(opts)) // 4
        l4 = struct.pack(
            "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags, win,
            0, 0,
        ) + opts + payload  # fmt: skip
        self.frame(t, src, dst, 6, l4)

    def udp(self, t: int, src: str, dst: str, sport: int, dport: int, payload: bytes) -> None:
        self.frame(
            t, src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        )


class _Tcp:
    """One TCP connection: keeps sequence numbers and writes its packets."""

    def __init__(self, cap: _Capture, client: str, cport: int, server: str, sport: int,
                 cwin: int, swin: int) -> None:  # fmt: skip
        self.cap, self.c, self.cp, self.s, self.sp = cap, client, cport, server, sport
        self.cseq = int(cap.rng.integers(1, 2**31))
        self.sseq = int(cap.rng.integers(1, 2**31))
        self.cwin, self.swin = cwin, swin

    def handshake(self, t: int, rtt: int, syn_win: int = 29200) -> int:
        c = self.cap
        c.tcp(t, self.c, self.s, self.cp, self.sp, self.cseq, 0, _S, syn_win, mss=True)
        c.tcp(t + rtt // 2, self.s, self.c, self.sp, self.cp, self.sseq, self.cseq + 1, _S | _A,
              28960, mss=True)  # fmt: skip
        self.cseq += 1
        self.sseq += 1
        t += rtt
        c.tcp(t, self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, _A, self.cwin)
        return t

    def client_send(self, t: int, data: bytes, flags: int = _P | _A) -> None:
        self.cap.tcp(
            t, self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, flags, self.cwin, data
        )
        self.cseq += len(data)

    def server_send(self, t: int, data: bytes, flags: int = _P | _A) -> None:
        self.cap.tcp(
            t, self.s, self.c, self.sp, self.cp, self.sseq, self.cseq, flags, self.swin, data
        )
        self.sseq += len(data)

    def client_ack(self, t: int) -> None:
        self.cap.tcp(t, self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, _A, self.cwin)

    def server_ack(self, t: int) -> None:
        self.cap.tcp(t, self.s, self.c, self.sp, self.cp, self.sseq, self.cseq, _A, self.swin)

    def response(self, t: int, size: int, gap: int) -> int:
        """Server sends `size` bytes in MSS segments; the client ACKs every second one."""
        sent = 0
        k = 0
        while sent < size:
            n = min(MSS, size - sent)
            last = sent + n >= size
            self.server_send(t, self.cap.text(n, b"HTTP/1.1 200 OK\r\n" if k == 0 else b""),
                             _P | _A if last else _A)  # fmt: skip
            sent += n
            k += 1
            if k % 2 == 0 or last:
                self.client_ack(t + gap // 2 + 40)
            t += gap
        return t

    def close(self, t: int, rtt: int, client_first: bool = True) -> int:
        c = self.cap
        a, b = (
            (self.client_send, self.server_send)
            if client_first
            else (self.server_send, self.client_send)
        )
        a(t, b"", _F | _A)
        if client_first:
            self.cseq += 1
        else:
            self.sseq += 1
        b(t + rtt // 2, b"", _F | _A)
        if client_first:
            self.sseq += 1
            self.client_ack(t + rtt)
        else:
            self.cseq += 1
            self.server_ack(t + rtt)
        del c
        return t + rtt

    def reset(self, t: int, by_client: bool = True) -> None:
        if by_client:
            self.client_send(t, b"", _R | _A)
        else:
            self.server_send(t, b"", _R | _A)


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _web(cap: _Capture, n: int) -> None:
    rng = cap.rng
    for _ in range(n):
        client = CLIENTS[int(rng.integers(len(CLIENTS)))]
        cport = cap.port(client)
        t = T_BASE * 1_000_000 + _us(rng.uniform(0, 600))
        rtt = max(150, int(rng.lognormal(np.log(3000), 1.0)))
        conn = _Tcp(cap, client, cport, SERVER, 80, int(rng.choice([229, 501, 1026, 2053])), 235)
        cap.sessions.append(Session(client, cport, SERVER, 80, 6, t, BENIGN))
        t = conn.handshake(t, rtt, int(rng.choice([29200, 8192, 64240])))
        for _r in range(int(rng.integers(1, 6))):
            t += int(rng.integers(50, 2000))
            req = cap.text(
                int(rng.integers(250, 900)), b"GET /index.html HTTP/1.1\r\nHost: web\r\n"
            )
            conn.client_send(t, req)
            conn.server_ack(t + rtt // 2)
            size = int(min(150_000, rng.lognormal(np.log(5000), 1.2)))
            t = conn.response(t + rtt // 2 + int(rng.integers(200, 20_000)), size,
                              int(rng.integers(60, 400)))  # fmt: skip
            think = rng.exponential(1.5) if rng.random() < 0.8 else rng.uniform(5.5, 25)
            t += _us(think)
        conn.close(t, rtt, client_first=bool(rng.random() < 0.6))


def _dns(cap: _Capture, n: int) -> None:
    rng = cap.rng
    for _ in range(n):
        client = CLIENTS[int(rng.integers(len(CLIENTS)))]
        cport = cap.port(client, 1024, 65000)
        t = T_BASE * 1_000_000 + _us(rng.uniform(0, 600))
        cap.sessions.append(Session(client, cport, DNS_SERVER, 53, 17, t, BENIGN))
        for _q in range(1 + int(rng.random() < 0.4)):
            q = int(rng.integers(28, 64))
            cap.udp(t, client, DNS_SERVER, cport, 53, cap.text(q))
            t += int(rng.integers(300, 80_000))
            cap.udp(t, DNS_SERVER, client, 53, cport, cap.text(q + int(rng.integers(16, 380))))
            t += int(rng.integers(50, 3000))


def _hulk(cap: _Capture, n: int) -> None:
    rng = cap.rng
    t0 = (T_BASE + 100) * 1_000_000
    for k in range(n):
        cport = cap.port(ATTACKER)
        t = t0 + k * _us(100 / max(n, 1)) + int(rng.integers(0, 30_000))
        rtt = int(rng.integers(200, 1500))
        conn = _Tcp(cap, ATTACKER, cport, SERVER, 80, 229, 235)
        cap.sessions.append(Session(ATTACKER, cport, SERVER, 80, 6, t, HULK))
        t = conn.handshake(t, rtt)
        url = f"GET /?{rng.integers(10**9)}={rng.integers(10**9)} HTTP/1.1\r\n".encode()
        conn.client_send(t + 100, cap.text(int(rng.integers(300, 700)), url))
        conn.server_ack(t + 100 + rtt // 2)
        if rng.random() < 0.75:  # the server answers, slowly as it saturates
            t = conn.response(t + _us(rng.uniform(0.005, 0.6)), 11_321, int(rng.integers(40, 200)))
            conn.close(t + int(rng.integers(100, 5000)), rtt, client_first=True)
        else:  # no answer: Hulk gives up and resets
            conn.reset(t + _us(rng.uniform(0.5, 3)))


def _slowloris(cap: _Capture, n: int) -> None:
    rng = cap.rng
    t0 = (T_BASE + 250) * 1_000_000
    for k in range(n):
        cport = cap.port(ATTACKER)
        t = t0 + k * _us(10 / max(n, 1)) + int(rng.integers(0, 5000))
        end = t + _us(rng.uniform(150, 260))
        rtt = int(rng.integers(300, 2000))
        conn = _Tcp(cap, ATTACKER, cport, SERVER, 80, 229, 227)
        cap.sessions.append(Session(ATTACKER, cport, SERVER, 80, 6, t, SLOWLORIS))
        t = conn.handshake(t, rtt)
        head = f"GET /?{rng.integers(2000)} HTTP/1.1\r\nUser-Agent: Mozilla/5.0\r\n".encode()
        conn.client_send(t + 50, cap.text(int(rng.integers(150, 260)), head))
        conn.server_ack(t + 50 + rtt // 2)
        while True:
            t += _us(rng.uniform(10, 15))
            if t >= end:
                break
            conn.client_send(t, f"X-a: {rng.integers(5000)}\r\n".encode())
            conn.server_ack(t + rtt // 2)
        if rng.random() < 0.5:
            conn.close(t, rtt, client_first=False)  # the server's timeout ends it


def _slowpost(cap: _Capture, n: int) -> None:
    rng = cap.rng
    t0 = (T_BASE + 300) * 1_000_000
    for k in range(n):
        cport = cap.port(ATTACKER)
        t = t0 + k * _us(20 / max(n, 1)) + int(rng.integers(0, 5000))
        end = t + _us(rng.uniform(30, 110))
        rtt = int(rng.integers(300, 2000))
        conn = _Tcp(cap, ATTACKER, cport, SERVER, 80, 229, 227)
        cap.sessions.append(Session(ATTACKER, cport, SERVER, 80, 6, t, SLOWPOST))
        t = conn.handshake(t, rtt)
        head = (
            "POST /login.php HTTP/1.1\r\nHost: 192.168.10.50\r\n"
            f"Content-Length: {int(rng.integers(4096, 8192))}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        ).encode()
        conn.client_send(t + 50, head)
        conn.server_ack(t + 50 + rtt // 2)
        while True:
            t += _us(rng.uniform(1, 10))
            if t >= end:
                break
            conn.client_send(t, cap.text(int(rng.integers(1, 20))))
            conn.server_ack(t + rtt // 2)
        conn.close(t, rtt, client_first=True)


def _synflood(cap: _Capture, n: int) -> None:
    rng = cap.rng
    t0 = (T_BASE + 480) * 1_000_000
    for k in range(n):
        src = ".".join(
            str(int(x))
            for x in (rng.integers(11, 223), *rng.integers(0, 256, 2), rng.integers(1, 255))
        )
        sport = cap.port(src, 1024, 65535)
        t = t0 + k * _us(8 / max(n, 1)) + int(rng.integers(0, 800))
        cap.sessions.append(Session(src, sport, SERVER, 80, 6, t, SYNFLOOD))
        seq = int(rng.integers(1, 2**31))
        sseq = int(rng.integers(1, 2**31))
        cap.tcp(t, src, SERVER, sport, 80, seq, 0, _S, 512)
        cap.tcp(
            t + int(rng.integers(20, 300)),
            SERVER,
            src,
            80,
            sport,
            sseq,
            seq + 1,
            _S | _A,
            28960,
            mss=True,
        )
        if rng.random() < 0.3:  # a real host behind the spoofed address answers with RST
            cap.tcp(t + int(rng.integers(2000, 90_000)), src, SERVER, sport, 80, seq + 1, 0, _R, 0)
        else:  # nobody answers: the server retransmits its SYN-ACK
            for back in (1, 3)[: int(rng.integers(1, 3))]:
                cap.tcp(
                    t + _us(back), SERVER, src, 80, sport, sseq, seq + 1, _S | _A, 28960, mss=True
                )


def _udpflood(cap: _Capture, n: int) -> None:
    rng = cap.rng
    t0 = (T_BASE + 550) * 1_000_000
    for k in range(n):
        sport = cap.port(ATTACKER, 1024, 65535)
        dport = int(rng.choice([53, 123, 161, int(rng.integers(1024, 65535))]))
        t = t0 + k * _us(20 / max(n, 1)) + int(rng.integers(0, 2000))
        cap.sessions.append(Session(ATTACKER, sport, SERVER, dport, 17, t, UDPFLOOD))
        size = int(rng.integers(512, 1400))
        for _p in range(int(rng.integers(2, 40))):
            cap.udp(t, ATTACKER, SERVER, sport, dport, cap.text(size))
            t += int(rng.integers(80, 2000))


@dataclass
class LabResult:
    pcap: Path
    labels: Path
    flows: Path
    packets: int
    sessions: int
    flow_labels: dict[str, int]


def build_lab(seed: int = 42, scale: float = 1.0) -> tuple[bytes, list[Session]]:
    """The lab capture's bytes (pcap) and its sessions, deterministic for a seed."""
    cap = _Capture(np.random.default_rng(seed))

    def count(base: int) -> int:
        return max(2, round(base * scale))

    _web(cap, count(900))
    _dns(cap, count(900))
    _hulk(cap, count(700))
    _slowloris(cap, count(120))
    _slowpost(cap, count(100))
    _synflood(cap, count(700))
    _udpflood(cap, count(300))
    cap.records.sort(key=lambda r: (r[0], r[1]))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ts, _k, data in cap.records:
        out.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(data), len(data)))
        out.append(data)
    return b"".join(out), cap.sessions


def _endpoint_key(a: str, ap: int, b: str, bp: int, proto: int) -> tuple:
    x, y = (a, ap), (b, bp)
    return (*min(x, y), *max(x, y), proto)


def labeller_for(sessions: list[Session]) -> Labeller:
    """A ``write_flows`` labeller that adds ``Label`` from the sessions' 5-tuples."""
    by_key = {_endpoint_key(s.src, s.sport, s.dst, s.dport, s.proto): s.label for s in sessions}

    def label(flows: FlowArrays, table: pa.Table) -> pa.Table:
        src = table.column("Source IP").to_pylist()
        dst = table.column("Destination IP").to_pylist()
        ids = flows.ids
        labels = []
        for k in range(len(src)):
            key = _endpoint_key(src[k], int(ids[k, OI_SPORT]), dst[k], int(ids[k, OI_DPORT]),
                                int(ids[k, OI_PROTO]))  # fmt: skip
            labels.append(by_key.get(key))
        if any(v is None for v in labels):
            raise RuntimeError("a lab flow matches no crafted session")
        return table.append_column("Label", pa.array(labels, pa.string()))

    return label


def write_lab(out: Path, *, seed: int = 42, scale: float = 1.0) -> LabResult:
    """Write lab.pcap, labels.csv and lab_flows.csv into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data, sessions = build_lab(seed, scale)
    pcap = out / "lab.pcap"
    pcap.write_bytes(data)
    labels = out / "labels.csv"
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Source IP", "Source Port", "Destination IP", "Destination Port", "Protocol",
                    "Timestamp", "Label"])  # fmt: skip
        for s in sorted(sessions, key=lambda s: s.start_us):
            stamp = np.datetime64(s.start_us, "us").astype(str).replace("T", " ")
            w.writerow([s.src, s.sport, s.dst, s.dport, s.proto, stamp, s.label])
    flows = out / "lab_flows.csv"
    counts: dict[str, int] = {}

    def counting(fa: FlowArrays, table: pa.Table) -> pa.Table:
        table = labeller(fa, table)
        for v in table.column("Label").to_pylist():
            counts[v] = counts.get(v, 0) + 1
        return table

    labeller = labeller_for(sessions)
    stats = write_flows(pcap, flows, labeller=counting)
    return LabResult(pcap, labels, flows, stats.packets, len(sessions), counts)
