"""Suricata EVE JSON: ``alert`` records for incidents, ``flow`` records for per-flow verdicts
and ``stats`` records for a run's counters.

Every record keeps to Suricata's own schema (``etc/schema.json`` of OISF/suricata, whose top
level and every object in it forbid keys it does not name): the standard fields carry what
Suricata would put there, and everything of ours (incident id, sources, spoofing, confidence,
evidence, novelty, the verdict of a flow) sits in ONE top-level object, ``flowsentinel``, the
single key a reader must allow beside the schema (``tests/alerts/test_eve.py`` validates every
record against the schema with exactly that one key added).

Examples
--------
>>> suricata_time(1_499_245_201_123_456)
'2017-07-05T09:00:01.123456+0000'
>>> suricata_time_of("2017-07-05T09:00:01.123456+00:00")
'2017-07-05T09:00:01.123456+0000'
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flowsentinel.alerts import families
from flowsentinel.core import schema as sc
from flowsentinel.incidents import Incident

#: the one top-level object of our own in every record
OURS = "flowsentinel"
#: Suricata's names of IP protocols (it writes these; others as their keyword upper-cased)
PROTO_NAMES: dict[str, str] = {
    "tcp": "TCP", "udp": "UDP", "icmp": "ICMP", "ipv6-icmp": "IPv6-ICMP", "sctp": "SCTP",
    "gre": "GRE", "esp": "ESP", "igmp": "IGMP",
}  # fmt: skip
#: Suricata's flow states of an incident's states
FLOW_STATES: dict[str, str] = {"open": "new", "update": "established", "closed": "closed"}
#: our verdict fields of a flow record kept under ``flowsentinel`` in its EVE ``flow`` record
VERDICT_FIELDS: tuple[str, ...] = (
    "row", "flow_id", "label", "probability", "attack_probability", "novelty",
    "in_distribution", "confidence", "reasons", "true_label", "incident_id",
)  # fmt: skip
#: ``stats.flow`` counters Suricata has, by our protocol keyword
STATS_FLOW_KEYS: dict[str, str] = {
    "tcp": "tcp", "udp": "udp", "icmp": "icmpv4", "ipv6-icmp": "icmpv6"
}  # fmt: skip


def suricata_time(us: int) -> str:
    """Microseconds since 1970 (UTC) in Suricata's format: ``2017-07-05T09:00:01.123456+0000``."""
    seconds, micros = divmod(int(us), 1_000_000)
    if 0 <= seconds < _GMTIME_LIMIT:
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}+0000"
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{micros:06d}+0000"


_GMTIME_LIMIT = 253_402_300_800  # 10000-01-01: time.gmtime's years have four digits below
_UTC_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00")


def _micros(text: str) -> int:
    """ISO 8601 with an offset → microseconds since 1970 (UTC)."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def suricata_time_of(iso: str) -> str:
    """A record's ISO 8601 time (``…+00:00``) in Suricata's format."""
    if _UTC_ISO.fullmatch(iso):  # the records' own shape: only the offset is written otherwise
        return iso[:-6] + "+0000"
    return suricata_time(_micros(iso))


def stable_id(*parts: object) -> int:
    """A positive 63-bit integer that names the same thing the same way on every run (EVE
    ``flow_id`` is an integer): BLAKE2b of the parts' text."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def proto_name(protocol: str | None) -> str | None:
    """Our protocol keyword (``tcp``) → Suricata's (``TCP``)."""
    if protocol is None:
        return None
    return PROTO_NAMES.get(protocol, protocol.upper())


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that say something (EVE leaves unknown fields out rather than null)."""
    return {k: v for k, v in values.items() if v is not None}


def alert_object(incident: Incident) -> dict[str, Any]:
    """The ``alert`` object of an incident: only keys Suricata's schema allows."""
    level = families.severity(incident.confidence)
    return _present(
        {
            "action": "allowed",  # we detect, we do not block
            "gid": families.GID,
            "signature_id": families.signature_id(incident.family, incident.label),
            "rev": families.REV,
            "signature": f"FLOWSENTINEL {incident.family} {incident.label}",
            "category": families.category(incident.family),
            "severity": level,
            "metadata": {
                "tag": ["flowsentinel", incident.family],
                "signature_severity": [families.SIGNATURE_SEVERITY[level]],
            },
            "source": {"ip": top_source(incident)} if top_source(incident) else None,
            "target": {"ip": incident.target_ip},
        }
    )


def top_source(incident: Incident) -> str | None:
    """The source an incident's alert names: its top source (first of ``top_sources``)."""
    return incident.top_sources[0][0] if incident.top_sources else None


def incident_extras(incident: Incident) -> dict[str, Any]:
    """Our fields of an incident (the ``flowsentinel`` object of EVE, ``flowsentinel.*`` of
    ECS)."""
    return _present(
        {
            "incident_id": incident.id,
            "state": incident.state,
            "detection": incident.detection,
            "family": incident.family,
            "label": incident.label,
            "sources": incident.sources,
            "top_sources": [{"ip": ip, "packets": n} for ip, n in incident.top_sources],
            "spoofing_suspected": incident.spoofing_suspected,
            "flows": incident.flows,
            "confidence": incident.confidence,
            "novelty": incident.novelty,
            "evidence": incident.evidence,
        }
    )


