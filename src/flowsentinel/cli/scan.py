"""``flowsentinel scan`` and ``flowsentinel watch``: verdicts on captures and live traffic."""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from flowsentinel.cli._output import (
    cluster_option,
    console,
    friendly_errors,
    stdout,
    table,
    workers_option,
)
from flowsentinel.cli.capture import (
    allow_damaged_option,
    damage_rows,
    set_warnings,
    thresholds_option,
)
from flowsentinel.core.errors import InputError


def print_scan_summary(summary: Any, title: str, top: int = 10) -> None:
    """The verdict counts, then per source address its flows, flagged flows and the
    destination it sent most flagged flows to (most flagged sources first)."""
    console.print(
        table(title, ["verdict", "flows"], [[k, v] for k, v in sorted(summary.by_label.items())])
    )
    sources = summary.sources(top)
    if sources:
        rows = [
            [s["source"], s["flows"], s["flagged"], s["top_destination"] or ""] for s in sources
        ]
        console.print(
            table("By source address", ["source", "flows", "flagged", "top destination"], rows)
        )


def scan_cmd(
    captures: Annotated[
        list[str],
        typer.Argument(
            help="A pcap/pcapng capture, or a CSV/parquet of flows; several captures, folders, "
            "globs or fsspec URLs are one continuous capture (in the order of first packets)."
        ),
    ],
    model: Annotated[
        str | None, typer.Option(help="Model URI or registered name (default: settings).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write one JSON line per flow here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    allow_damaged: Annotated[bool, allow_damaged_option()] = False,
    explain: Annotated[bool, explain_option()] = False,
    fmt: Annotated[str, format_option()] = "jsonl",
    workers: Annotated[int | None, workers_option()] = None,
    cluster: Annotated[str | None, cluster_option()] = None,
    thresholds: Annotated[Path | None, thresholds_option()] = None,
) -> None:
    """Score every flow of a capture with a registered model; one verdict per flow, with the
    reasons of every flagged flow and the flow's novelty."""
    from flowsentinel.core.cluster import Cluster

    where = Cluster.from_options(workers=workers, address=cluster)
    flow_file, sources, ignored = _scan_inputs(captures)
    _check_format(fmt)
    det = _load(model)
    name = str(flow_file) if flow_file is not None else ", ".join(sources[:3])
    started = time.perf_counter()
    sink = out.open("w", encoding="utf-8") if out else contextlib.nullcontext(None)
    try:
        with (
            sink as fh,
            where.client() as client,
            console.status(f"scanning {name} with {det.name}"),
        ):
            summary, stats, aggregate = _scan(
                flow_file, sources, det, fh, fmt, explain, client, _thresholds(thresholds)
            )
        if out is not None and aggregate is not None and aggregate.placed is not None:
            from flowsentinel.scanning import add_incident_ids

            under = None if fmt == "jsonl" else "flowsentinel"  # EVE/ECS: their own object
            add_incident_ids(out, aggregate.placed, under)
    except BaseException:
        if out:
            out.unlink(missing_ok=True)  # no half-written verdicts under the final name
        raise
    seconds = time.perf_counter() - started
    label = name if len(sources) <= 1 else f"{len(sources)} captures ({name}, ...)"
    try:
        warning = _check_damage(stats, allow_damaged)
    except InputError:
        if out:
            out.unlink(missing_ok=True)  # the verdicts of a rejected capture are not kept
        _print_result(label, det, summary, stats, seconds, None, as_json, aggregate)
        raise
    _print_result(label, det, summary, stats, seconds, out, as_json, aggregate)
    for line in ([] if stats is None else set_warnings(stats, ignored)) + [warning or ""]:
        if line:
            console.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)


def _load(model: str | None) -> Any:
    """The model, its libraries then frozen out of the garbage collector's reach: a scan's
    per-flow records would otherwise set off full collections that walk them all."""
    from flowsentinel.scoring import Detector

    with contextlib.redirect_stdout(sys.stderr):
        det = Detector.load(model)
    gc.freeze()
    return det


def _scan_inputs(names: list[str]) -> tuple[Path | None, list[str], list[str]]:
    """(a flow file, or None) and the captures named, with the non-capture files of folders."""
    from flowsentinel.capture.inputs import expand_inputs
    from flowsentinel.scanning import is_flow_file

    if len(names) == 1 and Path(names[0]).is_file() and is_flow_file(Path(names[0])):
        return Path(names[0]), [], []
    if names == ["-"]:
        raise InputError("scan reads files; pipe a live stream into `flowsentinel watch`")
    inputs = expand_inputs(names)
    flow_files = [c for c in inputs.captures if "://" not in c and is_flow_file(Path(c))]
    if flow_files:
        raise InputError("scan one flow file at a time (or captures only)", path=flow_files[0])
    return None, inputs.captures, inputs.ignored


def _thresholds(path: Path | None) -> Any:
    """The thresholds of a ``flowsentinel baseline`` file (None: the defaults)."""
    if path is None:
        return None
    from flowsentinel.capture.windows import thresholds_from_json

    return thresholds_from_json(path)


def _scan(
    flow_file: Path | None, sources: list[str], det: Any, fh: Any, fmt: str, explain: bool,
    client: Any, thresholds: Any = None,
) -> tuple[Any, Any, Any]:  # fmt: skip
    """Score a flow file or a set of captures (on the cluster of ``client`` when given):
    (summary, capture stats or None, aggregate or None)."""
    from flowsentinel.scanning import (
        Aggregate,
        check_capture_model,
        iter_capture_frames,
        read_flow_file,
        scan_frames,
    )

    stats = aggregate = None
    frames: Iterable[Any]  # pandas DataFrames: one file's, or a capture's batches
    if flow_file is not None:
        frames = [read_flow_file(flow_file, det)]
    else:
        from flowsentinel.capture import CaptureStats

        check_capture_model(det)
        stats = CaptureStats()
        aggregate = Aggregate(thresholds, benign=det.classes[0])
        source = sources[0] if len(sources) == 1 else sources
        frames = iter_capture_frames(source, stats, aggregate, client=client)
    summary = scan_frames(
        frames, det, _records_out(fh, fmt, det), explain="all" if explain else "flagged",
        aggregate=aggregate,
    )  # fmt: skip
    if aggregate is not None:  # each flow in its incident, the incidents grown to their flows
        _, summary.incident_flows = aggregate.place()
    _write_incidents(fh, fmt, aggregate)
    return summary, stats, aggregate


def _check_damage(stats: Any, allow_damaged: bool) -> str | None:
    """The capture layer's damage check (None for flow files, which have no capture stats)."""
    if stats is None:
        return None
    from flowsentinel.capture import check_damage

    return check_damage(stats, allow_damaged=allow_damaged)


def _print_result(
    capture: str, det: Any, summary: Any, stats: Any, seconds: float, out: Path | None,
    as_json: bool, aggregate: Any = None,
) -> None:  # fmt: skip
    incidents = aggregate.incidents() if aggregate is not None else []
    result = {
        "incidents": incidents,
        "coverage": summary.coverage(stats),
        "incident_flows": summary.incident_flows,
        "source": str(capture),
        "model": det.describe() | {"features": len(det.features)},
        "flows": summary.flows,
        "by_label": summary.by_label,
        "attacks_by_source": summary.attacks_by_source,
        "sources": summary.sources(),
        "novelty": summary.novelty(),
        "capture": stats.to_dict() if stats is not None else None,
        "seconds": round(seconds, 3),
        "verdicts": str(out) if out else None,
    }
    if as_json:
        stdout.print_json(json.dumps(result, default=str))
        return
    version = f" v{det.version}" if det.version else ""
    shown = capture if " captures (" in capture else Path(capture).name
    print_incidents(incidents, shown)
    print_incident_flows(summary.incident_flows)
    print_scan_summary(summary, f"{shown}: {summary.flows:,} flows, {det.name}{version}")
    if stats is not None and stats.problems:
        console.print(f"packets skipped: {stats.problems}")
        rows = damage_rows(stats)
        if rows:
            console.print(table("Damaged byte ranges of the capture", ["", "bytes"], rows))
    print_coverage(summary.coverage(stats))
    if out:
        console.print(f"verdicts written to {out}")
    print_novelty(summary)


def print_incidents(incidents: list[dict[str, Any]], where: str) -> None:
    """The incidents as a table, largest first (the first thing a scan prints)."""
    if not incidents:
        console.print(f"{where}: no incident")
        return
    rows = [
        [
            i["id"], i["family"], i["label"], _target(i), i["first"][:19].replace("T", " "),
            f"{i['duration_s']:.1f}", i["to_target"]["packets"], i["flows"], i["sources"],
            "yes" if i["spoofing_suspected"] else "", f"{i['confidence']:.2f}",
        ]
        for i in incidents
    ]  # fmt: skip
    headers = ["id", "family", "label", "target", "first (UTC)", "seconds", "packets",
               "flows", "sources", "spoofed", "confidence"]  # fmt: skip
    console.print(table(f"{where}: {len(incidents)} incidents", headers, rows))


def print_incident_flows(counts: dict[str, int] | None) -> None:
    """One line: the flows inside the incidents, and the flagged flows outside any."""
    if counts is None:
        return
    console.print(
        f"flows in incidents: {counts['flows']:,} ({counts['flagged']:,} flagged by the flow "
        f"model, {counts['joined']:,} it passed: from the incidents' attackers, or unanswered "
        "during a flood); "
        f"flagged flows in no incident: {counts['flagged_alone']:,} (verdicts of the flow "
        "model alone, no alert)",
        highlight=False,
        soft_wrap=True,
    )


def _target(incident: dict[str, Any]) -> str:
    ip, port = incident["target_ip"], incident["target_port"]
    host = f"[{ip}]" if ":" in ip and port is not None else ip
    return host if port is None else f"{host}:{port}"


def print_coverage(coverage: dict[str, Any]) -> None:
    """How many packets each verdict covers, and how many no verdict covers."""
    parts = [f"{k}: {v['flows']:,} flows, {v['packets']:,} packets"
             for k, v in coverage["by_label"].items()]  # fmt: skip
    line = "; ".join(parts)
    if "packets" in coverage:
        line += (
            f"; no verdict: {coverage['packets_not_covered']:,} of {coverage['packets']:,} "
            f"packets ({coverage['single_packet_flows']:,} single-packet flows, "
            f"{coverage['packets_not_decoded']:,} not decoded; the incidents above count them)"
        )
    console.print(f"packets by verdict: {line}", highlight=False, soft_wrap=True)


def print_novelty(summary: Any) -> None:
    """The share of novel flows, the features most often out of range, and the warning."""
    found = summary.novelty()
    if found is None:
        return
    features = ", ".join(f"{o['feature']} ({o['flows']:,})" for o in found["out_of_range"])
    console.print(
        f"novel flows (unlike the training rows): {found['novel_flows']:,} "
        f"({found['novel_share']:.1%})"
        + (f"; most often out of range: {features}" if features else ""),
        highlight=False,
        soft_wrap=True,
    )
    if found["warning"]:
        console.print(f"[yellow]warning:[/] {found['warning']}", highlight=False, soft_wrap=True)


def format_option() -> Any:
    return typer.Option(
        "--format",
        help="Flow records as jsonl (our records), eve (Suricata EVE flow records) or ecs "
        "(Elastic Common Schema documents).",
    )


def _check_format(fmt: str, alert_to: list[str] | None = None) -> None:
    """A one-line error for a format that is not one of the alert formats, or an
    ``--alert-to`` value that is not a sink (before any model is loaded)."""
    from flowsentinel.alerts.outputs import check_format
    from flowsentinel.alerts.sinks import parse_sink_spec

    check_format(fmt)
    for spec in alert_to or []:
        parse_sink_spec(spec)


def _write_incidents(fh: Any, fmt: str, aggregate: Any) -> None:
    """After the flows of an EVE or ECS output, one alert per incident of the capture (the
    JSON-lines output keeps flows only: its incidents are in the summary)."""
    if fh is None or aggregate is None or fmt == "jsonl":
        return
    import orjson

    from flowsentinel.alerts.outputs import check_format, render_incident

    for incident in aggregate.builder.incidents:
        document = render_incident(incident, check_format(fmt))
        fh.write(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE).decode())


