"""Elastic Common Schema documents of incidents and per-flow verdicts.

An incident is an ``event.kind: alert`` in the categories ``network`` and
``intrusion_detection``; a flow is an ``event.kind: event`` (``alert`` when the model flagged
it) of type ``connection``/``end``. ``source.*`` is the side that sent the first packet (for an
incident: its sources, named by the top one), ``destination.*`` the other side (the target).
Every field used is an ECS field of the type ECS gives it (``tests/alerts/test_ecs.py`` checks
each document against the definitions in ECS's ``generated/ecs/ecs_flat.yml``); our own fields
are under the custom field set ``flowsentinel.*``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowsentinel.alerts import families
from flowsentinel.alerts.eve import (
    VERDICT_FIELDS,
    flow_times,
    incident_extras,
    suricata_time,
    suricata_time_of,
    top_source,
)
from flowsentinel.core import schema as sc
from flowsentinel.incidents import Incident

OURS = "flowsentinel"
EVENT_MODULE = "flowsentinel"


@dataclass(frozen=True)
class Observer:
    """What ``observer.*`` says: the sensor that saw the traffic."""

    name: str = field(default_factory=socket.gethostname)
    product: str = "flowsentinel"
    vendor: str = "flowsentinel"
    type: str = "ids"

    def fields(self) -> dict[str, str]:
        return {"name": self.name, "product": self.product, "vendor": self.vendor,
                "type": self.type}  # fmt: skip


def iso_time(us: int) -> str:
    """Microseconds since 1970 as ISO 8601 in UTC with microseconds (``…Z``)."""
    text = suricata_time(us)
    return text[: -len("+0000")] + "Z"


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = _present(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out


def threat_fields(family: str) -> dict[str, Any] | None:
    """``threat.*`` of a family with an ATT&CK technique (None without one)."""
    found = families.technique(family)
    if found is None:
        return None
    return {
        "framework": families.ATTACK_FRAMEWORK,
        "tactic": {"id": [found.tactic_id], "name": [found.tactic]},
        "technique": {"id": [found.technique_id], "name": [found.technique]},
    }


def rule_fields(family: str, label: str) -> dict[str, Any]:
    """``rule.*``: the signature of a family and label, as the EVE alert names it."""
    return {
        "id": str(families.signature_id(family, label)),
        "name": f"FLOWSENTINEL {family} {label}",
        "category": families.category(family),
        "ruleset": "flowsentinel",
    }


def incident_document(incident: Incident, observer: Observer | None = None) -> dict[str, Any]:
    """The ECS document of an incident (opened, updated or closed)."""
    observer = observer or Observer()
    when = incident.first_us if incident.state == "open" else incident.last_us
    packets = incident.to_target.packets + incident.from_target.packets
    nbytes = incident.to_target.bytes + incident.from_target.bytes
    level = families.severity(incident.confidence)
    return _present(
        {
            "@timestamp": iso_time(when),
            "message": (
                f"{incident.family} ({incident.label}) on {incident.target_ip}"
                f"{'' if incident.target_port is None else f':{incident.target_port}'}"
                f" from {incident.sources} source(s), {incident.state}"
            ),
            "event": {
                "kind": "alert",
                "category": ["network", "intrusion_detection"],
                "type": ["info"],
                "id": incident.id,
                "module": EVENT_MODULE,
                "dataset": f"{EVENT_MODULE}.incident",
                "start": iso_time(incident.first_us),
                "end": iso_time(incident.last_us),
                "duration": max(0, incident.last_us - incident.first_us) * 1000,  # ns
                "severity": level,
                "risk_score": round(100.0 * incident.confidence, 2),
            },
            "source": {
                "ip": top_source(incident),
                "packets": incident.to_target.packets,
                "bytes": incident.to_target.bytes,
            },
            "destination": {
                "ip": incident.target_ip,
                "port": incident.target_port,
                "packets": incident.from_target.packets,
                "bytes": incident.from_target.bytes,
            },
            "network": {"transport": incident.protocol, "packets": packets, "bytes": nbytes},
            "rule": rule_fields(incident.family, incident.label),
            "threat": threat_fields(incident.family),
            "observer": observer.fields(),
            "labels": {"family": incident.family, "state": incident.state},
            "tags": ["flowsentinel", incident.family],
            OURS: incident_extras(incident),
        }
    )


def _sum(a: Any, b: Any) -> int | None:
    return None if a is None or b is None else int(a) + int(b)


def flow_document(
    record: Mapping[str, Any],
    *,
    benign: str = sc.BENIGN,
    observer: Observer | None = None,
    fallback_us: int | None = None,
) -> dict[str, Any]:
    """The ECS document of one flow record (:func:`flowsentinel.scanning.flow_records`)."""
    observer = observer or Observer()
    first, last = flow_times(record, fallback_us)
    label = record.get("label")
    flagged = label not in (None, benign)
    start = record.get("start")
    known_start = bool(start)
    stamp = suricata_time_of(start)[:-5] + "Z" if start else iso_time(first)
    return _present(
        {
            "@timestamp": stamp,
            "event": {
                "kind": "alert" if flagged else "event",
                "category": ["network", "intrusion_detection"] if flagged else ["network"],
                "type": ["connection", "end"],
                "module": EVENT_MODULE,
                "dataset": f"{EVENT_MODULE}.flow",
                "start": stamp if known_start else None,
                "end": iso_time(last) if known_start and last is not None else None,
                "duration": (last - first) * 1000 if known_start and last is not None else None,
            },
            "source": {
                "ip": record.get("src_ip"),
                "port": record.get("src_port"),
                "packets": record.get("fwd_packets"),
                "bytes": record.get("fwd_bytes"),
            },
            "destination": {
                "ip": record.get("dst_ip"),
                "port": record.get("dst_port"),
                "packets": record.get("bwd_packets"),
                "bytes": record.get("bwd_bytes"),
            },
            "network": {
                "transport": record.get("protocol"),
                "packets": _sum(record.get("fwd_packets"), record.get("bwd_packets")),
                "bytes": _sum(record.get("fwd_bytes"), record.get("bwd_bytes")),
            },
            "rule": {"name": str(label)} if flagged else None,
            "observer": observer.fields(),
            OURS: {k: record.get(k) for k in VERDICT_FIELDS if record.get(k) is not None},
        }
    )
