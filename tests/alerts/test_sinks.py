"""Sinks against real local receivers (a UDP socket, a TCP server, an HTTP server on
127.0.0.1): RFC 5424 headers and RFC 6587 framing, retries, the spool and its replay, the
counters, queue overflow, file rotation, and the ``--alert-to`` parser."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from alertdata import incident

from flowsentinel.alerts import eve, sinks
from flowsentinel.core.errors import InputError
from flowsentinel.service.metrics import AlertMetrics

RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) "
    rb"(?P<sd>-|\[(?:[^\]\\]|\\.)*\]) (?P<msg>.*)$",
    re.DOTALL,
)
QUICK = {"retries": 1, "backoff_s": 0.01, "down_s": 0.0}


def _parse(message: bytes) -> dict[str, Any]:
    found = RFC5424.match(message)
    assert found, message[:120]
    parts = found.groupdict()
    assert dt.datetime.fromisoformat(parts["ts"].decode().replace("Z", "+00:00")).tzinfo
    return {"pri": int(parts["pri"]), "msgid": parts["msgid"].decode(),
            "sd": parts["sd"].decode(), "msg": json.loads(parts["msg"])}  # fmt: skip


def test_syslog_udp_rfc5424_header() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    spec = sinks.parse_sink_spec(f"syslog+udp://127.0.0.1:{port}?facility=local3")
    queued = sinks.build_sink(spec, Path("/nonexistent-spool-dir"), **QUICK).start()
    alert = eve.incident_alert(incident(label='DoS "slow" ]loris'))
    flow = {"event_type": "flow", "timestamp": "2017-07-05T09:00:01.000000+0000"}
    queued.submit(alert)
    queued.submit(flow)
    try:
        first, second = (_parse(receiver.recv(65535)) for _ in range(2))
    finally:
        queued.close()
        receiver.close()
    assert first["pri"] == 19 * 8 + 2  # local3, severity 1 alert → critical
    assert first["msgid"] == "alert" and first["msg"] == json.loads(eve.dumps(alert))
    assert first["sd"] == (
        '[flowsentinel@32473 incident="inc-7" family="DoS" label="DoS \\"slow\\" \\]loris"]'
    )
    assert (second["pri"], second["msgid"], second["sd"]) == (19 * 8 + 6, "flow", "-")
    assert queued.counters.as_dict() == {"delivered": 2, "retried": 0, "spooled": 0, "replayed": 0}


def _octet_frames(data: bytes) -> list[bytes]:
    """RFC 6587 octet counting: ``LEN SP MSG`` repeated."""
    frames = []
    while data:
        length, _, rest = data.partition(b" ")
        assert length.isdigit(), data[:20]
        frames.append(rest[: int(length)])
        data = rest[int(length) :]
    return frames


def test_syslog_tcp_octet_counting() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    port = server.getsockname()[1]
    got = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        conn.settimeout(5)
        with conn:
            while chunk := conn.recv(65536):
                got.extend(chunk)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    queued = sinks.build_sink(
        sinks.parse_sink_spec(f"syslog+tcp://127.0.0.1:{port}"), Path("/nonexistent"), **QUICK
    ).start()
    records = [eve.incident_alert(incident(id=f"inc-{i}")) for i in range(3)]
    for r in records:
        queued.submit(r)
    assert queued.flush(5)
    queued.close()  # closes the connection: the server sees the end
    thread.join(5)
    server.close()
    frames = [_parse(f) for f in _octet_frames(bytes(got))]
    assert [f["msg"]["flowsentinel"]["incident_id"] for f in frames] == ["inc-0", "inc-1", "inc-2"]
    assert all(f["pri"] == 16 * 8 + 2 for f in frames)  # local0 by default


class Receiver:
    """A local HTTP server answering 503 to the first ``failures`` POSTs, then 200; it can be
    held (requests wait until released)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        self.release = threading.Event()
        self.release.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.release.wait(10)
                outer.requests += 1
                if outer.requests <= outer.failures:
                    self.send_response(503)
                else:
                    outer.bodies.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(failures=4)
    yield found
    found.close()


def test_webhook_outage_nothing_lost(receiver: Receiver, tmp_path: Path) -> None:
    metrics = AlertMetrics()
    spec = sinks.parse_sink_spec(receiver.url)
    queued = sinks.build_sink(spec, tmp_path, on_event=metrics.sink_event, **QUICK).start()
    records = [{"n": i} for i in range(5)]
    for r in records:
        queued.submit(r)
    assert queued.flush(10)
    # 503 × 4: records 0 and 1 fail twice each (one retry) → spooled; 2, 3, 4 go through;
    # the flush replays 0 and 1
    assert sorted(b["n"] for b in receiver.bodies) == [0, 1, 2, 3, 4]
    assert [b["n"] for b in receiver.bodies[-2:]] == [0, 1]
    assert queued.counters.as_dict() == {"delivered": 5, "retried": 2, "spooled": 2, "replayed": 2}
    assert not queued.spool.exists() or queued.spool.read_text() == ""
    queued.close()
    text = metrics.exposition()[0].decode()
    for event in ("spooled", "replayed"):
        line = f'flowsentinel_alert_sink_events_total{{event="{event}",sink="{receiver.url}"}} 2.0'
        assert line in text