def _records_out(fh: Any, fmt: str, det: Any, outputs: Any = None) -> Any:
    """Where ``scan_frames`` writes its flow records: the stream itself for jsonl without
    alert sinks, else one that rewrites each record in ``fmt`` (an EVE ``flow`` record, an ECS
    document) and hands it to the alert sinks too."""
    if fmt == "jsonl" and outputs is None:
        return fh
    from flowsentinel.alerts.outputs import FlowWriter, check_format

    return FlowWriter(fh, check_format(fmt), benign=det.classes[0], outputs=outputs)


def explain_option() -> Any:
    return typer.Option(
        "--explain",
        help="Give the reasons of every flow's verdict (default: of every flagged flow).",
    )


def watch_cmd(
    interface: Annotated[str, typer.Option("--interface", "-i", help="Network interface.")],
    model: Annotated[str | None, typer.Option(help="Model URI or registered name.")] = None,
    all_flows: Annotated[
        bool, typer.Option("--all", help="Print every flow, not only alerts.")
    ] = False,
    max_packets: Annotated[
        int | None, typer.Option(help="Stop after this many packets (default: run until Ctrl-C).")
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).", min=0.0),
    ] = None,
    explain: Annotated[bool, explain_option()] = False,
    alert_to: Annotated[
        list[str] | None,
        typer.Option(
            "--alert-to",
            help="Also send every alert here (repeatable): file:PATH, syslog+udp://HOST[:PORT], "
            "syslog+tcp://HOST[:PORT], http(s)://HOST/PATH. Undeliverable alerts are spooled "
            "and replayed.",
        ),
    ] = None,
    fmt: Annotated[str, format_option()] = "jsonl",
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve the alert counters (Prometheus) on this local port.", min=1),
    ] = None,
    thresholds: Annotated[Path | None, thresholds_option()] = None,
) -> None:
    """Live capture: one JSON line per alert (a flow not judged benign) on stdout, in the
    record shape of ``scan`` (the flow's identity, then its verdict), or as Suricata EVE or
    ECS with ``--format``; ``--alert-to`` sends them to files, syslog or webhooks too."""
    import threading

    from flowsentinel.capture import CaptureStats, iter_live_flow_batches
    from flowsentinel.scanning import Aggregate, ScanSummary, check_capture_model, scan_frames

    _check_format(fmt, alert_to)
    det = _load(model)
    check_capture_model(det)
    outputs = _alert_outputs(alert_to or [], fmt, det, metrics_port)
    watch_started = time.monotonic()
    stats = CaptureStats()
    summary = ScanSummary(benign=det.classes[0])
    console.print(f"watching {interface} with {det.name} (Ctrl-C to stop)")
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set) if seconds is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    aggregate = Aggregate(_thresholds(thresholds), benign=det.classes[0], live=True)
    live = iter_live_flow_batches(
        interface,
        stats=stats,
        max_packets=max_packets,
        stop=stop,
        tap=_incident_tap(aggregate, outputs),
    )
    try:
        scan_frames(
            live,
            det,
            _records_out(sys.stdout, fmt, det, outputs),
            flagged_only=not all_flows,
            summary=summary,
            explain="all" if explain else "flagged",
            aggregate=aggregate,
        )
    except KeyboardInterrupt:
        pass
    except PermissionError:
        raise InputError(f"capturing on {interface} needs root (or CAP_NET_RAW)") from None
    except OSError as exc:
        raise InputError(f"cannot capture on {interface}: {exc.strerror or exc}") from None
    finally:
        if timer is not None:
            timer.cancel()
        aggregate.finish()
        write_incident_events(aggregate, outputs)
        _close_outputs(outputs, stats, time.monotonic() - watch_started)
    console.print(f"{stats.packets:,} packets, {summary.flows:,} flows: {summary.by_label}")
    if summary.flows:
        print_scan_summary(summary, f"{interface}: {summary.flows:,} flows, {det.name}")
        print_novelty(summary)


