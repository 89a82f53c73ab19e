"""Application-layer DoS attacks against the web server: HTTP floods (Hulk-like, fast and
slow), slowloris, slow POST and slow read at several intervals. Every label has the form
``DoS <kind>`` so that the data layer groups it into the CIC ``DoS`` family."""

from __future__ import annotations

from flowsentinel.datasets.lab.base import Endpoint, Lab, us
from flowsentinel.datasets.lab.benign import open_tcp
from flowsentinel.datasets.lab.stacks import STACKS, draw_path
from flowsentinel.datasets.lab.tcp import Conn
from flowsentinel.datasets.lab.wire import ACK, PSH
from flowsentinel.datasets.lab.world import ATTACKER, World

HULK = "DoS Hulk"
SLOWLORIS = "DoS slowloris"
SLOWPOST = "DoS Slowhttptest"
SLOWREAD = "DoS slow read"


def attacker(lab: Lab, ip: str | None = None, kind: str | None = None) -> Endpoint:
    """A single attacking host: the lab's attacker (LAN-near) or a public address."""
    if ip is None:
        return lab.endpoint(lab.public_ip(), STACKS["linux"], draw_path(lab.rng, kind))
    return lab.endpoint(ip, STACKS["linux"], draw_path(lab.rng, "metro"))


def hulk(lab: Lab, w: World, n: int) -> None:
    """HTTP GET floods with random URLs: a fast burst from the attacker and a slow one (a few
    connections per second) from a public address; the server answers or the client resets."""
    rng = lab.rng
    fast = attacker(lab, ATTACKER)
    slow = attacker(lab)
    web = w.servers["web"]
    for k in range(n):
        is_fast = k < 0.75 * n
        src = fast if is_fast else slow
        t0 = lab.start(100, 190) if is_fast else lab.start(200, 800)
        conn = open_tcp(lab, src, web, 80, "hulk-fast" if is_fast else "hulk-slow", t0, HULK)
        t = conn.handshake(t0)
        url = f"GET /?{rng.integers(10**9)}={rng.integers(10**9)} HTTP/1.1\r\n".encode()
        t = conn.send(
            t + int(rng.integers(50, 500)), True, int(rng.integers(300, 700)), lab.pk.head(url)
        )
        if rng.random() < 0.7:
            t = conn.send(t + us(rng.uniform(0.005, 0.6)), False, int(rng.integers(11_000, 12_500)))
            conn.close(t + int(rng.integers(100, 5000)), "fin_client")
        else:
            conn.close(t + us(rng.uniform(0.5, 3)), "rst_client")


def _slow_conn(lab: Lab, w: World, label: str, kind: str, t: int) -> tuple[Conn, int]:
    """A connection for a slow attack (from the attacker or a public address), handshake done."""
    src = attacker(lab, ATTACKER) if lab.rng.random() < 0.6 else attacker(lab)
    conn = open_tcp(lab, src, w.servers["web"], 80, kind, t, label=label)
    return conn, conn.handshake(t)


def slowloris(lab: Lab, w: World, n: int) -> None:
    """Partial request headers kept open with one more header line every 5 to 60 s."""
    rng = lab.rng
    for _ in range(n):
        interval = float(rng.choice([5.0, 10.0, 15.0, 30.0, 60.0]))
        conn, t = _slow_conn(lab, w, SLOWLORIS, f"slowloris-{interval:g}s", lab.start(150, 600))
        end = t + us(rng.uniform(100, 300))
        head = lab.pk.head(
            f"GET /?{rng.integers(2000)} HTTP/1.1\r\nUser-Agent: Mozilla/5.0\r\n".encode()
        )
        t = conn.send(t + 50, True, int(rng.integers(150, 260)), head, push=True)
        while t < end:
            t += us(interval * rng.uniform(0.9, 1.1))
            t = conn.send(t, True, int(rng.integers(8, 16)))
        conn.close(t, "fin_server" if rng.random() < 0.5 else "rst_server")


def slowpost(lab: Lab, w: World, n: int) -> None:
    """POST with a large Content-Length, the body sent a few bytes every 1 to 10 s."""
    rng = lab.rng
    for _ in range(n):
        interval = float(rng.choice([1.0, 3.0, 10.0]))
        conn, t = _slow_conn(lab, w, SLOWPOST, f"slowpost-{interval:g}s", lab.start(300, 700))
        head = lab.pk.head(
            b"POST /login.php HTTP/1.1\r\nHost: 192.168.10.50\r\nContent-Length: "
            + str(int(rng.integers(4096, 65536))).encode()
            + b"\r\n\r\n"
        )
        t = conn.send(t + 50, True, int(rng.integers(120, 260)), head)
        end = t + us(rng.uniform(30, 200))
        while t < end:
            t += us(interval * rng.uniform(0.5, 1.5))
            t = conn.send(t, True, int(rng.integers(1, 20)))
        conn.close(t, "fin_client")


def slowread(lab: Lab, w: World, n: int) -> None:
    """Slow read: a normal request, then a tiny receive window: the server sends a few bytes,
    the client advertises a zero window, the server probes, the client opens a little."""
    rng = lab.rng
    for _ in range(n):
        interval = float(rng.choice([1.0, 3.0, 6.0]))
        c, t = _slow_conn(lab, w, SLOWREAD, f"slowread-{interval:g}s", lab.start(400, 800))
        t = c.send(t + 50, True, int(rng.integers(100, 300)))
        window = int(rng.choice([1, 16, 32, 64, 128]))
        end = t + us(rng.uniform(60, 240))
        while t < end:
            c.pkt(t, False, ACK | PSH, plen=window)
            c.sseq += window
            c.pkt(t + c.c_delay(), True, ACK, win=0)
            t += us(interval * rng.uniform(0.5, 1.5))
            c.pkt(t, True, ACK, win=window)
        c.close(t, "rst_client")
