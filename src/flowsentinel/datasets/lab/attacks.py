"""Application-layer DoS attacks against the web server: HTTP floods (Hulk-like, fast and
slow), slowloris, slow POST and slow read at several intervals. Every label has the form
``DoS <kind>`` so that the data layer groups it into the CIC ``DoS`` family."""

from __future__ import annotations

from flowsentinel.datasets.lab.base import Endpoint, Lab, us
from flowsentinel.datasets.lab.benign import open_tcp
from flowsentinel.datasets.lab.stacks import STACKS, draw_path
from flowsentinel.datasets.lab.tcp import Conn
from flowsentinel.datasets.lab.wire import ACK, FIN, PSH, RST
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
    """Partial request headers kept open with one more header line every 5 to 60 s (15 s most
    often, the common tool's default), the request line and first headers sent together or
    one send each; most connections opened in bursts (the tool opens its sockets at once),
    then torn down as :func:`_slow_end` draws."""
    rng = lab.rng
    burst = lab.start(150, 400)
    for _ in range(n):
        interval = float(rng.choice([5.0, 10.0, 15.0, 15.0, 30.0, 60.0]))
        t0 = burst + int(rng.integers(0, 3_000_000)) if rng.random() < 0.6 else lab.start(150, 600)
        conn, t = _slow_conn(lab, w, SLOWLORIS, f"slowloris-{interval:g}s", t0)
        end = t + us(rng.uniform(20, 300))
        get = f"GET /?{rng.integers(2000)} HTTP/1.1\r\n"
        if rng.random() < 0.5:  # the request line and each header as its own send
            lang = "Accept-language: en-US,en,q=0.5\r\n"
            sends = [
                (get, len(get)),
                ("User-Agent: ", int(rng.integers(80, 160))),
                (lang, len(lang)),
            ]
        else:
            sends = [(get + "User-Agent: ", int(rng.integers(150, 260)))]
        t += 50
        for text, size in sends:
            t = conn.send(t, True, size, lab.pk.head(text.encode()), push=True)
            t += int(rng.integers(20, 400))
        while t < end:
            t += us(interval * rng.uniform(0.9, 1.1))
            t = conn.send(t, True, int(rng.integers(8, 16)))
        _slow_end(lab, conn, t, interval)


def _slow_end(lab: Lab, conn: Conn, t: int, interval: float) -> None:
    """How a slow connection ends: the server resets it or times it out (a 408 answer, or a
    bare FIN) and resets the client's next header line, the tool stops (its kernel closes),
    or the capture ends first. The meter closes a flow at its first FIN, so the rest of the
    teardown is a short flow of its own."""
    rng = lab.rng
    how = str(rng.choice(["rst_server", "timeout_408", "timeout_fin", "tool_stops", "open"]))
    if how == "rst_server" or how == "open":
        conn.close(t, how)
        return
    if how == "tool_stops":
        conn.close(t + us(rng.uniform(0.1, interval)), "fin_client")
        return
    t += us(rng.uniform(0.5, 1.0) * interval)
    if how == "timeout_408":
        size = int(rng.integers(180, 520))  # "HTTP/1.1 408 Request Timeout" and a page
        conn.pkt(t, False, ACK | PSH, plen=size)
        conn.sseq += size
    conn.pkt(t + 50, False, FIN | ACK)
    conn.sseq += 1
    conn.pkt(t + 50 + conn.c_delay(), True, ACK)
    t += us(rng.uniform(0.05, 1.0) * interval)
    conn.pkt(t, True, ACK | PSH, plen=int(rng.integers(8, 16)))
    conn.pkt(t + conn.s_delay(), False, RST, win=0)


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