def _alert_outputs(specs: list[str], fmt: str, det: Any, metrics_port: int | None) -> Any:
    """The started alert sinks of ``--alert-to`` (None without any); a bad value is a one-line
    error. With ``metrics_port`` their counters are served to Prometheus on 127.0.0.1."""
    if not specs and metrics_port is None:
        return None
    from flowsentinel.alerts.outputs import AlertOutputs, check_format
    from flowsentinel.core.settings import get_settings
    from flowsentinel.service.metrics import AlertMetrics

    metrics = AlertMetrics()
    outputs = AlertOutputs.from_specs(
        specs, check_format(fmt), get_settings().home / "spool", metrics=metrics,
        benign=det.classes[0],
    )  # fmt: skip
    if metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
        except OSError as exc:
            raise InputError(f"--metrics-port {metrics_port}: {exc.strerror or exc}") from None
    return outputs.start()


def _close_outputs(outputs: Any, stats: Any, seconds: float) -> None:
    """Send the run's ``stats`` record, deliver or spool what is queued, and say per sink what
    became of the alerts."""
    if outputs is None:
        return
    from flowsentinel.alerts.eve import RunCounters

    counters = RunCounters.of_capture(
        stats, uptime_s=seconds, alerts_by_family=dict(outputs.alerts_by_family)
    )
    outputs.stats(counters)
    for name, done in outputs.close().items():
        console.print(
            f"alerts to {name}: {done['delivered']:,} delivered, {done['spooled']:,} spooled "
            f"(replayed: {done['replayed']:,}, retries: {done['retried']:,})",
            highlight=False,
            soft_wrap=True,
        )


def _incident_tap(aggregate: Any, outputs: Any = None) -> Any:
    """The packet tap of ``watch``: the aggregate detector, then the incident lines (and the
    alert sinks of ``--alert-to``)."""

    def tap(pk: Any) -> None:
        aggregate.tap(pk)
        write_incident_events(aggregate, outputs)

    return tap


def write_incident_events(aggregate: Any, outputs: Any = None) -> None:
    """One JSON line per incident that opened, changed (at most once per incident per 10 s of
    traffic) or closed: ``{"incident": "open"|"update"|"closed", ...the incident}``; each also
    goes to the alert sinks of ``--alert-to`` when there are any."""
    from flowsentinel.incidents import incident_dict

    events = list(aggregate.events())
    if outputs is not None:
        for event in events:
            outputs.incident(event)
    lines = [
        json.dumps({"incident": e.state, **incident_dict(e)}, default=str) + "\n" for e in events
    ]
    if lines:
        sys.stdout.write("".join(lines))
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("scan")(friendly_errors(scan_cmd))
    app.command("watch")(friendly_errors(watch_cmd))
