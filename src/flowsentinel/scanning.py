"""Scanning: packet captures (or flow files) → flows → a model → one verdict per flow.

Used by ``flowsentinel scan`` / ``watch`` and the service's pcap upload; the model call itself
is :class:`flowsentinel.scoring.Detector`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import orjson
import pandas as pd

from flowsentinel.bounded import UNLIMITED, Kind, Limits, capture_flows, sniff
from flowsentinel.capture import iter_flow_batches
from flowsentinel.capture.decode import Packets
from flowsentinel.capture.meter import MeterConfig
from flowsentinel.capture.windows import LONG_US, Thresholds, WindowDetector, WindowHit
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets.reader import read_file
from flowsentinel.datasets.reader import sniff as sniff_header
from flowsentinel.incidents import Incident, IncidentBuilder, incident_dict, micros_of
from flowsentinel.membership import grow_incidents, incident_members, member_figures
from flowsentinel.scoring import Detector, Explain, Verdicts


def is_flow_file(path: Path) -> bool:
    """A file of flows (CSV, gzip CSV, parquet) rather than a packet capture, by its content
    (:func:`flowsentinel.bounded.sniff`: the one place that knows file formats)."""
    with path.open("rb") as fh:
        return sniff(fh.read(8), path.name) != "pcap"


def dataset_of(path: Path, kind: Kind) -> str | None:
    """The data set a file's flows belong to: captures give CIC-IDS2017 flows, a flow file
    says it in its header (``None`` when it cannot be told)."""
    if kind == "pcap":
        return sc.CIC.name  # the meter writes CICFlowMeter-2017 flows
    found = sniff_header(path).get("dataset")
    return found if isinstance(found, str) else None


@dataclass
class Flows:
    """The flows read from a file and where they came from (for the answer)."""

    frame: pd.DataFrame
    source: dict[str, Any]
    #: a capture's aggregate detector (its windows seen, not finished), None for flow files
    aggregate: Aggregate | None = None


def read_flows(
    path: Path | list[Path],
    kind: Kind,
    det: Detector,
    *,
    limits: Limits = UNLIMITED,
    name: str = "",
    allow_damaged: bool = False,
) -> Flows:
    """The flows of a prepared file (:func:`flowsentinel.bounded.prepare`) for ``det``: a
    capture is metered (its packets counted against ``limits``, its damage checked), a flow
    file read in the model's data set; errors name the file as ``name``."""
    try:
        if kind == "pcap":
            check_capture_model(det)
            aggregate = Aggregate(benign=det.classes[0])
            table, stats = capture_flows(
                path, limits, name, allow_damaged=allow_damaged, tap=aggregate.tap
            )
            source = {"source": "pcap", "capture": stats.to_dict()}
            return Flows(table.to_pandas(), source, aggregate)
        if isinstance(path, list):
            raise InputError("several files are read as one capture only")
        frame, report = read_file(path, dataset=det.dataset, require_label=False)
    except InputError as exc:
        if not name:
            raise
        raise type(exc)(str(exc).replace(str(path), name)) from None
    return Flows(frame.to_pandas(), {"source": f"csv ({report.dialect})"})


#: the identity of a flow, in this order, in every verdict record that has flows behind it
IDENTITY: tuple[str, ...] = (
    "flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "start", "duration_s",
    "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes",
)  # fmt: skip
#: the verdict fields the model's answer may carry besides label and probabilities
OPTIONAL_VERDICT_FIELDS: tuple[str, ...] = ("novelty", "in_distribution", "confidence", "reasons")
#: IANA protocol numbers named in records (others keep their number, as text)
PROTOCOL_NAMES: dict[int, str] = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre",
                                  50: "esp", 58: "ipv6-icmp", 132: "sctp"}  # fmt: skip


@dataclass(frozen=True)
class IdentitySource:
    """Where one data set keeps a flow's identity (its canonical column names)."""

    flow_id: str | None
    src_ip: str
    src_port: str
    dst_ip: str
    dst_port: str
    protocol: str
    start: str
    start_is_epoch: bool  # seconds since 1970 (UNSW ``stime``), else timestamp text
    duration: str
    duration_per_second: float  # the duration column's units in one second
    counts: tuple[str, str, str, str]  # fwd packets, bwd packets, fwd bytes, bwd bytes