def incident_alert(incident: Incident) -> dict[str, Any]:
    """The EVE ``alert`` record of an incident (opened, updated or closed): its ``flow``
    object counts the packets and bytes the incident covers each way (``toserver``: sources →
    target), ``timestamp`` is its first packet when it opens, else its last."""
    when = incident.first_us if incident.state == "open" else incident.last_us
    return _present(
        {
            "timestamp": suricata_time(when),
            "flow_id": stable_id("incident", incident.id),
            "event_type": "alert",
            "src_ip": top_source(incident),
            "dest_ip": incident.target_ip,
            "dest_port": incident.target_port,
            "proto": proto_name(incident.protocol),
            "alert": alert_object(incident),
            "flow": {
                "pkts_toserver": incident.to_target.packets,
                "pkts_toclient": incident.from_target.packets,
                "bytes_toserver": incident.to_target.bytes,
                "bytes_toclient": incident.from_target.bytes,
                "start": suricata_time(incident.first_us),
                "end": suricata_time(incident.last_us),
                "age": int(incident.duration_s),
                "alerted": True,
                "state": FLOW_STATES[incident.state],
            },
            OURS: incident_extras(incident),
        }
    )


def flow_times(record: Mapping[str, Any], fallback_us: int | None) -> tuple[int, int | None]:
    """(start, end) of a flow record in µs; a record without a start (a flow file whose times
    name no zone) is stamped ``fallback_us`` (None: now) and has no end."""
    start = record.get("start")
    if not start:
        return (fallback_us if fallback_us is not None else now_us()), None
    first = _micros(start)
    duration = record.get("duration_s")
    return first, (first + round(duration * 1e6)) if duration is not None else None


def flow_event(
    record: Mapping[str, Any], *, benign: str = sc.BENIGN, fallback_us: int | None = None
) -> dict[str, Any]:
    """The EVE ``flow`` record of one flow record (:func:`flowsentinel.scanning.flow_records`):
    its identity in Suricata's fields (``toserver``: from the flow's source), its verdict under
    ``flowsentinel``. ``fallback_us``: the time of a flow whose start is unknown (default:
    now)."""
    first, last = flow_times(record, fallback_us)
    start = record.get("start")
    stamp = suricata_time_of(start) if start else suricata_time(first)
    duration = record.get("duration_s")
    flow = _present(
        {
            "pkts_toserver": record.get("fwd_packets"),
            "pkts_toclient": record.get("bwd_packets"),
            "bytes_toserver": record.get("fwd_bytes"),
            "bytes_toclient": record.get("bwd_bytes"),
            "start": stamp if start else None,
            "end": suricata_time(last) if last is not None else None,
            "age": int(duration) if duration is not None else None,
            "alerted": record.get("label") not in (None, benign),
        }
    )
    ours = _present({k: record.get(k) for k in VERDICT_FIELDS})
    return _present(
        {
            "timestamp": stamp,
            "flow_id": stable_id(
                "flow", record.get("flow_id"), record.get("start"), record.get("row")
            ),
            "event_type": "flow",
            "src_ip": record.get("src_ip"),
            "src_port": record.get("src_port"),
            "dest_ip": record.get("dst_ip"),
            "dest_port": record.get("dst_port"),
            "proto": proto_name(record.get("protocol")),
            "flow": flow,
            OURS: ours,
        }
    )


def now_us() -> int:
    """Now, in microseconds since 1970 (UTC)."""
    return _micros(datetime.now(UTC).isoformat())


@dataclass
class RunCounters:
    """A run's counters, for a ``stats`` record: packets read, decoded and skipped, bytes
    read, flows (by protocol keyword), alerts by family."""

    packets: int = 0
    decoded: int = 0
    skipped: int = 0
    bytes_read: int = 0
    flows: int = 0
    flows_by_protocol: dict[str, int] = field(default_factory=dict)
    alerts_by_family: dict[str, int] = field(default_factory=dict)
    uptime_s: float = 0.0

    @classmethod
    def of_capture(cls, stats: Any, **more: Any) -> RunCounters:
        """The counters of a :class:`flowsentinel.capture.CaptureStats` (plus ``more``)."""
        return cls(
            packets=stats.packets,
            decoded=stats.decoded,
            skipped=stats.packets - stats.decoded,
            bytes_read=stats.bytes_read,
            flows=stats.flows,
            **more,
        )

    def count_alerts(self, incidents: Iterable[Incident]) -> None:
        """Add the incidents (opened ones: an incident counts once) to ``alerts_by_family``."""
        for incident in incidents:
            if incident.state == "open":
                family = incident.family
                self.alerts_by_family[family] = self.alerts_by_family.get(family, 0) + 1


def stats_event(counters: RunCounters, *, when_us: int | None = None) -> dict[str, Any]:
    """The EVE ``stats`` record of a run: Suricata's ``decoder`` (``pkts`` read, ``bytes``,
    ``invalid`` = skipped), ``flow`` (per protocol it counts), ``detect.alert``; packets
    decoded, all flows and alerts by family under ``flowsentinel``."""
    flow_counts = {
        STATS_FLOW_KEYS[p]: n for p, n in counters.flows_by_protocol.items() if p in STATS_FLOW_KEYS
    }
    return {
        "timestamp": suricata_time(when_us if when_us is not None else now_us()),
        "event_type": "stats",
        "stats": {
            "uptime": int(counters.uptime_s),
            "decoder": {
                "pkts": counters.packets,
                "bytes": counters.bytes_read,
                "invalid": counters.skipped,
            },
            "flow": flow_counts,
            "detect": {"alert": sum(counters.alerts_by_family.values())},
        },
        OURS: {
            "packets_read": counters.packets,
            "packets_decoded": counters.decoded,
            "packets_skipped": counters.skipped,
            "flows": counters.flows,
            "alerts_by_family": dict(counters.alerts_by_family),
        },
    }


def dumps(record: Mapping[str, Any]) -> str:
    """One record as one JSON line (no spaces, as Suricata writes them)."""
    return json.dumps(record, separators=(",", ":"), default=_plain) + "\n"


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
