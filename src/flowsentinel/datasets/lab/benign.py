"""Benign applications: sizes and timings drawn from distributions, every session labelled
``BENIGN`` with its application as ``kind``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flowsentinel.datasets.lab.base import Endpoint, Lab, us
from flowsentinel.datasets.lab.tcp import Conn
from flowsentinel.datasets.lab.wire import TCP, UDP
from flowsentinel.datasets.lab.world import World

BENIGN = "BENIGN"
CLOSINGS = (
    "fin_client",
    "fin_server",
    "fin_client",
    "fin_server",
    "rst_client",
    "fin_rst",
    "rst_server",
    "open",
)


def lognormal(
    rng: np.random.Generator, median: float, sigma: float, lo: float = 1, hi: float = 1e12
) -> int:
    """An integer drawn log-normally around ``median``, clipped to [lo, hi]."""
    return int(min(hi, max(lo, rng.lognormal(np.log(median), sigma))))


def open_tcp(
    lab: Lab,
    c: Endpoint,
    s: Endpoint,
    dport: int,
    kind: str,
    t: int,
    label: str = BENIGN,
    cport: int | None = None,
) -> Conn:
    """A registered connection (another client port is drawn if the tuple is taken)."""
    while True:
        port = (
            cport
            if cport is not None
            else lab.port(c.ip, 1024 if c.stack.name == "windows" else 32768, 65000)
        )
        if lab.session(c.ip, port, s.ip, dport, TCP, t, label, kind):
            return Conn(lab, c, port, s, dport)
        cport = None


def _closing(lab: Lab) -> str:
    """One of the connection endings, drawn."""
    return CLOSINGS[int(lab.rng.integers(len(CLOSINGS)))]


def _heads(lab: Lab, *texts: bytes) -> list[int]:
    """Interned payload heads (protocol banners, record headers)."""
    return [lab.pk.head(x, intern=True) for x in texts]


def tls_handshake(conn: Conn, t: int) -> int:
    """ClientHello, ServerHello + certificate chain, client Finished, session tickets."""
    rng, lab = conn.lab.rng, conn.lab
    ch, sh, app = _heads(
        lab,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03",
        b"\x17\x03\x03",
    )
    t = conn.send(t, True, int(rng.choice([517, 571, 583, 1500, 1800])), ch)
    t = conn.send(
        t + int(rng.integers(200, 3000)), False, lognormal(rng, 3600, 0.4, 1200, 9000), sh
    )
    t = conn.send(t + 200, True, int(rng.choice([64, 80, 126, 158])), app)
    if rng.random() < 0.6:
        t = conn.send(t + 300, False, int(rng.choice([255, 510, 543])), app)
    return t


def _http_keepalive(lab: Lab, w: World, t: int, tls: bool) -> None:
    """One HTTP or HTTPS keep-alive connection with one to seven requests."""
    rng = lab.rng
    c = w.any_client(0.35)
    s = w.servers["web6" if ":" in c.ip else "web"]
    conn = open_tcp(lab, c, s, 443 if tls else 80, "https" if tls else "http", t)
    t = conn.handshake(t)
    if tls:
        t = tls_handshake(conn, t)
    get = lab.pk.head(b"GET /index.html HTTP/1.1\r\nHost: www.lab\r\n", intern=True)
    ok = lab.pk.head(b"HTTP/1.1 200 OK\r\n", intern=True)
    for _ in range(int(rng.integers(1, 8))):
        t = conn.exchange(
            t + int(rng.integers(50, 3000)),
            lognormal(rng, 450, 0.4, 150, 2500),
            lognormal(rng, 4000, 1.3, 200, 300_000),
            lognormal(rng, 3000, 1.2, 100, 900_000),
            0 if tls else get,
            0 if tls else ok,
        )
        t += us(rng.exponential(2.0) if rng.random() < 0.8 else rng.uniform(5.5, 30))
    conn.close(t, _closing(lab))


def web(lab: Lab, w: World, n: int) -> None:
    """HTTP/1.1 and HTTPS with keep-alive: several requests, think times, any ending."""
    for _ in range(n):
        _http_keepalive(lab, w, lab.start(), tls=lab.rng.random() < 0.6)


def browser_pages(lab: Lab, w: World, n: int) -> None:
    """A browser loads a page: 2-6 parallel TLS connections to one server, a few objects
    each, then idles until the server's keep-alive timeout or the user leaves."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client(0.2) if rng.random() < 0.5 else w.remote_client()
        outbound = c.ip.startswith(("192.168.", "fd00:"))
        s = (
            w.internet_server(v6=":" in c.ip)
            if outbound
            else w.servers["web6" if ":" in c.ip else "web"]
        )
        t0 = lab.start()
        for _k in range(int(rng.integers(2, 7))):
            conn = open_tcp(lab, c, s, 443, "browser", t0 + int(rng.integers(0, 40_000)))
            t = tls_handshake(conn, conn.handshake(t0 + int(rng.integers(0, 40_000))))
            for _r in range(int(rng.integers(1, 6))):
                t = conn.exchange(
                    t + int(rng.integers(100, 20_000)),
                    lognormal(rng, 600, 0.5, 100, 3000),
                    lognormal(rng, 5000, 1.3, 300, 300_000),
                    lognormal(rng, 20_000, 1.0, 300, 1_500_000),
                )
            idle = us(rng.choice([5, 15, 60, 65, 120, 300]) * rng.uniform(0.5, 1.0))
            conn.close(t + idle, str(rng.choice(["fin_server", "fin_client", "rst_client"])))


