"""Incidents: what an analyst reads instead of thousands of per-flow verdicts.

An :class:`Incident` groups the flagged flows and aggregate windows of one attack on one target
(address, and port when the attack has one) over a span of time: its family, its sources, when
it started and last showed, the packets, bytes and flows it covers each way, how sure the
detectors are, and the evidence (the flows' reasons, the windows' figures). ``scan`` prints
incidents first, ``watch`` emits one when it opens, updates it at a bounded rate and closes it,
and the alert outputs (Suricata EVE, Elastic Common Schema, syslog, webhooks) write them.

Examples
--------
>>> i = Incident(
...     id="inc-1", family="DoS", label="DoS SYN flood", target_ip="192.0.2.10",
...     target_port=80, protocol="tcp", first_us=1_500_000_000_000_000,
...     last_us=1_500_000_001_000_000,
... )
>>> i.duration_s, i.state
(1.0, 'open')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["open", "update", "closed"]
Detection = Literal["flow", "aggregate", "flow+aggregate"]


@dataclass
class Direction:
    """Packets and bytes one way."""

    packets: int = 0
    bytes: int = 0


@dataclass
class Incident:
    """One attack on one target over a span of time (see the module docstring)."""

    id: str
    family: str  # attack family: DoS, DDoS, PortScan, ... (the model's or the detector's)
    label: str  # the most common verdict label, or the aggregate detector's name
    target_ip: str
    target_port: int | None  # None: the attack spans ports (a scan, a flood to random ports)
    protocol: str | None  # tcp, udp, icmp, ... (None: several)
    first_us: int  # first packet, microseconds since 1970 (UTC)
    last_us: int  # last packet
    state: State = "open"
    detection: Detection = "flow"
    #: distinct sources and the top ones by packets: [(address, packets), ...]
    sources: int = 0
    top_sources: list[tuple[str, int]] = field(default_factory=list)
    #: most sources sent a single packet (forged source addresses suspected)
    spoofing_suspected: bool = False
    to_target: Direction = field(default_factory=Direction)  # sources → target
    from_target: Direction = field(default_factory=Direction)  # target → sources
    flows: int = 0
    confidence: float = 0.0  # 0..1
    #: the flows' reasons and the windows' figures that made the case, newest last
    evidence: list[dict[str, Any]] = field(default_factory=list)
    #: share of the incident's flows unlike the training flows (None: not measured)
    novelty: float | None = None

    @property
    def duration_s(self) -> float:
        return max(0, self.last_us - self.first_us) / 1e6