IDENTITY_SOURCES: dict[str, IdentitySource] = {
    sc.CIC.name: IdentitySource(
        "Flow ID", "Source IP", "Source Port", "Destination IP", "Destination Port", "Protocol",
        "Timestamp", False, "Flow Duration", 1e6,
        ("Total Fwd Packets", "Total Backward Packets", "Total Length of Fwd Packets",
         "Total Length of Bwd Packets"),
    ),
    sc.UNSW.name: IdentitySource(
        None, "srcip", "sport", "dstip", "dsport", "proto", "stime", True, "dur", 1.0,
        ("spkts", "dpkts", "sbytes", "dbytes"),
    ),
}  # fmt: skip

_TEXT = pd.StringDtype("pyarrow")  # vectorised string kernels (Arrow), NA for missing
_ISO_START = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}"
_METER_TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}"  # capture/frame.py: UTC, µs


def _column(frame: pd.DataFrame, name: str | None) -> pd.Series | None:
    return frame[name] if name is not None and name in frame.columns else None


def _text(col: pd.Series | None, n: int) -> pd.Series:
    """Text values, missing or blank → NA."""
    if col is None:
        return pd.Series(pd.array([None] * n, dtype=_TEXT))
    text = col.astype(_TEXT).str.strip()
    return text.where(text.str.len() > 0)


def _integers(col: pd.Series | None, n: int) -> pd.Series:
    """Whole numbers (ports, counts); anything else (hex ports, encoded text) → NA."""
    if col is None:
        return pd.Series(pd.array([None] * n, dtype="Int64"))
    num = pd.to_numeric(col, errors="coerce").astype("float64")
    return num.where(np.isfinite(num)).round().astype("Int64")


def _protocol(col: pd.Series | None, n: int) -> pd.Series:
    """IANA number → its keyword (``6`` → ``tcp``); names (UNSW's ``proto``) stay as they are."""
    if col is None:
        return _text(None, n)
    number = _integers(col, n)
    named = number.map(PROTOCOL_NAMES).astype(_TEXT)
    return named.fillna(number.astype(_TEXT)).fillna(_text(col, n))


def _iso_utc(when: pd.Series) -> pd.Series:
    """Times (UTC) as ISO 8601 with microseconds and ``+00:00``; NA stays NA."""
    values = when.to_numpy("datetime64[us]")
    text = pd.Series(np.datetime_as_string(values, unit="us"), dtype=_TEXT) + "+00:00"
    return text.where(~np.isnat(values))


def _start(col: pd.Series | None, epoch: bool, n: int) -> pd.Series:
    """ISO 8601 in UTC with microseconds and its offset (``2017-07-05T09:00:01.123456+00:00``).

    Timestamp text is read only when its zone is known: an ISO 8601 time with an offset, or the
    meter's own ``YYYY-MM-DD HH:MM:SS[.ffffff]``, which is UTC. CICFlowMeter's day-first local
    times name no zone and give NA rather than a guessed offset."""
    if col is None:
        return _text(None, n)
    if epoch:
        seconds = pd.to_numeric(col, errors="coerce").astype("float64").reset_index(drop=True)
        return _iso_utc(pd.to_datetime(seconds.where(np.isfinite(seconds)), unit="s", utc=True))
    text = _text(col, n).reset_index(drop=True)
    meter = text.str.fullmatch(_METER_TIME).fillna(False).astype(bool)  # rewritten as text
    out = (text.str.replace(" ", "T", n=1) + "+00:00").where(meter)
    other = ~meter & text.str.match(_ISO_START).fillna(False).astype(bool)
    if other.any():
        when = pd.to_datetime(text.where(other), format="ISO8601", utc=True, errors="coerce")
        out = out.where(meter, _iso_utc(when))
    return out