def short_https(lab: Lab, w: World, n: int) -> None:
    """Many short HTTPS connections (API calls, telemetry): handshake, one exchange, close."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client(0.15)
        s = w.internet_server(v6=":" in c.ip)
        t = lab.start()
        conn = open_tcp(lab, c, s, 443, "https-short", t)
        t = tls_handshake(conn, conn.handshake(t))
        t = conn.exchange(
            t + 100,
            lognormal(rng, 700, 0.6, 90, 6000),
            lognormal(rng, 1200, 1.0, 40, 60_000),
            lognormal(rng, 30_000, 1, 500),
        )
        conn.close(t + int(rng.integers(100, 200_000)), _closing(lab))


def bulk(lab: Lab, w: World, n: int) -> None:
    """Large downloads (and some uploads) over HTTP(S), bounded by the path's window."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client(0.1)
        s = w.internet_server(v6=":" in c.ip)
        t = lab.start(0, 850)
        conn = open_tcp(lab, c, s, int(rng.choice([80, 443, 443])), "bulk", t)
        t = tls_handshake(conn, conn.handshake(t)) if conn.sp == 443 else conn.handshake(t)
        t = conn.send(t + 200, True, lognormal(rng, 500, 0.3, 200))
        size = lognormal(rng, 400_000, 1.0, 60_000, 3_000_000)
        if rng.random() < 0.2:  # an upload: the client sends, the server acknowledges
            t = conn.send(t + 100, True, size // 3)
            t = conn.send(t + 100, False, 300)
        elif rng.random() < 0.2:  # the client shuts its side at once, the server still sends
            conn.half_close(t + 50, size)
            continue
        else:
            t = conn.send(t + int(rng.integers(1000, 100_000)), False, size)
        conn.close(t + 50, _closing(lab))


def video(lab: Lab, w: World, n: int) -> None:
    """Streaming: a chunk request every few seconds, each answered by a burst of segments."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client(0.2)
        s = w.internet_server(v6=":" in c.ip)
        t = lab.start(0, 700)
        conn = open_tcp(lab, c, s, 443, "video", t)
        t = tls_handshake(conn, conn.handshake(t))
        end = t + us(rng.uniform(20, 90))
        rate = rng.choice([60_000, 120_000, 250_000])  # bytes per chunk
        period = rng.uniform(4, 10)
        while t < end:
            t = conn.exchange(
                t,
                lognormal(rng, 500, 0.2, 200),
                lognormal(rng, rate, 0.3, 50_000),
                lognormal(rng, 20_000, 0.8, 1000),
            )
            t += us(period * rng.uniform(0.7, 1.3))
        conn.close(t, str(rng.choice(["fin_client", "rst_client"])))


def _ssh_start(lab: Lab, conn: Conn, t: int) -> int:
    """Banners, key exchange and new keys of an SSH session."""
    rng = lab.rng
    banner = _heads(lab, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n")[0]
    t = conn.send(t + 5000, False, int(rng.integers(21, 45)), banner)
    t = conn.send(t + 300, True, int(rng.integers(21, 45)), banner)
    t = conn.exchange(t + 200, lognormal(rng, 1400, 0.2), lognormal(rng, 1080, 0.2), 300)
    t = conn.exchange(t + 200, 48, lognormal(rng, 500, 0.4), 2000)
    return conn.exchange(t + 200, 16, 0, 0)


def ssh(lab: Lab, w: World, n: int, n_scp: int) -> None:
    """Interactive SSH (keystrokes and echoes at human pace, idle gaps) and scp transfers."""
    rng = lab.rng
    for k in range(n + n_scp):
        c = w.any_client(0.5, v6=False)
        s = w.servers["app"] if rng.random() < 0.6 else w.internet_server()
        t = lab.start(0, 800)
        conn = open_tcp(lab, c, s, 22, "ssh" if k < n else "scp", t)
        t = _ssh_start(lab, conn, conn.handshake(t))
        t = conn.exchange(t + us(rng.uniform(0.5, 4)), int(rng.choice([68, 84, 100])), 52, 9000)
        if k >= n:
            t = conn.send(
                t + 1000, bool(rng.random() < 0.5), lognormal(rng, 600_000, 1.0, 50_000, 3_000_000)
            )
        else:
            end = t + us(rng.uniform(20, 500))
            while t < end:
                t += us(
                    rng.lognormal(np.log(0.25), 1.0)
                    if rng.random() < 0.93
                    else rng.uniform(5.5, 60)
                )
                # Nagle: on a long path keystrokes typed while one is unacknowledged go together
                keys = 1 + int(conn.rtt > 50_000 and rng.random() < 0.3) * int(rng.integers(1, 4))
                out = 36 * keys if rng.random() < 0.9 else lognormal(rng, 1500, 1.2, 36, 60_000)
                t = conn.exchange(t, 36 * keys, out, int(rng.integers(300, 5000)))
        conn.close(t + 1000, str(rng.choice(["fin_client", "fin_server"])))


def dns(lab: Lab, w: World, n: int, n_tcp: int) -> None:
    """DNS over UDP (clients to the resolver, the resolver upstream; A and AAAA in pairs) and
    over TCP (large answers, zone data: a two-byte length before each message)."""
    rng = lab.rng
    resolver = w.servers["dns"]
    for k in range(n + n_tcp):
        up = rng.random() < 0.3
        c = resolver if up else w.lan_client()
        s = w.internet_server(stack="linux") if up or ":" in c.ip else resolver
        t = lab.start()
        if k >= n:
            conn = open_tcp(lab, c, s, 53, "dns-tcp", t)
            t = conn.exchange(
                conn.handshake(t),
                int(rng.integers(30, 70)),
                lognormal(rng, 1500, 0.8, 200, 60_000),
                int(rng.integers(200, 90_000)),
            )
            conn.close(t + 100, "fin_client")
            continue
        port = _udp_session(lab, c, s, 53, t, "dns")
        for _q in range(1 + int(rng.random() < 0.5)):
            q = int(rng.integers(28, 70))
            lab.udp(t, c, s, port, 53, q)
            t += int(rng.integers(300, 80_000)) + s.path.rtt_us
            lab.udp(t, s, c, 53, port, q + lognormal(rng, 90, 0.8, 16, 1400))
            t += int(rng.integers(20, 3000))


def _udp_session(
    lab: Lab, c: Endpoint, s: Endpoint, dport: int, t: int, kind: str, cport: int | None = None
) -> int:
    """Register a UDP session (another client port is drawn if the tuple is taken)."""
    while True:
        port = cport if cport is not None else lab.port(c.ip, 1024, 65535)
        if lab.session(c.ip, port, s.ip, dport, UDP, t, BENIGN, kind):
            return port
        cport = None


def quic(lab: Lab, w: World, n: int) -> None:
    """QUIC-like UDP 443: padded Initial packets, then long two-way flows of full-size
    packets and small acknowledgements, with pauses."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client(0.25)
        s = w.internet_server(v6=":" in c.ip)
        t = lab.start(0, 800)
        port = _udp_session(lab, c, s, 443, t, "quic")
        rtt = c.path.rtt_us + s.path.rtt_us
        lab.udp(t, c, s, port, 443, int(rng.integers(1200, 1353)))
        t += rtt
        for size in (1200, 1200, int(rng.integers(200, 1200))):
            lab.udp(t, s, c, 443, port, size)
            t += int(rng.integers(5, 60))
        end = t + us(rng.uniform(2, 40))
        while t < end:
            burst = lognormal(rng, 10, 1.0, 1, 200)
            times = t + np.cumsum(rng.integers(20, 400, burst))
            sizes = rng.integers(1000, 1353, burst)
            lab.pk.block(
                burst,
                ts=times,
                src=s.hid,
                dst=c.hid,
                proto=UDP,
                sport=443,
                dport=port,
                ttl=s.ttl,
                plen=sizes,
            )
            acks = times[1::3] + rtt // 2
            lab.pk.block(
                len(acks),
                ts=acks,
                src=c.hid,
                dst=s.hid,
                proto=UDP,
                sport=port,
                dport=443,
                ttl=c.ttl,
                plen=rng.integers(30, 80, len(acks)),
            )
            t = int(times[-1]) + us(rng.exponential(3.0))


def ntp(lab: Lab, w: World, n: int) -> None:
    """NTP: 48-byte client/server messages, polled every 64 s or more on one tuple."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client() if rng.random() < 0.7 else w.servers["ntp"]
        s = (
            w.internet_server(v6=":" in c.ip)
            if rng.random() < 0.5 or c is w.servers["ntp"]
            else w.servers["ntp"]
        )
        t = lab.start(0, 600)
        port = _udp_session(lab, c, s, 123, t, "ntp", 123 if rng.random() < 0.4 else None)
        for _k in range(int(rng.integers(1, 6))):
            lab.udp(t, c, s, port, 123, 48)
            lab.udp(t + s.path.rtt_us + int(rng.integers(30, 500)), s, c, 123, port, 48)
            t += us(64.0 * 2 ** int(rng.integers(0, 3)))


def mail(lab: Lab, w: World, n: int) -> None:
    """SMTP with STARTTLS, IMAP (long idle sessions) and POP3 (fetch and quit)."""
    rng = lab.rng
    for _ in range(n):
        kind = str(rng.choice(["smtp", "imap", "pop3"]))
        c = w.any_client(0.5, v6=False)
        port = {
            "smtp": int(rng.choice([25, 587])),
            "imap": int(rng.choice([143, 993])),
            "pop3": int(rng.choice([110, 995])),
        }[kind]
        t = lab.start(0, 800)
        conn = open_tcp(lab, c, w.servers["mail"], port, kind, t)
        t = conn.handshake(t)
        banner = _heads(
            lab, b"220 mail.lab ESMTP ready\r\n", b"* OK IMAP4rev1\r\n", b"+OK POP3\r\n"
        )
        t = conn.send(
            t + 2000, False, int(rng.integers(30, 90)), banner[("smtp", "imap", "pop3").index(kind)]
        )
        if port in (25, 587, 143, 110):  # STARTTLS, then the TLS handshake
            t = conn.exchange(t + 300, int(rng.integers(10, 30)), int(rng.integers(20, 200)), 500)
            t = tls_handshake(conn, t)
        if kind == "smtp":
            t = conn.send(t + 500, True, lognormal(rng, 8000, 1.5, 300, 3_000_000))
            t = conn.exchange(t, 0, int(rng.integers(30, 60)), 3000)
        else:
            gaps = int(rng.integers(1, 8)) if kind == "imap" else 1
            for _g in range(gaps):
                t = conn.exchange(
                    t + 500,
                    int(rng.integers(20, 120)),
                    lognormal(rng, 3000, 1.5, 30, 2_000_000),
                    3000,
                )
                t += us(rng.uniform(6, 120)) if kind == "imap" else 0
        conn.close(t + 500, str(rng.choice(["fin_client", "fin_server"])))


def database(lab: Lab, w: World, n: int) -> None:
    """PostgreSQL, MySQL (the server speaks first) and Redis: persistent connections from
    application hosts with many small request-response pairs and idle gaps."""
    rng = lab.rng
    for _ in range(n):
        kind, port = [("postgresql", 5432), ("mysql", 3306), ("redis", 6379)][int(rng.integers(3))]
        c = w.lan_client() if rng.random() < 0.5 else w.servers["app"]
        t = lab.start(0, 800)
        conn = open_tcp(lab, c, w.servers["db"], port, kind, t)
        t = conn.handshake(t)
        if kind == "mysql":
            t = conn.send(t + 300, False, int(rng.integers(70, 110)))
        t = conn.exchange(t + 100, int(rng.integers(40, 120)), int(rng.integers(10, 400)), 500)
        small = kind == "redis"
        for _q in range(lognormal(rng, 20, 1.0, 1, 300)):
            req = int(rng.integers(14, 60)) if small else lognormal(rng, 150, 0.8, 20, 8000)
            resp = int(rng.integers(4, 40)) if small else lognormal(rng, 600, 1.5, 11, 400_000)
            t = conn.exchange(t, req, resp, int(rng.integers(30, 3000 if small else 40_000)))
            if rng.random() < 0.9:
                t += us(rng.exponential(0.3))
            else:  # an idle pool connection: the client's stack probes it (TCP keep-alive)
                t = conn.keepalive(t + us(rng.uniform(5.5, 40)))
        conn.close(t, str(rng.choice(["fin_client", "open", "rst_client"])))


def lan_sessions(lab: Lab, w: World, n: int) -> None:
    """SMB file access (negotiate, session setup, 64 KiB reads) and RDP (a steady stream of
    screen updates, small input events) between Windows hosts on the LAN."""
    rng = lab.rng
    for _ in range(n):
        rdp = rng.random() < 0.4
        c = w.lan_client()
        s = w.servers["rdp" if rdp else "smb"]
        t = lab.start(0, 800)
        conn = open_tcp(lab, c, s, 3389 if rdp else 445, "rdp" if rdp else "smb", t)
        t = conn.handshake(t)
        t = conn.exchange(t + 200, int(rng.integers(150, 300)), int(rng.integers(200, 400)), 500)
        t = conn.exchange(t + 200, int(rng.integers(150, 700)), int(rng.integers(200, 400)), 2000)
        end = t + us(rng.uniform(10, 90))
        while t < end:
            if rdp:
                t = conn.exchange(
                    t,
                    int(rng.integers(20, 60)),
                    lognormal(rng, 400, 1.2, 20, 60_000),
                    int(rng.integers(2000, 30_000)),
                )
                t += us(rng.exponential(0.15) if rng.random() < 0.95 else rng.uniform(5.5, 20))
            else:
                t = conn.exchange(
                    t,
                    int(rng.integers(100, 200)),
                    65536 * int(rng.integers(1, 3)),
                    int(rng.integers(100, 2000)),
                )
                t += us(rng.exponential(10.0))
        conn.close(t, "fin_client" if rng.random() < 0.7 else "rst_client")


def iot(lab: Lab, w: World, n: int) -> None:
    """MQTT (connect, subscribe, small publishes, PINGREQ/PINGRESP every keep-alive interval)
    and CoAP over UDP (confirmable requests and their acknowledgements)."""
    rng = lab.rng
    for _ in range(n):
        c = w.lan_client()
        t = lab.start(0, 600)
        if rng.random() < 0.35:
            port = _udp_session(lab, c, w.servers["coap"], 5683, t, "coap")
            for _k in range(lognormal(rng, 6, 0.8, 1, 60)):
                lab.udp(t, c, w.servers["coap"], port, 5683, int(rng.integers(12, 40)))
                lab.udp(
                    t + int(rng.integers(500, 20_000)),
                    w.servers["coap"],
                    c,
                    5683,
                    port,
                    int(rng.integers(8, 200)),
                )
                t += us(rng.uniform(2, 60))
            continue
        conn = open_tcp(lab, c, w.servers["mqtt"], int(rng.choice([1883, 8883])), "mqtt", t)
        t = conn.exchange(conn.handshake(t), int(rng.integers(30, 80)), 4, 500)
        t = conn.exchange(t + 100, int(rng.integers(12, 60)), 5, 300)
        keep = float(rng.choice([15, 30, 60]))
        end = t + us(rng.uniform(60, 800))
        while t < end:
            t += us(keep * rng.uniform(0.3, 1.0))
            if rng.random() < 0.5:
                t = conn.exchange(t, int(rng.integers(20, 200)), 0, 0)
            else:
                t = conn.exchange(t, 2, 2, int(rng.integers(200, 3000)))  # PINGREQ / PINGRESP
        conn.close(t, str(rng.choice(["fin_client", "open", "rst_server"])))


BenignApp = Callable[[Lab, World, int], None]
