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

import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


#: an incident closes when nothing was flagged on its target for this long (data time)
CLOSE_GAP_US = 60_000_000
#: at most one update per incident this often (data time)
UPDATE_EVERY_US = 10_000_000
_TOP = 5
#: flagged flows to one target before the flow model alone makes an incident: an attack that
#: no window sees shows in many flows (a denial of service in hundreds, a slow one in dozens of
#: connections); a handful of lone flows, however sure the model, stay verdict lines
MIN_FLOWS = 10
#: the probability a flagged flow's verdict needs to count towards them (a verdict the model
#: is unsure of stays a verdict line; the aggregate detector still opens incidents alone)
SURE = 0.8
_MAX_SOURCES = 100_000  # sources tracked one by one per incident (beyond: counted per window)
_MAX_EVIDENCE = 20
_LATE_FLOWS_US = 300_000_000  # the meter's flow timeout (120 s) and then some


def family_of(label: str) -> str:
    """The attack family of a verdict label: ``DoS Hulk`` → ``DoS``, ``Web Attack – XSS`` →
    ``Web Attack``, ``PortScan`` → ``PortScan``."""
    text = label.strip()
    if text.lower().startswith("web attack"):
        return "Web Attack"
    return text.split(" ")[0] if text else "attack"


def group_of(family: str) -> str:
    """DoS and DDoS on one target are one attack (the number of sources can vary by window)."""
    return "DoS" if family in ("DoS", "DDoS") else family


@dataclass
class _Open:
    incident: Incident
    sources: dict[str, int] = field(default_factory=dict)
    window_sources: int = 0  # distinct sources summed over windows
    most_sources: int = 0  # the most distinct sources of one window
    one_packet: int = 0  # sources that sent one packet in their window, summed
    sure_flows: int = 0  # flagged flows at least SURE of their verdict
    source_windows: int = 0
    win_in: Direction = field(default_factory=Direction)  # the windows' packets (all of them)
    win_out: Direction = field(default_factory=Direction)
    flow_in: Direction = field(default_factory=Direction)  # the flagged flows' packets
    flow_out: Direction = field(default_factory=Direction)
    labels: dict[str, int] = field(default_factory=dict)
    emitted_us: int = 0
    changed: bool = False
    announced: bool = False
    seen: bool = False