def flow_identity(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The :data:`IDENTITY` columns of a frame of ``dataset`` flows, built column-wise; NA
    where the flows do not say (a file without identifier columns, text that is not an address
    or a port, a timestamp without a known zone). Never used as model inputs."""
    where = IDENTITY_SOURCES[dataset]
    n = len(frame)

    def col(name: str | None) -> pd.Series | None:
        return _column(frame, name)

    duration = col(where.duration)
    seconds = (
        pd.to_numeric(duration, errors="coerce").astype("float64") / where.duration_per_second
        if duration is not None
        else pd.Series(np.full(n, np.nan))
    )
    out = {
        "flow_id": _text(col(where.flow_id), n),
        "src_ip": _text(col(where.src_ip), n),
        "src_port": _integers(col(where.src_port), n),
        "dst_ip": _text(col(where.dst_ip), n),
        "dst_port": _integers(col(where.dst_port), n),
        "protocol": _protocol(col(where.protocol), n),
        "start": _start(col(where.start), where.start_is_epoch, n),
        "duration_s": seconds.where(np.isfinite(seconds)),
    }
    for name, source in zip(IDENTITY[-4:], where.counts, strict=True):
        out[name] = _integers(col(source), n)
    return pd.DataFrame({k: v.array for k, v in out.items()})


def destinations(identity: pd.DataFrame) -> pd.Series:
    """``address:port`` of each flow's destination (``[v6]:port``; the address alone without a
    port; NA without an address)."""
    ip = identity["dst_ip"].astype(_TEXT)
    port = identity["dst_port"]
    v6 = ip.str.contains(":").fillna(False).astype(bool)
    host = ip.where(~v6, "[" + ip + "]")
    return (host + ":" + port.astype(_TEXT)).fillna(host)


def _plain_column(values: pd.Series) -> list[Any]:
    """A column as plain Python values, ``None`` for NA."""
    return values.astype(object).where(values.notna(), None).tolist()


def _optional_column(value: Any, n: int) -> list[Any] | None:
    """An optional per-flow answer of the model (novelty, reasons, ...) as a list, if given."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":  # NaN/inf are not JSON
        plain = value.astype(object)
        plain[~np.isfinite(value)] = None
        value = plain
    column: list[Any] = value.tolist() if isinstance(value, np.ndarray) else list(value)
    return column if len(column) == n else None


def verdict_columns(verdicts: Verdicts) -> dict[str, list[Any]]:
    """The verdict part of every record, column by column: ``label``, ``probability`` (of that
    label), ``attack_probability`` (1 - P(benign)), and, when the model gives them,
    :data:`OPTIONAL_VERDICT_FIELDS` (``novelty``, ``in_distribution``, ``confidence``,
    ``reasons``: per flow a list of ``{feature, value, contribution, text, ...}`` as the model
    gives it, ``None`` for a flow it did not explain)."""
    n = len(verdicts)
    columns: dict[str, list[Any]] = {
        "label": [str(x) for x in verdicts.labels.tolist()],
        "probability": verdicts.probability.tolist(),
        "attack_probability": verdicts.attack_probability.tolist(),
    }
    for name in OPTIONAL_VERDICT_FIELDS:
        column = _optional_column(getattr(verdicts, name, None), n)
        if column is not None:
            columns[name] = column
    return columns


def true_labels(frame: pd.DataFrame) -> pd.Series | None:
    """The file's own label of each flow (NA where blank), or ``None`` without labels."""
    if sc.LABEL not in frame.columns or not frame[sc.LABEL].notna().any():
        return None
    return _text(frame[sc.LABEL], len(frame))