def test_down_receiver_is_not_hammered(tmp_path: Path) -> None:
    """After a record fails all its tries the receiver counts as down: the next records go
    straight to the spool (no request), and when it is back the spool is replayed in order."""
    receiver = Receiver(failures=2)
    try:
        queued = sinks.QueuedSink(
            sinks.WebhookSink(receiver.url), tmp_path / "s.jsonl",
            retries=1, backoff_s=0.01, down_s=0.5,
        ).start()  # fmt: skip
        for i in range(5):
            queued.submit({"n": i})
        deadline = time.monotonic() + 5
        while queued.counters.spooled < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.requests == 2  # record 0 and its retry; 1-4 spooled without a try
        while queued.counters.replayed < 5 and time.monotonic() < deadline:
            time.sleep(0.02)  # the worker tries again when down_s is over
        queued.close()
    finally:
        receiver.close()
    assert [b["n"] for b in receiver.bodies] == [0, 1, 2, 3, 4]
    assert queued.counters.as_dict() == {"delivered": 5, "retried": 1, "spooled": 5, "replayed": 5}


def test_spool_replayed_first_on_next_start(tmp_path: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/x"
    closed.close()  # nothing listens there: every POST is refused
    spool = tmp_path / "spool.jsonl"
    down = sinks.QueuedSink(sinks.WebhookSink(dead_url, timeout=1), spool, **QUICK).start()
    for i in range(3):
        down.submit({"n": i})
    down.close(5)
    assert down.counters.spooled == 3 and down.counters.delivered == 0
    assert [json.loads(x)["n"] for x in spool.read_text().splitlines()] == [0, 1, 2]

    receiver = Receiver()
    try:
        up = sinks.QueuedSink(sinks.WebhookSink(receiver.url), spool, **QUICK).start()
        up.submit({"n": 3})
        assert up.flush(10)
        up.close()
    finally:
        receiver.close()
    assert [b["n"] for b in receiver.bodies] == [0, 1, 2, 3]  # the spool first
    assert up.counters.as_dict() == {"delivered": 4, "retried": 0, "spooled": 0, "replayed": 3}
    assert not spool.exists()


def test_full_queue_spools_then_replays(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.release.clear()  # the first POST waits: the worker is stuck on it
    try:
        queued = sinks.QueuedSink(
            sinks.WebhookSink(receiver.url), tmp_path / "s.jsonl", queue_size=2, **QUICK
        ).start()
        assert queued.submit({"n": -1})
        deadline = time.monotonic() + 5
        while queued._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)  # the worker took {"n": -1} and waits on the server
        accepted = [queued.submit({"n": i}) for i in range(10)]
        assert accepted == [True, True] + [False] * 8
        assert queued.counters.spooled == 8
        receiver.release.set()
        assert queued.flush(10)
        queued.close()
    finally:
        receiver.close()
    assert sorted(b["n"] for b in receiver.bodies) == [-1, *range(10)]
    assert queued.counters.replayed == 8 and queued.counters.delivered == 11


def test_file_rotation_keeps_n(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    sink = sinks.FileSink(path, max_bytes=100, keep=2)
    for i in range(40):
        sink.send({"n": i, "pad": "x" * 10})  # 26 bytes a line: 3 lines a file
    sink.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["alerts.json", "alerts.json.1", "alerts.json.2"]
    assert all(f.stat().st_size <= 100 for f in files)
    kept = [json.loads(x)["n"] for f in reversed(files) for x in f.read_text().splitlines()]
    assert kept == list(range(40 - len(kept), 40)) and len(kept) >= 7  # the newest, in order


@pytest.mark.parametrize(
    ("spec", "kind", "where"),
    [
        ("file:/var/log/fs.json", "file", "/var/log/fs.json"),
        ("file:///var/log/fs.json?keep=3&max_bytes=1000", "file", "/var/log/fs.json"),
        ("syslog+udp://127.0.0.1:514", "syslog", ("127.0.0.1", 514, "udp")),
        ("syslog+tcp://[::1]", "syslog", ("::1", 514, "tcp")),
        ("http://127.0.0.1:8080/hook", "http", "http://127.0.0.1:8080/hook"),
    ],
)
def test_specs(spec: str, kind: str, where: Any) -> None:
    parsed = sinks.parse_sink_spec(spec)
    assert parsed.kind == kind
    got = {"file": lambda: str(parsed.path), "http": lambda: parsed.url,
           "syslog": lambda: (parsed.host, parsed.port, parsed.transport)}[kind]()  # fmt: skip
    assert got == where


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("kafka://x", "not a sink"),
        ("file:", "no file path"),
        ("syslog+udp://:514", "no host"),
        ("syslog+tcp://h:99999", "port"),
        ("syslog+udp://h?facility=mail2", "unknown facility"),
        ("file:/x?rotate=1", "unknown option 'rotate'"),
        ("http://", "no host"),
    ],
)
def test_bad_specs_one_line_naming_the_option(spec: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        sinks.parse_sink_spec(spec)
    message = str(caught.value)
    assert message.startswith(f"--alert-to {spec!r}: ") and why in message
    assert "\n" not in message


def test_bad_rotation_option(tmp_path: Path) -> None:
    spec = sinks.parse_sink_spec(f"file:{tmp_path}/a.json?keep=many")
    with pytest.raises(InputError, match="keep must be a whole number"):
        sinks.build_sink(spec, tmp_path)


def test_replay_cut_short_by_a_crash_goes_first(tmp_path: Path) -> None:
    """The spool stays on disk while it is replayed (``.replaying``): records a crash cut off
    are replayed on the next start, before the spool written after them."""
    spool = tmp_path / "s.jsonl"
    spool.with_name("s.jsonl.replaying").write_text('{"n": 0}\n{"n": 1}\n')
    spool.write_text('{"n": 2}\nnot json\n')
    receiver = Receiver()
    try:
        queued = sinks.QueuedSink(sinks.WebhookSink(receiver.url), spool, **QUICK).start()
        assert queued.flush(10)
        queued.close()
    finally:
        receiver.close()
    assert [b["n"] for b in receiver.bodies] == [0, 1, 2]
    assert queued.counters.replayed == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl.bad"]
    assert (tmp_path / "s.jsonl.bad").read_text() == "not json\n"