class IncidentBuilder:
    """Group flagged flows and flagged windows into incidents per target and family.

    Feed :meth:`add_windows` (:class:`flowsentinel.capture.windows.WindowHit`) and
    :meth:`add_flows` (flagged flow records of :func:`flowsentinel.scanning.flow_records`);
    :meth:`events` returns the incidents that opened, changed (at most once per
    ``update_every_us``) or closed (nothing flagged for ``gap_us``) since the last call, as
    snapshots; :meth:`close_all` closes the rest (end of the capture); :attr:`incidents` keeps
    every incident, in the order they opened."""

    def __init__(
        self,
        gap_us: int = CLOSE_GAP_US,
        update_every_us: int = UPDATE_EVERY_US,
        min_flows: int = MIN_FLOWS,
    ) -> None:
        self.gap_us = gap_us
        self.update_every_us = update_every_us
        self.min_flows = min_flows
        self._open: dict[tuple[str, str], _Open] = {}
        #: offline (:meth:`build` with ``upto_us``): the last incident of each target so far
        self._carry: dict[tuple[str, str], _Open] = {}
        #: the last closed incident per key, for flows that end after it closed (flow timeout)
        self._closed: dict[tuple[str, str], _Open] = {}
        self._events: list[Incident] = []
        self.incidents: list[Incident] = []
        self.now_us = 0

    def add_windows(self, hits: list[Any]) -> None:
        for hit in hits:
            self._advance(hit.first_us)
            state = self._state(hit.target_ip, hit.family, hit.label, hit.first_us, "aggregate")
            inc = state.incident
            _span(state, hit.first_us, hit.last_us, hit.target_port, hit.protocol)
            state.win_in.packets += hit.packets_in
            state.win_in.bytes += hit.bytes_in
            state.win_out.packets += hit.packets_out
            state.win_out.bytes += hit.bytes_out
            if hit.family == "DDoS":
                inc.family = "DDoS"
            self._add_sources(state, hit)
            inc.confidence = max(inc.confidence, hit.confidence)
            if not hit.held:
                _keep(inc.evidence, {"window_start_us": hit.start_us, "label": hit.label,
                                     **hit.figures})  # fmt: skip
            state.labels[hit.label] = state.labels.get(hit.label, 0) + hit.packets_in
            self._touch(state)

    def add_flows(self, records: list[dict[str, Any]], benign: str) -> None:
        """Flagged flows (records whose ``label`` is not ``benign``) with a destination."""
        for r in records:
            if r.get("label") == benign or not r.get("dst_ip") or not r.get("start"):
                continue
            first = _micros(r["start"])
            last = first + max(0, int(1e6 * (r.get("duration_s") or 0)))
            self._advance(first)
            label = str(r["label"])
            state = self._state(str(r["dst_ip"]), family_of(label), label, first, "flow")
            inc = state.incident
            _span(state, first, last, r.get("dst_port"), r.get("protocol"))
            inc.flows += 1
            state.flow_in.packets += r.get("fwd_packets") or 0
            state.flow_in.bytes += r.get("fwd_bytes") or 0
            state.flow_out.packets += r.get("bwd_packets") or 0
            state.flow_out.bytes += r.get("bwd_bytes") or 0
            if r.get("src_ip"):
                src = str(r["src_ip"])
                state.sources[src] = state.sources.get(src, 0) + (r.get("fwd_packets") or 0)
            probability = float(r.get("probability") or 0.0)
            inc.confidence = max(inc.confidence, probability)
            state.sure_flows += probability >= SURE
            if r.get("reasons"):
                _keep(inc.evidence, {"flow_id": r.get("flow_id"), "label": label,
                                     "reasons": r["reasons"]})  # fmt: skip
            state.labels[label] = state.labels.get(label, 0) + 1
            self._touch(state)

    def advance(self, now_us: int) -> None:
        """Data time has reached ``now_us``: close the incidents idle for ``gap_us``."""
        self._advance(now_us)

    def close_all(self) -> None:
        for key in list(self._open):
            self._close(key)
        for state in self._closed.values():  # late flows may have joined a closed one
            _finish(state)

    def events(self) -> list[Incident]:
        """Snapshots of the incidents opened, updated or closed since the last call."""
        for state in self._open.values():
            inc = state.incident
            due = inc.last_us - state.emitted_us >= self.update_every_us
            if state.changed and due:
                self._emit(state, "update")
        out, self._events = self._events, []
        return out

    def build(
        self, hits: Sequence[Any], flows: pd.DataFrame, benign: str, *, upto_us: int | None = None
    ) -> tuple[list[Any], pd.DataFrame]:
        """Flagged windows and flows (a table of the columns of
        :func:`flowsentinel.scanning.flow_records`, one row per flow, any order) grouped at once,
        column-wise: the incidents that :meth:`add_windows` and :meth:`add_flows` would make
        fed in time order (a window before a flow of the same microsecond, flows by start then
        flow id). A flood's 60,000 flows were 60,000 Python updates.

        In time order an incident closes only when an item of its key starts more than
        ``gap_us`` after the incident's last packet, so the grouping is a per-key split at such
        gaps; a late flow can never join a closed incident.

        Without ``upto_us`` every item is grouped and every incident closed (the capture's
        end). With it, only the items that start before ``upto_us`` are grouped (the caller
        promises that every item it gives later starts after it), the last incident of each
        target that may still grow is carried to the next call, and the items left are
        returned (windows, flows): memory holds the recent items, not the whole capture.
        The one difference with the item-by-item builder: beyond ``_MAX_SOURCES`` sources per
        incident, the flows' sources are tracked before the windows' top sources."""
        hits = list(hits)
        flows = flows.reset_index(drop=True)
        windows, flagged = _window_items(hits), _flow_items(flows, benign)
        windows, later_windows = _split_at(windows, upto_us)
        flagged, later_flows = _split_at(flagged, upto_us)
        carried, self._carry = list(self._carry.values()), {}
        items = _items([_carried_items(carried), windows, flagged])
        if not items.empty:
            self._group(items, hits, flows, carried, upto_us)
        left = flows.iloc[later_flows["ref"].to_numpy()] if len(later_flows) else flows.iloc[:0]
        left_hits = [hits[k] for k in later_windows["ref"].tolist()] if len(later_windows) else []
        return left_hits, left.reset_index(drop=True)

    def _group(
        self, items: pd.DataFrame, hits: list[Any], flows: pd.DataFrame, carried: list[_Open],
        upto_us: int | None,
    ) -> None:  # fmt: skip
        key = _keys(items)
        seg = _segments(items, key, self.gap_us)
        states = _states(items, seg, hits, flows, carried)
        for s in _announcements(items, seg, self.min_flows, carried):
            state = states[s]
            state.announced = True
            state.incident.id = f"inc-{len(self.incidents) + 1}"
            self.incidents.append(state.incident)
        last_of_key = set(pd.Series(seg).groupby(key).max().tolist())
        for s, state in states.items():
            inc = state.incident
            may_grow = upto_us is not None and inc.last_us + self.gap_us >= upto_us
            carried_on = may_grow and s in last_of_key
            if carried_on:
                self._carry[(inc.target_ip, group_of(inc.family))] = state
            inc.state = "open" if carried_on else "closed"

    # ---- internals

    def _state(self, ip: str, family: str, label: str, first: int, how: str) -> _Open:
        key = (ip, group_of(family))
        state = self._open.get(key)
        late = self._closed.get(key)
        recent = late is not None and first <= late.incident.last_us + self.gap_us
        if recent and (state is None or first < state.incident.first_us):
            state = late  # a flow the meter finished after its incident closed
        if state is None:
            inc = Incident(
                id="", family=family, label=label, target_ip=ip,
                target_port=None, protocol=None, first_us=first, last_us=first,
                detection="aggregate" if how == "aggregate" else "flow",
            )  # fmt: skip
            state = self._open[key] = _Open(inc)
        elif state.incident.detection != how:
            state.incident.detection = "flow+aggregate"
        return state

    @staticmethod
    def _add_sources(state: _Open, hit: Any) -> None:
        state.window_sources += hit.sources
        state.most_sources = max(state.most_sources, hit.sources)
        state.one_packet += hit.one_packet_sources
        state.source_windows += 1
        for src, n in hit.top_sources:
            if src in state.sources or len(state.sources) < _MAX_SOURCES:
                state.sources[src] = state.sources.get(src, 0) + n

    def _touch(self, state: _Open) -> None:
        # the derived fields (_finish: sources ranked, counts each way) are computed when an
        # incident is emitted, not on every flow: a flood's 60,000 flows re-ranked its sources
        inc = state.incident
        if state.announced:
            state.changed = True
            if self._open.get((inc.target_ip, group_of(inc.family))) is not state:
                _finish(state)  # a late flow joined a closed incident: no emit will follow
        elif self._corroborated(state):
            state.announced = True
            state.incident.id = f"inc-{len(self.incidents) + 1}"
            self.incidents.append(state.incident)
            self._emit(state, "open")
            if all(other is not state for other in self._open.values()):
                self._emit(state, "closed")  # reported by late flows, after it went quiet

    def _corroborated(self, state: _Open) -> bool:
        """An incident is reported once the aggregate detector flagged its target, or the flow
        model flagged at least :attr:`min_flows` of its flows with a probability of at least
        :data:`SURE` (fewer, or less sure, flagged flows stay alerts of their own, in the
        verdict lines); a multicast or broadcast destination is never the target of the flow
        model's incidents (discovery protocols talk to groups)."""
        inc = state.incident
        if inc.detection != "flow":
            return True
        return state.sure_flows >= self.min_flows and not _group_address(inc.target_ip)

    def _advance(self, now_us: int) -> None:
        self.now_us = max(self.now_us, now_us)
        horizon = self.now_us - _LATE_FLOWS_US
        for key, state in list(self._closed.items()):
            if state.incident.last_us < horizon:
                del self._closed[key]
        for key, state in list(self._open.items()):
            if self.now_us - state.incident.last_us > self.gap_us:
                self._close(key)

    def _close(self, key: tuple[str, str]) -> None:
        state = self._open.pop(key)
        if state.announced:  # one never reported closes unseen (it is kept for late flows)
            self._emit(state, "closed")
        self._closed[key] = state

    def _emit(self, state: _Open, kind: State) -> None:
        _finish(state)
        state.incident.state = kind
        state.emitted_us = state.incident.last_us
        state.changed = False
        self._events.append(_snapshot(state.incident))