def flow_records(
    verdicts: Verdicts,
    frame: pd.DataFrame | None = None,
    *,
    dataset: str = sc.CIC.name,
    first_row: int = 0,
    identity: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """One record per flow, the shape of every verdict (``scan`` lines, ``watch`` alerts,
    ``/v1/scan`` and the web page; ``/v1/predict`` has no frame and gives the verdict part).

    With a frame: ``row`` (``first_row`` + position), the :data:`IDENTITY` fields (``None``
    where the flows do not say), then the verdict (:func:`verdict_columns`), then ``true_label``
    when the flows carry a label. ``identity``: the frame's :func:`flow_identity` when the
    caller has it already. Columns are built vectorised; only the final dicts are made per flow.
    """
    columns: dict[str, list[Any]] = {}
    if frame is not None:
        columns["row"] = list(range(first_row, first_row + len(frame)))
        if identity is None:
            identity = flow_identity(frame, dataset)
        columns.update({name: _plain_column(identity[name]) for name in IDENTITY})
    columns.update(verdict_columns(verdicts))
    truth = true_labels(frame) if frame is not None else None
    if truth is not None:
        columns["true_label"] = _plain_column(truth)
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_line(record: dict[str, Any]) -> str:
    """A record as one JSON line (NumPy scalars written as numbers, NaN as null), by orjson:
    a scan writes one per flow, and with reasons the standard library's encoder cost as much
    as scoring."""
    return orjson.dumps(record, default=_json_default, option=_JSON_OPTIONS).decode()


_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_JSON_OPTIONS = _NUMPY | orjson.OPT_APPEND_NEWLINE


def json_lines(records: Iterable[dict[str, Any]]) -> str:
    """:func:`json_line` of every record; reasons shared by several records (the flows of a
    flood, explained once: :meth:`Detector.explain`) are encoded once."""
    encoded: dict[int, orjson.Fragment] = {}
    lines = []
    for record in records:
        reasons = record.get("reasons")
        if reasons:
            fragment = encoded.get(id(reasons))
            if fragment is None:
                raw = orjson.dumps(
                    reasons, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY
                )
                fragment = encoded[id(reasons)] = orjson.Fragment(raw)
            record = {**record, "reasons": fragment}
        lines.append(json_line(record))
    return "".join(lines)


@dataclass
class ScanSummary:
    """Counts by verdict and, per source address, flows, flagged flows and destinations."""

    benign: str = sc.BENIGN
    flows: int = 0
    by_label: dict[str, int] = field(default_factory=dict)
    attacks_by_source: dict[str, int] = field(default_factory=dict)
    flows_by_source: dict[str, int] = field(default_factory=dict)
    #: (source, destination address:port) → [flows, flagged flows]
    pairs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: flows the model could judge for novelty, and those outside its training distribution
    assessed: int = 0
    novel: int = 0
    out_of_range: dict[str, int] = field(default_factory=dict)
    #: packets inside the flows of each verdict (forward + backward)
    packets_by_label: dict[str, int] = field(default_factory=dict)
    #: how the flows sit with the incidents (:meth:`Aggregate.member_counts`; None: no
    #: incidents were built, as for a flow file)
    incident_flows: dict[str, int] | None = None

    def coverage(self, stats: Any = None) -> dict[str, Any]:
        """Per verdict its flows and packets; with the capture's stats, the packets no
        verdict covers (single-packet flows left out for CIC parity, undecodable packets)."""
        out: dict[str, Any] = {
            "by_label": {
                k: {"flows": n, "packets": self.packets_by_label.get(k, 0)}
                for k, n in sorted(self.by_label.items())
            }
        }
        if stats is not None:
            covered = sum(self.packets_by_label.values())
            out["packets"] = stats.packets
            out["packets_covered"] = covered
            out["packets_not_covered"] = max(0, stats.packets - covered)
            out["single_packet_flows"] = stats.meter.get("single_dropped", 0)
            out["packets_not_decoded"] = stats.packets - stats.decoded
        return out

    def add_novelty(self, verdicts: Verdicts) -> None:
        """Count a batch's novel flows and out-of-range features (a model with a profile)."""
        if verdicts.in_distribution is None:
            return
        self.assessed += len(verdicts)
        self.novel += int(np.count_nonzero(~verdicts.in_distribution))
        for name, count in verdicts.out_of_range.items():
            self.out_of_range[name] = self.out_of_range.get(name, 0) + count

    def novelty(self, top: int = 5) -> dict[str, Any] | None:
        """``{novel_flows, novel_share, warning, out_of_range: [{feature, flows}]}`` (``None``
        for a model without a training profile); ``warning`` above :data:`NOVEL_WARNING`."""
        if not self.assessed:
            return None
        share = self.novel / self.assessed
        ranked = sorted(self.out_of_range.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return {
            "novel_flows": self.novel,
            "novel_share": round(share, 4),
            "warning": novelty_warning(share, self.novel, self.assessed),
            "out_of_range": [{"feature": f, "flows": n} for f, n in ranked],
        }

    def add(self, labels: np.ndarray, identity: pd.DataFrame | None = None) -> None:
        """Count one batch: its verdicts, and by source when ``identity`` names them."""
        self.flows += len(labels)
        labels = np.asarray(labels).astype(str)
        _count_into(self.by_label, labels)
        if identity is not None:
            packets = identity["fwd_packets"].fillna(0) + identity["bwd_packets"].fillna(0)
            sums = pd.Series(packets.to_numpy(np.int64)).groupby(labels).sum()
            for name, count in sums.items():
                self.packets_by_label[str(name)] = self.packets_by_label.get(str(name), 0) + int(
                    count
                )
        if identity is None or not identity["src_ip"].notna().any():
            return
        flagged = labels != self.benign
        known = identity["src_ip"].notna().to_numpy()
        sources = identity["src_ip"].to_numpy(dtype=object)[known].astype(str)
        _count_into(self.flows_by_source, sources)
        _count_into(self.attacks_by_source, sources[flagged[known]])
        dest = destinations(identity).fillna("").to_numpy(dtype=object)[known].astype(str)
        pairs = pd.DataFrame({"s": sources, "d": dest, "f": flagged[known].astype(np.int64)})
        grouped = pairs.groupby(["s", "d"], sort=False)["f"].agg(["size", "sum"])
        for (src, dst), n, k in zip(grouped.index, grouped["size"], grouped["sum"], strict=True):
            counts = self.pairs.setdefault((str(src), str(dst)), [0, 0])
            counts[0] += int(n)
            counts[1] += int(k)

    def top_destinations(self) -> dict[str, str | None]:
        """Per source, the destination it sent most flagged flows to (most flows when none
        was flagged; ties by address)."""
        ranked = sorted(self.pairs.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0][1]))
        tops: dict[str, str | None] = {}
        for (src, dst), _ in ranked:
            tops.setdefault(src, dst or None)
        return tops

    def sources(self, top: int | None = None) -> list[dict[str, Any]]:
        """Per source address ``{source, flows, flagged, top_destination}``, most flagged flows
        first (then most flows, then address)."""
        tops = self.top_destinations()
        ranked = sorted(
            self.flows_by_source,
            key=lambda s: (-self.attacks_by_source.get(s, 0), -self.flows_by_source[s], s),
        )
        return [
            {
                "source": s,
                "flows": self.flows_by_source[s],
                "flagged": self.attacks_by_source.get(s, 0),
                "top_destination": tops.get(s),
            }
            for s in ranked[:top]
        ]


