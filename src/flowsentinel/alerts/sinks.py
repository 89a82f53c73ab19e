"""Where alerts go, and the promise that none is lost silently.

Sinks: a JSON-lines file rotated by size (:class:`FileSink`), syslog RFC 5424 over UDP or TCP
(:class:`SyslogSink`; TCP frames use octet counting, RFC 6587 §3.4.1), an HTTP webhook
(:class:`WebhookSink`: one JSON body per POST, a timeout). Each sits behind a
:class:`QueuedSink`: a bounded queue drained by one worker thread, which retries a failed
delivery with exponential backoff. A record that still cannot be delivered, or that the full
queue cannot take, is appended to the sink's spool file (JSON lines) and counted; the spool is
replayed first when the sink starts again and on :meth:`QueuedSink.flush`. Counters per sink:
``delivered``, ``retried``, ``spooled``, ``replayed``.

:func:`parse_sink_spec` reads the CLI's ``--alert-to`` values::

    file:/var/log/flowsentinel/alerts.json[?max_bytes=104857600&keep=5]
    syslog+udp://127.0.0.1:514[?facility=local0]
    syslog+tcp://collector.example:6514
    http://host:8080/path   https://host/path
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, urlsplit

from flowsentinel.core.errors import InputError

Record = Mapping[str, Any]
#: called on every counted event: (sink name, event, count)
EventHook = Callable[[str, str, int], None]


class DeliveryError(Exception):
    """A record that a sink could not deliver (the receiver refused it or did not answer)."""


class Sink(Protocol):
    """Something that delivers one record or raises (``OSError``, :class:`DeliveryError`)."""

    name: str

    def send(self, record: Record) -> None: ...

    def close(self) -> None: ...


def dumps(record: Record) -> str:
    """One record as compact JSON (no newline)."""
    return json.dumps(record, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- file ----------------------------------------------------------------------------------


class FileSink:
    """JSON lines appended to ``path``; when a line would take the file past ``max_bytes`` the
    file is rotated (``path.1`` is the newest old file) and only ``keep`` old files stay."""

    def __init__(self, path: Path, *, max_bytes: int = 100 * 2**20, keep: int = 5) -> None:
        self.name = f"file:{path}"
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("ab")

    def send(self, record: Record) -> None:
        line = (dumps(record) + "\n").encode("utf-8")
        size = self._fh.tell()
        if size and size + len(line) > self.max_bytes:
            self._rotate()
        self._fh.write(line)
        self._fh.flush()

    def _rotate(self) -> None:
        self._fh.close()
        old = [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.keep + 1)]
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            old[-1].unlink(missing_ok=True)
            for newer, older in zip(reversed(old[:-1]), reversed(old[1:]), strict=True):
                if newer.exists():
                    newer.replace(older)
            self.path.replace(old[0])
        self._fh = self.path.open("ab")

    def close(self) -> None:
        self._fh.close()


# --- syslog --------------------------------------------------------------------------------

#: syslog facilities by name (RFC 5424 §6.2.1)
FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
#: syslog severity of a Suricata severity (1 highest): critical, error, warning
SYSLOG_SEVERITY: dict[int, int] = {1: 2, 2: 3, 3: 4}
SEVERITY_INFO = 6  # flow and stats records
SEVERITY_NOTICE = 5  # anything else
#: the SD-ID of our structured data: 32473 is the enterprise number RFC 5612 reserves for
#: documentation and examples (a site with its own number can put it here)
SD_ID = "flowsentinel@32473"


def record_severity(record: Record) -> int:
    """Syslog severity of a record: from the EVE ``alert.severity`` or ECS
    ``event.severity`` (1 → critical, 2 → error, 3 → warning); flows and stats are
    informational."""
    alert = record.get("alert")
    event = record.get("event")
    level = None
    if isinstance(alert, Mapping):
        level = alert.get("severity")
    elif isinstance(event, Mapping):
        level = event.get("severity")
    if isinstance(level, int) and level in SYSLOG_SEVERITY:
        return SYSLOG_SEVERITY[level]
    kind = record.get("event_type") or (event.get("kind") if isinstance(event, Mapping) else None)
    return SEVERITY_INFO if kind in ("flow", "stats", "event") else SEVERITY_NOTICE


def _msgid(record: Record) -> str:
    event = record.get("event")
    kind = record.get("event_type") or (event.get("kind") if isinstance(event, Mapping) else None)
    return str(kind) if kind else "-"


def _sd_escape(value: object) -> str:
    """A PARAM-VALUE with ``"``, ``\\`` and ``]`` escaped (RFC 5424 §6.3.3)."""
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(record: Record) -> str:
    """``[flowsentinel@32473 incident="…" family="…"]`` from the record's own object, or
    ``-`` when it names neither."""
    ours = record.get("flowsentinel")
    if not isinstance(ours, Mapping):
        return "-"
    params = [
        f'{name}="{_sd_escape(ours[key])}"'
        for name, key in (("incident", "incident_id"), ("family", "family"), ("label", "label"))
        if ours.get(key) is not None
    ]
    return f"[{SD_ID} {' '.join(params)}]" if params else "-"