def _group_address(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return address.is_multicast or str(address) == "255.255.255.255"


def _span(state: _Open, first: int, last: int, port: Any, protocol: Any) -> None:
    """Widen the incident's span; its port and protocol stay only while every part agrees."""
    inc = state.incident
    port = None if port is None else int(port)
    protocol = None if protocol is None else str(protocol)
    if not state.seen:
        state.seen = True
        inc.target_port, inc.protocol = port, protocol
    else:
        if inc.target_port != port:
            inc.target_port = None
        if inc.protocol != protocol:
            inc.protocol = None
    inc.first_us = min(inc.first_us, first)
    inc.last_us = max(inc.last_us, last)


def _finish(state: _Open) -> None:
    """Derived fields: counts each way, sources, spoofing, the dominant label."""
    inc = state.incident
    # the windows count every packet to the target, the flows' packets are among them
    inc.to_target.packets = max(state.win_in.packets, state.flow_in.packets)
    inc.to_target.bytes = max(state.win_in.bytes, state.flow_in.bytes)
    inc.from_target.packets = max(state.win_out.packets, state.flow_out.packets)
    inc.from_target.bytes = max(state.win_out.bytes, state.flow_out.bytes)
    # distinct over the incident when few enough to track one by one (top sources of each
    # window and the flows' sources), else at least the most of one window
    inc.sources = max(len(state.sources), state.most_sources)
    ranked = sorted(state.sources.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP]
    inc.top_sources = [(s, int(n)) for s, n in ranked]
    inc.spoofing_suspected = (
        state.window_sources > 0 and state.one_packet * 2 > state.window_sources
    )
    if state.labels:
        inc.label = max(state.labels.items(), key=lambda kv: (kv[1], kv[0]))[0]


def _snapshot(inc: Incident) -> Incident:
    return replace(
        inc,
        to_target=replace(inc.to_target),
        from_target=replace(inc.from_target),
        top_sources=list(inc.top_sources),
        evidence=list(inc.evidence),
    )


def _keep(evidence: list[dict[str, Any]], item: dict[str, Any]) -> None:
    evidence.append(item)
    del evidence[:-_MAX_EVIDENCE]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(start: str) -> int:
    """µs since 1970 of an ISO 8601 time with its offset (the records' ``start``), exact."""
    when = datetime.fromisoformat(start)
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(microseconds=1)


def incident_dict(inc: Incident) -> dict[str, Any]:
    """An incident as plain JSON values (times as ISO 8601 UTC as well as µs)."""
    out = asdict(inc)
    out["top_sources"] = [{"source": s, "packets": n} for s, n in inc.top_sources]
    out["first"] = _iso(inc.first_us)
    out["last"] = _iso(inc.last_us)
    out["duration_s"] = inc.duration_s
    return out


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()


# ---- the whole of a capture at once (IncidentBuilder.build): items in time order, column-wise

_WINDOW, _FLOW, _CARRIED = 0, 1, 2  # item kinds; carried: an incident of an earlier build
_SUMS = ("fin_p", "fin_b", "fout_p", "fout_b", "win_p", "win_b", "wout_p", "wout_b")


def _flow_items(flows: pd.DataFrame | None, benign: str) -> pd.DataFrame:
    """The flagged flows with a destination and a start, one item each, in time order (start,
    then flow id). Text columns stay in their (Arrow) form: no Python object per value."""
    if flows is None or flows.empty:
        return pd.DataFrame()
    f = flows.reset_index(drop=True)
    label, dst, start = _col(f, "label"), _col(f, "dst_ip"), _col(f, "start")
    mask = _present(label) & (label.astype(str) != benign) & _present(dst) & _present(start)
    keep = np.flatnonzero(mask.to_numpy(dtype=bool, na_value=False))
    if not len(keep):
        return pd.DataFrame()
    f = f.take(keep).reset_index(drop=True)
    first = micros_of(f["start"])
    seconds = _numbers(f, "duration_s")
    span = np.trunc(np.nan_to_num(seconds * 1e6, nan=0.0, posinf=0.0, neginf=0.0))
    labels = f["label"].astype(str)
    src = _col(f, "src_ip")
    reasons = f["reasons"].to_numpy(dtype=object) if "reasons" in f else np.full(len(f), None)
    items = pd.DataFrame({
        "kind": _FLOW, "ref": keep, "first": first,
        "last": first + np.maximum(span, 0).astype("int64"), "ip": f["dst_ip"].astype(str),
        "label": labels, "family": _families(labels), "weight": 1,
        "port": _numbers(f, "dst_port"), "protocol": _col(f, "protocol"),
        "conf": np.nan_to_num(_numbers(f, "probability"), nan=0.0),
        "src": src.where(_present(src)),
        "evidence": _listed(reasons),
    })  # fmt: skip
    for name, column in zip(_SUMS[:4], _COUNTS, strict=True):
        items[name] = np.nan_to_num(_numbers(f, column), nan=0.0).astype("int64")
    return items.iloc[_time_order(first, _col(f, "flow_id"))].reset_index(drop=True)


def micros_of(start: pd.Series) -> np.ndarray:
    """µs since 1970 of ISO 8601 times with their offsets, exact (as :func:`_micros`).

    Arrow's reader (a sixth of pandas' time on 60,000 flows) takes times with an offset and at
    most µs; anything else (no offset, ns, missing) goes to pandas' reader."""
    try:
        when_us = pc.cast(pa.array(start, from_pandas=True), pa.timestamp("us", tz="UTC"))
        if when_us.null_count == 0:
            return np.asarray(when_us.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    when = pd.to_datetime(start.astype(str), format="ISO8601", utc=True)
    return ((when - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)).to_numpy()


def _time_order(first: np.ndarray, flow_id: pd.Series) -> np.ndarray:
    """Positions by start, then flow id (as text), then position; ids are compared only
    between flows that start in the same microsecond."""
    by_time = np.argsort(first, kind="stable")
    t = first[by_time]
    tied = np.zeros(len(t), dtype=bool)
    tied[1:] |= t[1:] == t[:-1]
    tied[:-1] |= t[1:] == t[:-1]
    rank = np.zeros(len(t), dtype="int64")
    if tied.any():
        ids = np.array([str(x) for x in _plain(flow_id.to_numpy()[by_time][tied])], dtype=object)
        rank[tied] = pd.factorize(ids, sort=True)[0]
    return by_time[np.lexsort((np.arange(len(t)), rank, t))]


def _listed(values: np.ndarray) -> np.ndarray:
    """Which values are non-empty lists (a flow's reasons); missing ones are skipped without a
    Python test each."""
    out = np.zeros(len(values), dtype=bool)
    given = np.flatnonzero(~pd.isna(values))
    out[given] = [isinstance(x, list) and bool(x) for x in values[given].tolist()]
    return out


_COUNTS = ("fwd_packets", "fwd_bytes", "bwd_packets", "bwd_bytes")


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _numbers(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats, NaN for missing or not a number."""
    col = pd.to_numeric(_col(frame, name), errors="coerce")
    return col.to_numpy("float64", na_value=np.nan)


def _present(col: pd.Series) -> pd.Series:
    """Set and not empty (a record's ``r.get(name)`` is truthy)."""
    return col.notna() & (col.astype(str) != "")


def _plain(values: np.ndarray) -> list[Any]:
    """Python values, ``None`` for missing."""
    return [None if x is None or x is pd.NA or (isinstance(x, float) and x != x) else x
            for x in values.tolist()]  # fmt: skip


def _families(labels: pd.Series) -> pd.Series:
    codes, names = pd.factorize(labels)
    families = pd.Series([family_of(str(x)) for x in names], dtype=str)
    return families.take(codes).reset_index(drop=True)


def _window_items(hits: list[Any]) -> pd.DataFrame:
    """The flagged windows, one item each, in time order (first packet, window, target)."""
    order = sorted(range(len(hits)), key=lambda k: (hits[k].first_us, hits[k].start_us,
                                                     hits[k].target_ip))  # fmt: skip
    ordered = [hits[k] for k in order]
    items = pd.DataFrame({
        "kind": _WINDOW, "ref": np.array(order, dtype="int64"),
        "first": [h.first_us for h in ordered], "last": [h.last_us for h in ordered],
        "ip": [h.target_ip for h in ordered], "label": [h.label for h in ordered],
        "family": [h.family for h in ordered], "weight": [h.packets_in for h in ordered],
        "port": [np.nan if h.target_port is None else float(h.target_port) for h in ordered],
        "protocol": [h.protocol for h in ordered], "conf": [h.confidence for h in ordered],
        "src": None, "evidence": [not h.held for h in ordered],
        "fin_p": 0, "fin_b": 0, "fout_p": 0, "fout_b": 0,
        "win_p": [h.packets_in for h in ordered], "win_b": [h.bytes_in for h in ordered],
        "wout_p": [h.packets_out for h in ordered], "wout_b": [h.bytes_out for h in ordered],
    })  # fmt: skip
    return items


def _split_at(items: pd.DataFrame, upto_us: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items starting before ``upto_us``, the others); all of them without a bound."""
    if upto_us is None or items.empty:
        return items, items.iloc[:0]
    before = (items["first"] < upto_us).to_numpy()
    return items[before], items[~before]


def _carried_items(carried: list[_Open]) -> pd.DataFrame:
    """The incidents carried from an earlier build, one item each: their span, counts and
    port; their labels, sources and evidence stay in the state."""
    if not carried:
        return pd.DataFrame()
    incs = [c.incident for c in carried]
    return pd.DataFrame({
        "kind": _CARRIED, "ref": np.arange(len(carried)),
        "first": [i.first_us for i in incs], "last": [i.last_us for i in incs],
        "ip": [i.target_ip for i in incs], "label": None, "family": [i.family for i in incs],
        "weight": 0, "nflows": [c.sure_flows for c in carried],
        "port": [np.nan if i.target_port is None else float(i.target_port) for i in incs],
        "protocol": [i.protocol for i in incs], "conf": [i.confidence for i in incs],
        "src": None, "evidence": False,
    })  # fmt: skip


def _items(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Carried incidents, windows and flows in the order the builder takes them: by time, a
    window before a flow of the same microsecond; ``order`` numbers them."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    items = pd.concat(parts, ignore_index=True)
    for name in _SUMS:  # the windows' and the flows' own counts (0 for the other kind)
        items[name] = items[name].fillna(0).astype("int64") if name in items else 0
    kind = items["kind"].to_numpy()
    carried_flows = items["nflows"].fillna(0) if "nflows" in items else 0
    sure = (kind == _FLOW) & (items["conf"].to_numpy(dtype=float) >= SURE)
    # the flows that count towards a flow-only incident (a carried incident's count)
    items["nflows"] = np.where(kind == _CARRIED, carried_flows, sure).astype("int64")
    rank = np.concatenate([np.arange(len(p)) for p in parts])
    # a carried incident heads its target's items whatever their times
    carried_first = np.where(items["kind"].to_numpy() == _CARRIED, 0, 1)
    order = np.lexsort((rank, items["kind"].to_numpy(), items["first"].to_numpy(), carried_first))
    items = items.iloc[order].reset_index(drop=True)
    codes, families = pd.factorize(items["family"])  # text stays Arrow: no object per row
    groups = np.array([group_of(str(x)) for x in families], dtype=object)
    items["group"] = pd.factorize(groups)[0][codes]  # as codes: a text column costs
    return items


def _keys(items: pd.DataFrame) -> np.ndarray:
    """One number per (target, family group)."""
    ip = pd.factorize(items["ip"])[0]
    group = pd.factorize(items["group"].to_numpy())[0]
    return ip * (int(group.max()) + 1) + group


def _segments(items: pd.DataFrame, key: np.ndarray, gap_us: int) -> np.ndarray:
    """Each item's incident: per target and family group (``key``, :func:`_keys`), split
    where an item starts more than ``gap_us`` after the last packet of everything before it
    (the builder's close); numbered in order within each target."""
    by_key = np.lexsort((np.arange(len(items)), key))
    k = key[by_key]
    first = items["first"].to_numpy()[by_key]
    running = pd.Series(items["last"].to_numpy()[by_key]).groupby(k).cummax().to_numpy()
    new_key = np.r_[True, k[1:] != k[:-1]]
    gap = np.r_[False, first[1:] - running[:-1] > gap_us]
    seg = np.empty(len(items), dtype="int64")
    seg[by_key] = np.cumsum(new_key | gap) - 1
    return seg


def _announcements(
    items: pd.DataFrame, seg: np.ndarray, min_flows: int, carried: list[_Open]
) -> list[int]:
    """The segments newly reported as incidents, in the order they are reported: at their
    first window, or at their ``min_flows``-th flow (counting a carried incident's) unless the
    target is a group address; a carried incident reported before stays as it is."""
    kind = items["kind"].to_numpy()
    frame = pd.DataFrame({"seg": seg, "order": np.arange(len(items)), "kind": kind})
    heads = frame.drop_duplicates("seg").set_index("seg")
    windows = frame[kind == _WINDOW].groupby("seg")["order"].min()
    before = items["nflows"].where(kind == _CARRIED, 0).groupby(seg).sum()
    flows = frame[(kind == _FLOW) & (items["nflows"].to_numpy() > 0)]
    count = flows.groupby("seg").cumcount().to_numpy() + before.reindex(flows["seg"]).to_numpy()
    nth = flows[count == max(min_flows, 1) - 1].set_index("seg")["order"]
    first_ip = items["ip"].take(heads["order"].to_numpy()).to_numpy()
    group_ip = pd.Series([_group_address(str(ip)) for ip in first_ip], index=heads.index)
    nth = nth[~group_ip.reindex(nth.index).to_numpy(dtype=bool)]
    when = pd.concat([windows, nth]).groupby(level=0).min().sort_values(kind="stable")
    refs = items["ref"].to_numpy()[heads["order"].to_numpy()]
    done = {s for s, k, r in zip(heads.index, heads["kind"], refs, strict=True)
            if k == _CARRIED and carried[r].announced}  # fmt: skip
    return [int(s) for s in when.index if s not in done]


def _states(
    items: pd.DataFrame, seg: np.ndarray, hits: list[Any], flows: pd.DataFrame,
    carried: list[_Open],
) -> dict[int, _Open]:  # fmt: skip
    """Every segment as the builder's state (a carried incident's own state, grown), its
    derived fields computed."""
    items = items.assign(seg=seg, flow=items["kind"] == _FLOW)
    heads = items.drop_duplicates("seg").set_index("seg")
    carried_rows = (items["kind"] == _CARRIED).to_numpy()
    new = items[~carried_rows] if carried_rows.any() else items
    sums = _segment_sums(new, len(heads))
    new_heads = new.drop_duplicates("seg").set_index("seg")
    states: dict[int, _Open] = {}
    rows: list[Any] = list(heads.itertuples())
    for s, head in zip(heads.index.tolist(), rows, strict=True):
        state = carried[int(head.ref)] if head.kind == _CARRIED else _new_state(head)
        if sums["items"][s]:
            _grow(state, {k: v[s] for k, v in sums.items()}, new_heads.loc[s])
        states[s] = state
    _add_labels(new, states)
    _add_flow_sources(new, states)
    _add_windows(new, states, hits)
    _add_evidence(new, states, hits, flows)
    for state in states.values():
        del state.incident.evidence[:-_MAX_EVIDENCE]
        _finish(state)
    return states


def _segment_sums(items: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """Per segment (``seg``: 0 to ``n`` - 1): its items, their span, counts and best
    confidence, and how many ports and protocols they name (a missing one a value of its
    own)."""
    seg = items["seg"].to_numpy()
    flow = items["flow"].to_numpy()
    out = {
        "items": np.bincount(seg, minlength=n),
        "flows": np.bincount(seg[flow], minlength=n),
        "windows": np.bincount(seg[~flow], minlength=n),
        "sure": _seg_sum(seg, n, items["nflows"]),
        "first": _seg_extreme(seg, n, items["first"].to_numpy(), np.minimum),
        "last": _seg_extreme(seg, n, items["last"].to_numpy(), np.maximum),
        "conf": _seg_extreme(seg, n, items["conf"].to_numpy(dtype=float), np.maximum),
        **{name: _seg_sum(seg, n, items[name]) for name in _SUMS},
    }
    for name, column in (("ports", "port"), ("protocols", "protocol")):
        values = pd.factorize(items[column], use_na_sentinel=False)[0]
        pairs = pd.unique(seg * (int(values.max(initial=0)) + 1) + values)
        out[name] = np.bincount(pairs // (int(values.max(initial=0)) + 1), minlength=n)
    return out


def _seg_sum(seg: np.ndarray, n: int, values: pd.Series) -> np.ndarray:
    """Per segment: the sum of whole numbers (exact below 2**53)."""
    weights = values.to_numpy(dtype=float)
    return np.rint(np.bincount(seg, weights=weights, minlength=n)).astype(np.int64)


def _seg_extreme(seg: np.ndarray, n: int, values: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """Per segment: the min or max (``ufunc``) of ``values`` (int64 or float)."""
    if values.dtype.kind == "f":
        start: float = np.inf if ufunc is np.minimum else -np.inf
    else:
        info = np.iinfo(values.dtype)
        start = info.max if ufunc is np.minimum else info.min
    out = np.full(n, start, dtype=values.dtype)
    ufunc.at(out, seg, values)
    return out


def _new_state(head: Any) -> _Open:
    """The state of an incident whose first item is ``head`` (a window or a flow)."""
    inc = Incident(
        id="", family=str(head.family), label=str(head.label), target_ip=str(head.ip),
        target_port=_port(head.port), protocol=_protocol(head.protocol),
        first_us=int(head.first), last_us=int(head.first),
        detection="flow" if head.kind == _FLOW else "aggregate",
    )  # fmt: skip
    return _Open(inc, seen=True)


def _port(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _protocol(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _grow(state: _Open, agg: dict[str, Any], head: pd.Series) -> None:
    """Add a segment's new items (their sums ``agg``, the first of them ``head``)."""
    inc = state.incident
    flows, windows = int(agg["flows"]), int(agg["windows"])
    # port and protocol stay while every part agrees (the builder's _span)
    if not (agg["ports"] == 1 and _port(head["port"]) == inc.target_port):
        inc.target_port = None
    if not (agg["protocols"] == 1 and _protocol(head["protocol"]) == inc.protocol):
        inc.protocol = None
    inc.first_us = min(inc.first_us, int(agg["first"]))
    inc.last_us = max(inc.last_us, int(agg["last"]))
    if (flows and inc.detection == "aggregate") or (windows and inc.detection == "flow"):
        inc.detection = "flow+aggregate"
    inc.flows += flows
    state.sure_flows += int(agg["sure"])
    inc.confidence = max(inc.confidence, float(agg["conf"]))
    for way, (packets, size) in _WAYS.items():
        direction = getattr(state, way)
        direction.packets += int(agg[packets])
        direction.bytes += int(agg[size])


_WAYS = {"flow_in": ("fin_p", "fin_b"), "flow_out": ("fout_p", "fout_b"),
         "win_in": ("win_p", "win_b"), "win_out": ("wout_p", "wout_b")}  # fmt: skip


def _add_labels(items: pd.DataFrame, states: dict[int, _Open]) -> None:
    """Verdict labels by flows, the windows' by packets (the builder's ``labels``)."""
    weights = items.groupby(["seg", "label"], sort=False)["weight"].sum().reset_index()
    for s, label, weight in zip(weights["seg"], weights["label"], weights["weight"], strict=True):
        labels = states[int(s)].labels
        labels[str(label)] = labels.get(str(label), 0) + int(weight)


def _add_flow_sources(items: pd.DataFrame, states: dict[int, _Open]) -> None:
    """Every flow's source and the packets it sent, per incident (first seen first)."""
    given = (items["flow"] & items["src"].notna()).to_numpy()
    if not given.any():
        return
    # (incident, source) pairs as codes, first seen first; their packets summed
    source, names = pd.factorize(items["src"].to_numpy()[given])
    seg = items["seg"].to_numpy()[given]
    pair, first = pd.factorize(seg * len(names) + source)
    sent = np.bincount(pair, weights=items["fin_p"].to_numpy()[given], minlength=len(first))
    by_seg = np.argsort(first // len(names), kind="stable")
    segs = first[by_seg] // len(names)
    srcs = np.asarray(names, dtype=object)[first[by_seg] % len(names)].tolist()
    packets = np.rint(sent[by_seg]).astype(np.int64).tolist()
    bounds = np.flatnonzero(np.r_[True, np.diff(segs) != 0, True])
    for a, b in itertools.pairwise(bounds):
        state = states[int(segs[a])]
        if not state.sources:
            state.sources = dict(zip(srcs[a:b], packets[a:b], strict=True))
            continue
        for src, n in zip(srcs[a:b], packets[a:b], strict=True):  # a carried incident's
            state.sources[src] = state.sources.get(src, 0) + n


def _add_windows(items: pd.DataFrame, states: dict[int, _Open], hits: list[Any]) -> None:
    """The windows' sources and DDoS family, in time order (few: one per flagged window)."""
    windows = items[~items["flow"]]
    for s, ref in zip(windows["seg"].tolist(), windows["ref"].tolist(), strict=True):
        hit, state = hits[ref], states[s]
        if hit.family == "DDoS":
            state.incident.family = "DDoS"
        IncidentBuilder._add_sources(state, hit)


def _add_evidence(
    items: pd.DataFrame, states: dict[int, _Open], hits: list[Any], flows: pd.DataFrame
) -> None:
    """The last :data:`_MAX_EVIDENCE` windows' figures and flows' reasons of each incident."""
    kept = items[items["evidence"].astype(bool)].groupby("seg").tail(_MAX_EVIDENCE)
    for s, ref, is_flow in zip(kept["seg"].tolist(), kept["ref"].tolist(), kept["flow"].tolist(),
                               strict=True):  # fmt: skip
        if is_flow:
            row = flows.iloc[ref]
            flow_id = row.get("flow_id")
            item = {"flow_id": None if pd.isna(flow_id) else flow_id, "label": str(row["label"]),
                    "reasons": row["reasons"]}  # fmt: skip
        else:
            hit = hits[ref]
            item = {"window_start_us": hit.start_us, "label": hit.label, **hit.figures}
        states[s].incident.evidence.append(item)