#: above this share of novel flows, a scan warns that the model does not know the traffic
NOVEL_WARNING = 0.2


def novelty_warning(share: float, novel: int, flows: int) -> str | None:
    """The warning for a scan of which more than :data:`NOVEL_WARNING` of the flows is novel."""
    if share <= NOVEL_WARNING:
        return None
    return (
        f"{novel:,} of {flows:,} flows ({share:.0%}) look like nothing the model was trained "
        "on: their verdicts are low-confidence; train on traffic like this before trusting them"
    )


def _count_into(counts: dict[str, int], values: np.ndarray) -> None:
    for name, count in zip(*np.unique(values, return_counts=True), strict=True):
        counts[str(name)] = counts.get(str(name), 0) + int(count)


def hand_over(
    aggregate: Aggregate, verdicts: Verdicts, frame: pd.DataFrame, identity: pd.DataFrame,
    det: Detector,
) -> None:  # fmt: skip
    """A batch's verdicts to the aggregate detector: every flow to its ledger (offline), the
    flagged ones to its incidents (as :func:`scan_frames` does)."""
    codes = np.asarray(verdicts.codes, dtype=np.int64)
    aggregate.add_ledger(identity, pd.Categorical.from_codes(codes, pd.Index(det.classes)))
    _flagged_to_incidents(aggregate, verdicts, frame, det.dataset, identity)


def _flagged_to_incidents(
    aggregate: Aggregate, verdicts: Verdicts, frame: pd.DataFrame, dataset: str,
    identity: pd.DataFrame,
) -> None:  # fmt: skip
    flagged = np.asarray(verdicts.codes) != 0  # class 0 is the benign class
    if not flagged.any():
        return
    if aggregate.live:
        records = flow_records(verdicts, frame, dataset=dataset, identity=identity)
        aggregate.add_flows([r for r, f in zip(records, flagged.tolist(), strict=True) if f])
        return
    aggregate.add_flow_table(flagged_table(verdicts, identity, flagged))


#: what the incidents read of a flagged flow's identity
_HANDED_OVER = [name for name in IDENTITY if name != "src_port"]


def flagged_table(verdicts: Verdicts, identity: pd.DataFrame, flagged: np.ndarray) -> pd.DataFrame:
    """The flagged flows as columns: their :data:`IDENTITY`, ``label``, ``probability`` and
    ``reasons`` (what the incidents read; no record per flow)."""
    table = identity.loc[flagged, _HANDED_OVER].reset_index(drop=True)
    table["label"] = np.asarray(verdicts.labels, dtype=object)[flagged]
    table["probability"] = np.asarray(verdicts.probability)[flagged]
    reasons = _optional_column(getattr(verdicts, "reasons", None), len(flagged))
    if reasons is not None:
        table["reasons"] = pd.Series(reasons, dtype=object)[flagged].reset_index(drop=True)
    return table


def check_capture_model(det: Detector) -> None:
    if det.dataset != sc.CIC.name:
        raise InputError(
            f"the model {det.name} is a {det.dataset} model; packet captures give CIC-IDS2017 "
            "flows, so scan needs a cicids2017 model (train one or run `flowsentinel demo`)"
        )


