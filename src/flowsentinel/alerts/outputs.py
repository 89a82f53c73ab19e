"""One place that turns incidents, flow records and a run's counters into the chosen format
(``jsonl``: our own records as they are, ``eve``: Suricata EVE JSON, ``ecs``: Elastic Common
Schema) and hands them to the configured sinks.

Used by ``scan -o FILE --format F`` (:class:`FlowWriter` over the file) and ``watch
--alert-to SPEC --format F`` (:class:`FlowWriter` over stdout, teeing every record into an
:class:`AlertOutputs`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Literal, Protocol, get_args

from flowsentinel.alerts import ecs, eve
from flowsentinel.alerts.sinks import QueuedSink, build_sink, dumps, parse_sink_spec
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.incidents import Incident

Format = Literal["jsonl", "eve", "ecs"]
FORMATS: tuple[str, ...] = get_args(Format)


def check_format(value: str, option: str = "--format") -> Format:
    """A format name, or an :class:`InputError` naming the option."""
    if value not in FORMATS:
        raise InputError(f"{option} {value!r}: not a format (accepted: {', '.join(FORMATS)})")
    return value  # type: ignore[return-value]  # checked against FORMATS just above


class AlertMetrics(Protocol):
    """What the outputs count (:class:`flowsentinel.service.metrics.AlertMetrics`)."""

    def count_alert(self, family: str, n: int = 1) -> None: ...

    def sink_event(self, sink: str, event: str, n: int = 1) -> None: ...


def render_flow(
    record: Mapping[str, Any],
    fmt: Format,
    *,
    benign: str = sc.BENIGN,
    observer: ecs.Observer | None = None,
) -> Mapping[str, Any]:
    """A flow record in the format."""
    if fmt == "eve":
        return eve.flow_event(record, benign=benign)
    if fmt == "ecs":
        return ecs.flow_document(record, benign=benign, observer=observer)
    return record


def render_incident(
    incident: Incident, fmt: Format, *, observer: ecs.Observer | None = None
) -> dict[str, Any]:
    """An incident in the format (``jsonl``: its fields as they are)."""
    if fmt == "eve":
        return eve.incident_alert(incident)
    if fmt == "ecs":
        return ecs.incident_document(incident, observer)
    return {"type": "incident", **dataclasses.asdict(incident)}


def render_stats(counters: eve.RunCounters, fmt: Format) -> dict[str, Any]:
    """A run's counters in the format (ECS: an ``event.kind: metric`` document)."""
    if fmt == "eve":
        return eve.stats_event(counters)
    fields = dataclasses.asdict(counters)
    if fmt == "ecs":
        return {
            "@timestamp": ecs.iso_time(eve.now_us()),
            "event": {
                "kind": "metric",
                "module": ecs.EVENT_MODULE,
                "dataset": f"{ecs.EVENT_MODULE}.stats",
            },
            ecs.OURS: fields,
        }
    return {"type": "stats", **fields}


class AlertOutputs:
    """The sinks of a run, fed records in one format; counts alerts by family."""

    def __init__(
        self,
        sinks: list[QueuedSink],
        fmt: Format = "eve",
        *,
        benign: str = sc.BENIGN,
        observer: ecs.Observer | None = None,
        metrics: AlertMetrics | None = None,
    ) -> None:
        self.sinks = sinks
        self.format = fmt
        self.benign = benign
        self.observer = observer or ecs.Observer()
        self.metrics = metrics
        self.alerts_by_family: dict[str, int] = {}

    @classmethod
    def from_specs(
        cls,
        specs: Iterable[str],
        fmt: Format,
        spool_dir: Path,
        *,
        option: str = "--alert-to",
        metrics: AlertMetrics | None = None,
        **options: Any,
    ) -> AlertOutputs:
        """The outputs of ``--alert-to`` values (a bad one raises an :class:`InputError`)."""
        hook = metrics.sink_event if metrics is not None else None
        sinks = [
            build_sink(parse_sink_spec(s, option=option), spool_dir, option=option, on_event=hook)
            for s in specs
        ]
        return cls(sinks, fmt, metrics=metrics, **options)

    def start(self) -> AlertOutputs:
        for sink in self.sinks:
            sink.start()
        return self

    def _emit(self, document: Mapping[str, Any]) -> None:
        for sink in self.sinks:
            sink.submit(document)

    def _count(self, family: str) -> None:
        self.alerts_by_family[family] = self.alerts_by_family.get(family, 0) + 1
        if self.metrics is not None:
            self.metrics.count_alert(family)

    def incident(self, incident: Incident) -> None:
        """Send an incident (counted once, when it opens)."""
        if incident.state == "open":
            self._count(incident.family)
        self._emit(render_incident(incident, self.format, observer=self.observer))

    def flow(self, record: Mapping[str, Any], document: Mapping[str, Any] | None = None) -> None:
        """Send a flow record (``document``: already rendered); a flagged flow counts as an
        alert of its label."""
        label = record.get("label")
        if label is not None and label != self.benign:
            self._count(str(label))
        self._emit(document if document is not None else self._render(record))

    def _render(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return render_flow(record, self.format, benign=self.benign, observer=self.observer)

    def stats(self, counters: eve.RunCounters) -> None:
        self._emit(render_stats(counters, self.format))

    def close(self, timeout: float = 10.0) -> dict[str, dict[str, int]]:
        """Deliver or spool everything, stop the workers; the counters of every sink."""
        for sink in self.sinks:
            sink.close(timeout)
        return {sink.name: sink.counters.as_dict() for sink in self.sinks}


class FlowWriter:
    """A text stream for :func:`flowsentinel.scanning.scan_frames`: the JSON lines it writes
    go out in ``fmt`` (``jsonl`` unchanged), and to ``outputs`` too when given."""

    def __init__(
        self,
        out: IO[str] | None,
        fmt: Format,
        *,
        benign: str = sc.BENIGN,
        outputs: AlertOutputs | None = None,
        observer: ecs.Observer | None = None,
    ) -> None:
        self.out = out
        self.format = fmt
        self.benign = benign
        self.outputs = outputs
        self.observer = observer or (outputs.observer if outputs else None)

    def write(self, text: str) -> int:
        if self.format == "jsonl" and self.outputs is None:
            return self.out.write(text) if self.out is not None else len(text)
        lines = []
        for line in text.splitlines():
            record = json.loads(line)
            document = render_flow(record, self.format, benign=self.benign,
                                   observer=self.observer)  # fmt: skip
            if self.outputs is not None:
                self.outputs.flow(record, document)
            lines.append(dumps(document) + "\n")
        if self.out is not None:
            self.out.write("".join(lines))
        return len(text)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()
