"""``flowsentinel flows`` and ``flowsentinel lab``: packet captures → CIC-IDS2017 flows."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from flowsentinel.cli._output import (
    cluster_option,
    console,
    friendly_errors,
    is_tty,
    stdout,
    table,
    workers_option,
)
from flowsentinel.core.errors import InputError

if TYPE_CHECKING:  # the capture package loads numba: imported by the commands that use it
    from collections.abc import Callable

    from flowsentinel.capture import CaptureStats, MeterConfig
    from flowsentinel.capture.stream import CaptureSource
    from flowsentinel.core.cluster import Cluster


def _config(flow_timeout: float, activity_timeout: float, cic_quirks: bool) -> MeterConfig:
    from flowsentinel.capture import MeterConfig, Quirks

    return MeterConfig(
        flow_timeout_us=round(flow_timeout * 1_000_000),
        activity_timeout_us=round(activity_timeout * 1_000_000),
        quirks=Quirks() if cic_quirks else Quirks.none(),
    )


SHOWN_RANGES = 5  # damaged byte ranges listed in the summary table (--json lists 100)


def damage_rows(stats: CaptureStats) -> list[list[object]]:
    """Rows of the summary table for the skipped byte ranges of the file, if any."""
    read = stats.read
    rows: list[list[object]] = [
        [f"  damaged bytes {start:,}–{start + length - 1:,}", length]
        for start, length in read.damaged_ranges[:SHOWN_RANGES]
    ]
    if read.ranges_total > SHOWN_RANGES:
        rows.append([f"  … {read.ranges_total - SHOWN_RANGES:,} more damaged ranges", ""])
    return rows


def print_capture_summary(stats: CaptureStats, seconds: float) -> None:
    """One table: packets read/decoded/skipped per reason, damaged byte ranges, flows, speed."""
    rows: list[list[object]] = [
        ["packets read", stats.packets],
        ["packets metered", stats.decoded],
    ]
    for reason, count in stats.problems.items():
        rows.append([f"  skipped: {reason.replace('_', ' ')}", count])
    rows += damage_rows(stats)
    rows.append(["flows written", stats.flows])
    for reason, count in stats.meter.items():
        if count and reason != "single_dropped":
            rows.append([f"  {reason.replace('_', ' ')}", count])
    rows += packet_rows(stats)
    pps = stats.packets / seconds if seconds > 0 else 0.0
    rows.append(["time", f"{seconds:.2f} s ({pps:,.0f} packets/s)"])
    console.print(table(f"Flows of {stats.source}", ["", "count"], rows))


def packet_rows(stats: CaptureStats) -> list[list[object]]:
    """Where every packet went: into the flows written, into single-packet flows left out
    (CIC-IDS2017 parity: CICFlowMeter does not write them), or not metered."""
    single = stats.meter.get("single_dropped", 0)
    rows: list[list[object]] = [
        ["packets in flows written", stats.flow_packets],
        ["single-packet flows left out (CIC parity)", single],
    ]
    return rows


def allow_damaged_option() -> object:
    return typer.Option(
        "--allow-damaged",
        help="Keep what could be read when more than 1 % of the capture's bytes are damaged "
        "(default: exit with an error; the damage is always reported).",
    )


def flows_cmd(
    captures: Annotated[
        list[str],
        typer.Argument(
            help="Captures (pcap/pcapng), folders of captures, glob patterns or fsspec URLs "
            "(s3://..., hdfs://...); several are one continuous capture in the order of their "
            "first packet. '-' reads a pcap stream from stdin."
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Output: a .csv or .parquet file, or a folder (a name without a "
            "suffix) for a partitioned parquet dataset; local or an fsspec URL.",
        ),
    ],
    flow_timeout: Annotated[
        float, typer.Option(help="Flow timeout in seconds (CICFlowMeter: 120).", min=0.000001)
    ] = 120.0,
    activity_timeout: Annotated[
        float, typer.Option(help="Activity timeout in seconds (CICFlowMeter: 5).", min=0.000001)
    ] = 5.0,
    cic_quirks: Annotated[
        bool,
        typer.Option(
            "--cic-quirks/--no-cic-quirks",
            help="Reproduce CICFlowMeter-2017's quirks (default, as in CIC-IDS2017) or use the "
            "corrected definitions (see docs/capture.md).",
        ),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the statistics as one JSON line on stdout.")
    ] = False,
    allow_damaged: Annotated[bool, allow_damaged_option()] = False,
    workers: Annotated[int | None, workers_option()] = None,
    cluster: Annotated[str | None, cluster_option()] = None,
) -> None:
    """Extract CIC-IDS2017 flows (CICFlowMeter-2017 features) from packet captures."""
    from flowsentinel.capture import CaptureStats, DamagedCaptureError, check_damage
    from flowsentinel.capture.inputs import expand_inputs
    from flowsentinel.capture.output import output_format
    from flowsentinel.core.cluster import Cluster

    output_format(out)
    where = Cluster.from_options(workers=workers, address=cluster)
    config = _config(flow_timeout, activity_timeout, cic_quirks)
    inputs = expand_inputs(captures)
    if inputs.stdin and not where.local:
        raise InputError("a stream on stdin is read in-process: drop --workers/--cluster")
    stats = CaptureStats()
    warning: str | None = None

    def check(s: CaptureStats) -> None:
        nonlocal warning
        warning = check_damage(s, allow_damaged=allow_damaged)

    started = time.perf_counter()
    try:
        _write(inputs.captures, out, config, stats, check, where)
    except DamagedCaptureError:
        _report(stats, time.perf_counter() - started, None, as_json)
        raise
    seconds = time.perf_counter() - started
    _report(stats, seconds, out, as_json)
    for line in set_warnings(stats, inputs.ignored):
        console.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


def set_warnings(stats: CaptureStats, ignored: list[str]) -> list[str]:
    """One line each for overlapping captures, empty files and non-captures in a folder."""
    lines = [
        f"{later} starts {seconds / 1e6:.3f} s before the end of {earlier}: overlapping "
        "captures are metered one after the other, not merged by time (merge them with "
        "mergecap first)"
        for earlier, later, seconds in stats.overlaps
    ]
    if stats.empty:
        lines.append(f"{len(stats.empty):,} empty capture file(s) skipped: {stats.empty[0]}, ...")
    if ignored:
        lines.append(f"{len(ignored):,} file(s) in the folders are not captures: {ignored[0]}, ...")
    return lines


def _source(captures: list[str]) -> CaptureSource | list[CaptureSource]:
    if captures == ["-"]:
        return sys.stdin.buffer
    if len(captures) == 1:
        return captures[0]
    return list(captures)


def _write(
    captures: list[str],
    out: str,
    config: MeterConfig,
    stats: CaptureStats,
    check: Callable[[CaptureStats], object],
    where: Cluster,
) -> None:
    """Meter the captures into `out`, with a progress bar on a terminal."""
    from flowsentinel.capture import write_flows

    if not where.local:
        _write_on_cluster(captures, out, config, stats, check, where)
        return
    source = _source(captures)
    sizes = [Path(c).stat().st_size for c in captures if c != "-" and "://" not in c]
    if not (is_tty() and len(sizes) == len(captures)):
        write_flows(source, out, config=config, stats=stats, check=check)
        return
    with Progress(
        TextColumn("metering"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("flows", total=sum(sizes))
        write_flows(
            source, out, config=config, stats=stats, check=check,
            on_progress=lambda b: progress.update(task, completed=b),
        )  # fmt: skip


def _write_on_cluster(
    captures: list[str],
    out: str,
    config: MeterConfig,
    stats: CaptureStats,
    check: Callable[[CaptureStats], object],
    where: Cluster,
) -> None:
    from flowsentinel.capture.partitioned import write_flows_on_cluster

    with where.client() as client:
        assert client is not None
        with Progress(
            TextColumn(f"metering on {where.describe()}"), BarColumn(),
            TextColumn("{task.completed}/{task.total} tasks"), console=console, transient=True,
            disable=not is_tty(),
        ) as progress:  # fmt: skip
            task = progress.add_task("flows", total=None)
            write_flows_on_cluster(
                client, captures, out, config=config, stats=stats, check=check,
                on_done=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip


def _report(stats: CaptureStats, seconds: float, out: str | None, as_json: bool) -> None:
    """The summary table (stderr) and, with --json, the statistics (stdout)."""
    print_capture_summary(stats, seconds)
    if out is not None:
        console.print(f"wrote {stats.flows:,} flows to {out}")
    if as_json:
        stdout.print_json(
            json.dumps(
                {
                    **stats.to_dict(),
                    "seconds": round(seconds, 3),
                    "out": None if out is None else str(out),
                }
            )
        )


def lab_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "flowsentinel-lab"
    ),
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings).")] = None,
    scale: Annotated[
        float, typer.Option(help="Size multiplier (1 = about 8,000 flows).", min=0.05, max=20)
    ] = 1.0,
) -> None:
    """Write a deterministic labelled lab capture: diverse benign traffic and DoS attacks.

    Many TCP/IP stacks (Linux, Windows, macOS/iOS, Android, embedded), LAN to satellite paths,
    IPv4 and IPv6; benign web, TLS, QUIC, DNS, NTP, SSH, bulk, video, mail, databases,
    SMB/RDP, IoT, DHCP, ICMP and multicast; HTTP floods, slow attacks, SYN/UDP/ACK/RST/ICMP
    floods at several rates and reflection floods, labelled "DoS <kind>". Writes
    OUT/lab.pcap, OUT/labels.csv (one row per crafted session, with its kind) and
    OUT/lab_flows.csv (the meter's flows of lab.pcap with a Label column). The same seed
    gives the same bytes. No root, no network.
    """
    from flowsentinel.core.settings import get_settings
    from flowsentinel.datasets.lab import write_lab

    seed = get_settings().seed if seed is None else seed
    started = time.perf_counter()
    result = write_lab(out, seed=seed, scale=scale)
    seconds = time.perf_counter() - started
    rows = [[label, count] for label, count in sorted(result.flow_labels.items())]
    console.print(table(f"Lab capture (seed {seed}): flows per label", ["Label", "flows"], rows))
    console.print(
        f"wrote {result.pcap} ({result.packets:,} packets, {result.sessions:,} sessions), "
        f"{result.labels}, {result.flows} in {seconds:.1f} s"
    )


def baseline_cmd(
    captures: Annotated[
        list[str],
        typer.Argument(
            help="Captures of the network's normal traffic (files, folders, globs, URLs): one "
            "continuous capture, as for flows."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The thresholds file (JSON).")],
    margin: Annotated[
        float, typer.Option(help="Threshold = max(floor, margin x q99.9 of benign windows).", min=1)
    ] = 2.0,
) -> None:
    """Learn the aggregate detector's thresholds from benign traffic of your own network.

    Computes the 10 s host windows of the captures (packets and sources per destination host,
    unmatched handshakes, UDP, ICMP and fragments per second) and writes, per threshold,
    max(floor, margin x its 99.9th percentile): a busy collector or server that receives more
    than the generic floors is no longer a flood. Use the file with
    `scan --thresholds` and `watch --thresholds`.
    """
    from flowsentinel.capture import CaptureStats
    from flowsentinel.capture.inputs import expand_inputs
    from flowsentinel.capture.stream import decoded_batches, order_captures
    from flowsentinel.capture.windows import Baseline, WindowDetector, thresholds_to_json

    inputs = expand_inputs(captures)
    if inputs.stdin:
        raise InputError("baseline reads capture files, not stdin")
    stats = CaptureStats()
    baseline = Baseline(margin=margin)
    detector = WindowDetector(on_hosts=baseline.add_hosts)
    with console.status("reading the benign windows"):
        for source in order_captures(list(inputs.captures), stats):
            part = stats.begin(source)
            for pk in decoded_batches(source, part):
                detector.add(pk)
            stats.absorb(part)
        detector.flush()
    figures = baseline.figures()
    doc = {
        "thresholds": thresholds_to_json(baseline.thresholds()),
        "figures": figures,
        "margin": margin,
        "windows": baseline.windows,
        "packets": stats.packets,
        "captures": [p.source for p in stats.captures],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    rows = [[name, f["benign_max"], f["benign_quantile"], f["floor"], f["threshold"]]
            for name, f in figures.items()]  # fmt: skip
    console.print(table(
        f"Thresholds from {stats.packets:,} packets, {baseline.windows:,} host windows",
        ["threshold", "benign max", "benign q99.9", "floor", "in use"], rows,
    ))  # fmt: skip
    console.print(f"wrote {out}")


def thresholds_option() -> object:
    return typer.Option(
        "--thresholds",
        help="The aggregate detector's thresholds learnt by `flowsentinel baseline` "
        "(default: the generic floors).",
    )


def register(app: typer.Typer) -> None:
    """Add the capture commands to the main application."""
    app.command("flows")(friendly_errors(flows_cmd))
    app.command("baseline")(friendly_errors(baseline_cmd))
    app.command("lab")(friendly_errors(lab_cmd))