def iter_capture_frames(
    source: Path | str | bytes | Sequence[str],
    stats: Any = None,
    aggregate: Aggregate | None = None,
    *,
    client: Any = None,
) -> Iterator[pd.DataFrame]:
    """Flows of a capture (or of a set of captures, one continuous capture) in batches, as the
    meter finishes them; ``aggregate`` sees every decoded packet batch (and is finished when
    the capture ends). With a Dask ``client`` the set is metered on its cluster
    (:mod:`flowsentinel.capture.partitioned`): the same flows, in another order."""
    if client is not None:
        yield from _cluster_frames(client, source, stats, aggregate)
    else:
        tap = aggregate.tap if aggregate is not None else None
        yield from iter_flow_batches(source, stats=stats, tap=tap)
    if aggregate is not None:
        aggregate.finish()


def _cluster_frames(
    client: Any, source: Path | str | bytes | Sequence[str], stats: Any, aggregate: Aggregate | None
) -> Iterator[pd.DataFrame]:
    from flowsentinel.capture.partitioned import meter_on_cluster

    if isinstance(source, bytes):
        raise InputError("a capture in memory is metered in-process, not on a cluster")
    sources = [str(source)] if isinstance(source, str | Path) else [str(s) for s in source]
    results = meter_on_cluster(
        client, sources, stats=stats,
        windows=None if aggregate is None else aggregate.add_hits,
        thresholds=None if aggregate is None else aggregate.windows.thresholds,
    )  # fmt: skip
    for result in results:
        if result.table is not None and result.table.num_rows:
            yield result.table.to_pandas()


#: flagged flows waiting before the older ones are grouped (offline; about 210 bytes each)
GROUP_AFTER_FLOWS = 200_000
#: a flow is handed over at most two flow timeouts after it starts (the meter's sweep); a
#: window, within two windows of its first packet
GROUP_LAG_US = 2 * MeterConfig().flow_timeout_us + 3 * LONG_US