def syslog_message(
    record: Record, *, facility: int, hostname: str, app_name: str = "flowsentinel"
) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG``, the
    record as JSON in MSG (UTF-8)."""
    pri = facility * 8 + record_severity(record)
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    header = f"<{pri}>1 {stamp} {hostname or '-'} {app_name} {os.getpid()} {_msgid(record)}"
    return f"{header} {structured_data(record)} {dumps(record)}".encode()


class SyslogSink:
    """RFC 5424 messages to a collector over UDP (one datagram each) or TCP (octet-counting
    framing, RFC 6587: ``LEN SP MSG``; the connection is kept and made again after an error)."""

    def __init__(
        self,
        host: str,
        port: int,
        transport: Literal["udp", "tcp"] = "udp",
        *,
        facility: int = FACILITIES["local0"],
        timeout: float = 5.0,
    ) -> None:
        self.name = f"syslog+{transport}://{host}:{port}"
        self.address = (host, port)
        self.transport = transport
        self.facility = facility
        self.timeout = timeout
        self.hostname = socket.gethostname()
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if self.transport == "udp":
                family = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0][0]
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
            else:
                self._sock = socket.create_connection(self.address, timeout=self.timeout)
            self._sock.settimeout(self.timeout)
        return self._sock

    def send(self, record: Record) -> None:
        message = syslog_message(record, facility=self.facility, hostname=self.hostname)
        try:
            sock = self._connect()
            if self.transport == "udp":
                sock.sendto(message, self.address)
            else:
                sock.sendall(f"{len(message)} ".encode() + message)
        except OSError:
            self.close()  # a new connection for the next try
            raise

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


# --- webhook -------------------------------------------------------------------------------


class WebhookSink:
    """One ``POST`` of the record as JSON per alert; any answer but 2xx, or none within
    ``timeout`` seconds, is a failed delivery. Proxies from the environment are not used: the
    record goes only to the address configured."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.name = url
        self.url = url
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send(self, record: Record) -> None:
        request = urllib.request.Request(
            self.url,
            data=dumps(record).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": "flowsentinel"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                status = answer.status
                answer.read()
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"{self.url} answered {exc.code}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"{self.url} answered {status}")

    def close(self) -> None:
        return None


# --- the queue, retries and spool ----------------------------------------------------------


@dataclass
class Counters:
    """What happened to a sink's records (each record is delivered, or spooled, or both in
    turn: spooled, then delivered when replayed)."""

    delivered: int = 0
    retried: int = 0
    spooled: int = 0
    replayed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


_REPLAY = object()  # a queue item: replay the spool now


@dataclass
class QueuedSink:
    """A sink behind a bounded queue and a worker thread, with retries and a spool (see the
    module docstring). :meth:`submit` never blocks."""

    sink: Sink
    spool: Path
    queue_size: int = 1000
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    #: after a record failed all its tries, the receiver counts as down for this long: records
    #: go straight to the spool (no tries), and the spool is replayed when the time is up
    down_s: float = 5.0
    on_event: EventHook | None = None
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self.name = self.sink.name
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.queue_size)
        self._closing = threading.Event()
        self._spool_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._down_until: float | None = None  # monotonic time the receiver is tried again

    # counting
    def _count(self, event: str, n: int = 1) -> None:
        setattr(self.counters, event, getattr(self.counters, event) + n)
        if self.on_event is not None:
            self.on_event(self.name, event, n)

    # life cycle
    def start(self) -> QueuedSink:
        """Start the worker; it replays the spool left by an earlier run before anything new."""
        if self._thread is None:
            self._queue.put(_REPLAY)
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()
        return self

    def submit(self, record: Record) -> bool:
        """Queue a record; ``False`` when the queue is full (the record is spooled)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._spool_records([record])
            return False
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver what is queued, then replay the spool; ``True`` when both are done within
        ``timeout`` seconds."""
        try:
            self._queue.put(_REPLAY, timeout=timeout)
        except queue.Full:
            return False
        return self._drained(timeout)

    def _drained(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until the worker has handled every item."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: not self._queue.unfinished_tasks, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (one try each: what fails is spooled), stop the worker and
        close the sink; what the worker did not reach in ``timeout`` seconds is spooled."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)
        left = list(self._take_all())
        if left:
            self._spool_records(left)
        self.sink.close()

    def _take_all(self) -> Iterator[Record]:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            self._queue.task_done()
            if item is not _REPLAY:
                yield item

    # the worker
    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._closing.is_set():
                    return
                if self._down_until is not None and time.monotonic() >= self._down_until:
                    self._replay()  # the receiver may be back
                continue
            try:
                if item is _REPLAY:
                    self._replay()
                elif self._is_down() or not self._deliver(item):
                    self._spool_records([item])
            finally:
                self._queue.task_done()

    def _is_down(self) -> bool:
        return self._down_until is not None and time.monotonic() < self._down_until

    def _deliver(self, record: Record) -> bool:
        """Send with retries (waits of ``backoff_s`` × 2^attempt, at most ``max_backoff_s``;
        none once closing); ``False`` when every try failed, and the receiver counts as down
        for ``down_s`` seconds (a success ends that)."""
        delivered = self._send_with_retries(record)
        self._down_until = None if delivered else time.monotonic() + self.down_s
        return delivered

    def _send_with_retries(self, record: Record) -> bool:
        attempts = 1 if self._closing.is_set() else self.retries + 1
        for attempt in range(attempts):
            try:
                self.sink.send(record)
            except (OSError, DeliveryError):
                if attempt + 1 == attempts:
                    return False
                self._count("retried")
                if self._closing.wait(min(self.max_backoff_s, self.backoff_s * 2**attempt)):
                    return self._try_once(record)
                continue
            self._count("delivered")
            return True
        return False

    def _try_once(self, record: Record) -> bool:
        try:
            self.sink.send(record)
        except (OSError, DeliveryError):
            return False
        self._count("delivered")
        return True

    # the spool
    def _spool_records(self, records: list[Record]) -> None:
        self._append(records)
        self._count("spooled", len(records))

    def _append(self, records: list[Record]) -> None:
        with self._spool_lock:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            with self.spool.open("a", encoding="utf-8") as fh:
                fh.write("".join(dumps(r) + "\n" for r in records))
                fh.flush()
                os.fsync(fh.fileno())

    @property
    def _replaying(self) -> Path:
        """The spool while it is replayed: the records stay on disk until delivered."""
        return self.spool.with_name(self.spool.name + ".replaying")

    def _take_spool(self) -> list[Record]:
        """The spooled records, moved aside to ``<spool>.replaying`` (a replay that a crash
        cut short is found there and goes first); a line that is not JSON is kept aside in
        ``<spool>.bad``."""
        with self._spool_lock:
            replaying = self._replaying
            if self.spool.exists():
                if replaying.exists():  # left by a crash: it goes first
                    with replaying.open("a", encoding="utf-8") as fh:
                        fh.write(self.spool.read_text(encoding="utf-8"))
                    self.spool.unlink()
                else:
                    self.spool.replace(replaying)
            if not replaying.exists():
                return []
            lines = replaying.read_text(encoding="utf-8").splitlines()
        records, bad = [], []
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                bad.append(line)
        if bad:
            with self.spool.with_name(self.spool.name + ".bad").open("a", encoding="utf-8") as fh:
                fh.write("".join(b + "\n" for b in bad))
        return records

    def _replay(self) -> None:
        """Deliver the spooled records in order (tried even when the receiver counts as down:
        this is how it is found back); at the first one that fails (after its retries) it and
        the rest go back to the spool, not counted again."""
        records = self._take_spool()
        if not records:
            self._replaying.unlink(missing_ok=True)
            self._down_until = None  # nothing waits: the next record tries the receiver
            return
        for i, record in enumerate(records):
            if not self._deliver(record):
                self._append(records[i:])
                break
            self._count("replayed")
        self._replaying.unlink(missing_ok=True)


# --- specs ---------------------------------------------------------------------------------

SPEC_FORMS = "file:PATH, syslog+udp://HOST[:PORT], syslog+tcp://HOST[:PORT], http(s)://HOST/PATH"
SYSLOG_PORT = 514


@dataclass(frozen=True)
class SinkSpec:
    """A parsed ``--alert-to`` value."""

    kind: Literal["file", "syslog", "http"]
    spec: str
    path: Path | None = None
    host: str = ""
    port: int = 0
    transport: Literal["udp", "tcp"] = "udp"
    url: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def spool_name(self) -> str:
        """The file name of this sink's spool (the same spec, the same spool)."""
        digest = hashlib.blake2b(self.spec.encode(), digest_size=6).hexdigest()
        return f"{self.kind}-{digest}.jsonl"


def _fail(option: str, spec: str, why: str) -> InputError:
    return InputError(f"{option} {spec!r}: {why} (accepted: {SPEC_FORMS})")


def _options(query: str, allowed: tuple[str, ...], option: str, spec: str) -> dict[str, str]:
    found = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(found) - set(allowed))
    if unknown:
        raise _fail(option, spec, f"unknown option {unknown[0]!r}")
    return found