class Aggregate:
    """The aggregate detector and the incident builder of one scan: :meth:`tap` is the packet
    tap of the capture pipeline, :meth:`add_flows` takes the flow model's flagged flows.

    Offline (a capture, an upload) the flagged windows and flows are kept and grouped in time
    order when the capture ends (in-process, once ``group_after`` flows wait, the older ones
    as the capture goes: :meth:`_group_older`), so the incidents depend on the traffic only,
    not on how it was batched or where it was metered (in-process or on a cluster, whose
    windows come in through :meth:`add_hits`). ``live`` (``watch``) feeds the
    builder as the traffic comes, so that incidents open and close while it runs.
    """

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        benign: str = sc.BENIGN,
        *,
        live: bool = False,
        group_after: int = GROUP_AFTER_FLOWS,
    ) -> None:
        self.windows = WindowDetector(thresholds)
        self.builder = IncidentBuilder()
        self.benign = benign
        self.live = live
        self._hits: list[WindowHit] = []
        self._flows: list[pd.DataFrame] = []
        self._ledger: list[pd.DataFrame] = []  # every flow's target, source, span and verdict
        #: after :meth:`place`: each ledger flow's incident id (None: none), in ledger order
        self.placed: pd.Series | None = None
        self._seen_us: int | None = None  # the latest packet time of the batches before
        self._group_after = self._next_group = group_after

    def tap(self, pk: Packets) -> None:
        if not self.live and len(pk):
            self._group_older()
            self._seen_us = max(self._seen_us or 0, int(pk.ts.max()))
        self.windows.add(pk)
        self.add_hits(self.windows.take())
        if self.live and len(pk):
            self.builder.advance(int(pk.ts.max()))

    def add_hits(self, hits: list[WindowHit]) -> None:
        """Flagged windows (of :attr:`windows`, or of a cluster task's own detector)."""
        if self.live:
            self.builder.add_windows(hits)
        else:
            self._hits += hits

    def add_flows(self, records: list[dict[str, Any]]) -> None:
        """Flagged flows as records (:func:`flow_records`)."""
        if self.live:
            self.builder.add_flows(records, self.benign)
        elif records:
            self._flows.append(pd.DataFrame.from_records(records))

    def add_flow_table(self, table: pd.DataFrame) -> None:
        """Flagged flows as columns (:func:`flagged_table`): kept until the capture ends."""
        if self.live:
            records = cast(list[dict[str, Any]], table.to_dict("records"))
            self.builder.add_flows(records, self.benign)
        elif len(table):
            self._flows.append(table)

    def add_ledger(self, identity: pd.DataFrame, labels: np.ndarray | pd.Categorical[str]) -> None:
        """Every flow of a batch, in output order, for :meth:`place` (offline only; about 90
        bytes a flow)."""
        if not self.live and len(identity):
            self._ledger.append(member_columns(identity, labels))

    def place(self) -> tuple[pd.Series, dict[str, int]]:
        """Once finished: place every flow handed to :meth:`add_ledger` in the incident it
        belongs to (:func:`incident_members`; kept in :attr:`placed`, in that order), grow each
        incident to its flows (:func:`member_figures`: their count, span and packets and bytes
        each way, where they exceed what the windows counted), and count how the flows sit
        with the incidents (:meth:`member_counts`): (the placement, the counts)."""
        if not self._ledger:
            self.placed = pd.Series([], dtype=object)
            return self.placed, self.member_counts(self.placed, np.zeros(0, bool))
        ledger = pd.concat(self._ledger, ignore_index=True)
        placed, near = _placements(ledger, self.builder.incidents, self.benign)
        self.placed = placed
        grow_incidents(self.builder.incidents, member_figures(near, near["incident_id"]))
        flagged = (ledger["label"] != self.benign).to_numpy(dtype=bool)
        return placed, self.member_counts(placed, flagged)

    def place_live(self, identity: pd.DataFrame, labels: np.ndarray) -> pd.Series:
        """``watch``: the incident each flow of a batch belongs to, among the incidents
        reported so far (:func:`incident_members`; the attackers are those the batch's own
        flagged flows name)."""
        batch = member_columns(identity, labels)
        return _placements(batch, self.builder.incidents, self.benign)[0]

    @staticmethod
    def member_counts(members: pd.Series, flagged: np.ndarray) -> dict[str, int]:
        """How the flows sit with the incidents: ``flows`` inside one, of which ``flagged`` by
        the flow model and ``joined`` (judged benign alone, part of an attacker's traffic to
        the target), and ``flagged_alone`` (flagged, in no incident: a verdict of the flow
        model alone, no alert)."""
        inside = members.notna().to_numpy(dtype=bool)
        return {
            "flows": int(inside.sum()),
            "flagged": int((inside & flagged).sum()),
            "joined": int((inside & ~flagged).sum()),
            "flagged_alone": int((~inside & flagged).sum()),
        }

    def finish(self) -> None:
        """The capture ended: evaluate the open windows, build (offline) and close every
        incident."""
        self.windows.flush()
        self.add_hits(self.windows.take())
        if not self.live:
            self._build()
        self.builder.close_all()

    def _group_older(self) -> None:
        """With many flagged flows waiting, group those that started :data:`GROUP_LAG_US`
        before the packets seen so far: every flow and window of that time has been handed
        over (the meter emits a flow two flow timeouts after its start at the latest), so
        memory holds the recent ones only, whatever the capture's length. The next grouping
        waits for twice the flows left, so a burst is not regrouped at every batch."""
        waiting = sum(len(t) for t in self._flows)
        if self._seen_us is None or waiting < self._next_group:
            return
        flows = pd.concat(self._flows, ignore_index=True)
        upto = self._seen_us - GROUP_LAG_US
        self._hits, left = self.builder.build(self._hits, flows, self.benign, upto_us=upto)
        self._flows = [left] if len(left) else []
        self._next_group = max(self._group_after, 2 * len(left))

    def _build(self) -> None:
        """Windows and flows into the builder at once (:meth:`IncidentBuilder.build`)."""
        flows = pd.concat(self._flows, ignore_index=True) if self._flows else pd.DataFrame()
        self.builder.build(self._hits, flows, self.benign)
        self._hits, self._flows = [], []

    def events(self) -> list[Incident]:
        return self.builder.events()

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident as JSON values, largest first."""
        ranked = sorted(self.builder.incidents, key=lambda i: -i.to_target.packets)
        return [incident_dict(i) for i in ranked]


_COUNTS = ("fwd_packets", "fwd_bytes", "bwd_packets", "bwd_bytes")


def member_columns(
    identity: pd.DataFrame, labels: np.ndarray | pd.Categorical[str]
) -> pd.DataFrame:
    """What :func:`incident_members` and :func:`member_figures` read of each flow (times still
    as text: :func:`_placements` reads them for the flows to an incident's target only)."""
    kept = identity[["src_ip", "dst_ip", "dst_port", "protocol", "start", "duration_s", *_COUNTS]]
    table = kept.reset_index(drop=True)  # text stays in its Arrow form: no object per value
    table["label"] = labels if isinstance(labels, pd.Categorical) else pd.Categorical(labels)
    return table


def _with_times(flows: pd.DataFrame) -> pd.DataFrame:
    """``start_us`` and ``end_us`` from the flows' ISO start and duration (a flow without a
    start never belongs to an incident)."""
    start = flows["start"]
    known = start.notna().to_numpy(dtype=bool)
    first = np.full(len(flows), np.iinfo(np.int64).min // 2, dtype=np.int64)
    if known.any():
        first[known] = micros_of(start[known])
    seconds = pd.to_numeric(flows["duration_s"], errors="coerce").to_numpy("float64")
    span = np.nan_to_num(seconds * 1e6, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    return flows.assign(start_us=first, end_us=first + span.astype(np.int64))


def _placements(
    flows: pd.DataFrame, incidents: list[Incident], benign: str
) -> tuple[pd.Series, pd.DataFrame]:
    """(each flow's incident id, the flows to an incident's target with their times): only
    those can belong to one, so only their times are read."""
    placed = pd.Series([None] * len(flows), dtype=object)
    targets = pd.unique(pd.Series([i.target_ip for i in incidents], dtype=object))
    near = np.flatnonzero(flows["dst_ip"].isin(targets).to_numpy(dtype=bool, na_value=False))
    candidates = _with_times(flows.take(near).reset_index(drop=True))
    found = incident_members(candidates, incidents, benign)
    placed.iloc[near] = found.to_numpy()
    return placed, candidates.assign(incident_id=found.to_numpy())


def add_incident_ids(path: Path, members: pd.Series, under: str | None = None) -> None:
    """Give the flow lines of a scan's verdict file their ``incident_id`` (or null), in
    place: the file's first lines are the flows in :meth:`Aggregate.place` order (JSON lines;
    or EVE ``flow`` records / ECS documents, then the incidents' alerts, with the id in their
    ``under`` object)."""
    ids = members.tolist()
    tmp = path.with_name(path.name + ".part")
    n = 0
    with path.open("rb") as src, tmp.open("wb") as dst:
        for n, line in enumerate(src, 1):
            if n <= len(ids):
                line = _with_incident(line, ids[n - 1], under)
            dst.write(line)
    if n < len(ids):
        tmp.unlink()
        raise InputError(f"{n:,} verdict lines for {len(ids):,} flows", path=path)
    tmp.replace(path)


def _with_incident(line: bytes, incident: str | None, under: str | None) -> bytes:
    if under is None:  # a flat JSON object: the key goes last, without parsing the line
        return line.rstrip()[:-1] + b',"incident_id":' + orjson.dumps(incident) + b"}\n"
    document = orjson.loads(line)
    document.setdefault(under, {})["incident_id"] = incident
    return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)


def read_flow_file(path: Path, det: Detector) -> pd.DataFrame:
    return read_flows(path, "csv", det).frame


def scan_frames(
    frames: Iterable[pd.DataFrame],
    det: Detector,
    out: IO[str] | None = None,
    *,
    flagged_only: bool = False,
    summary: ScanSummary | None = None,
    explain: Explain = "flagged",
    aggregate: Aggregate | None = None,
) -> ScanSummary:
    """Score every batch; write a JSON line per flow (:func:`flow_records`; only the flows not
    judged benign with ``flagged_only``) to ``out``, flushed per batch, with reasons for the
    ``explain`` flows (``flagged`` by default); count into ``summary`` (a new one by default,
    which is returned; pass one to keep the counts when interrupted); flagged flows go to
    ``aggregate``'s incidents."""
    summary = summary if summary is not None else ScanSummary(benign=det.classes[0])
    for frame in frames:
        if len(frame) == 0:
            continue
        verdicts = det.predict(frame, explain=explain if out is not None else "none")
        identity = flow_identity(frame, det.dataset)
        first = summary.flows
        summary.add(verdicts.labels, identity)
        summary.add_novelty(verdicts)
        if aggregate is not None:
            hand_over(aggregate, verdicts, frame, identity, det)
        if out is None:
            continue
        records = flow_records(
            verdicts, frame, dataset=det.dataset, first_row=first, identity=identity
        )
        if aggregate is not None and aggregate.live:
            placed = aggregate.place_live(identity, verdicts.labels)
            for record, incident in zip(records, placed.tolist(), strict=True):
                record["incident_id"] = incident
        if flagged_only:
            records = [r for r in records if r["label"] != summary.benign]
        out.write(json_lines(records))
        out.flush()
    return summary