def _int_option(options: dict[str, str], name: str, default: int, option: str, spec: str) -> int:
    text = options.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise _fail(option, spec, f"{name} must be a whole number, not {text!r}")
    return int(text)


def parse_sink_spec(spec: str, *, option: str = "--alert-to") -> SinkSpec:
    """A ``--alert-to`` value → :class:`SinkSpec`; a bad one raises an :class:`InputError`
    naming the option and the value."""
    if spec.startswith("file:"):
        rest = spec.removeprefix("file:").removeprefix("//")
        path_text, _, query = rest.partition("?")
        if not path_text:
            raise _fail(option, spec, "no file path")
        opts = _options(query, ("max_bytes", "keep"), option, spec)
        return SinkSpec("file", spec, path=Path(path_text), options=opts)
    parts = urlsplit(spec)
    if parts.scheme in ("syslog+udp", "syslog+tcp"):
        if not parts.hostname:
            raise _fail(option, spec, "no host")
        try:
            port = parts.port or SYSLOG_PORT
        except ValueError:
            raise _fail(option, spec, "the port is not a number from 1 to 65535") from None
        opts = _options(parts.query, ("facility",), option, spec)
        if opts.get("facility", "local0") not in FACILITIES:
            raise _fail(option, spec, f"unknown facility {opts['facility']!r}")
        transport: Literal["udp", "tcp"] = "udp" if parts.scheme == "syslog+udp" else "tcp"
        return SinkSpec("syslog", spec, host=parts.hostname, port=port, transport=transport,
                        options=opts)  # fmt: skip
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise _fail(option, spec, "no host")
        try:
            _ = parts.port
        except ValueError:
            raise _fail(option, spec, "the port is not a number from 1 to 65535") from None
        return SinkSpec("http", spec, url=spec)
    raise _fail(option, spec, "not a sink")


def build_sink(
    spec: SinkSpec,
    spool_dir: Path,
    *,
    option: str = "--alert-to",
    on_event: EventHook | None = None,
    **queue_options: Any,
) -> QueuedSink:
    """The :class:`QueuedSink` of a spec (not started), its spool in ``spool_dir``."""
    sink: Sink
    if spec.kind == "file":
        assert spec.path is not None
        max_bytes = _int_option(spec.options, "max_bytes", 100 * 2**20, option, spec.spec)
        keep = _int_option(spec.options, "keep", 5, option, spec.spec)
        try:
            sink = FileSink(spec.path, max_bytes=max_bytes, keep=keep)
        except OSError as exc:
            raise _fail(option, spec.spec, f"cannot open: {exc.strerror or exc}") from None
    elif spec.kind == "syslog":
        facility = FACILITIES[spec.options.get("facility", "local0")]
        sink = SyslogSink(spec.host, spec.port, spec.transport, facility=facility)
    else:
        sink = WebhookSink(spec.url)
    spool = spool_dir / spec.spool_name()
    return QueuedSink(sink, spool, on_event=on_event, **queue_options)
