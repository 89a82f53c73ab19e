"""Benchmark: `flowsentinel flows` against nfstream on the same packet capture.

Make the captures first (as root): ``../shared/tools/make-bench-capture.sh /tmp/bench.pcap`` and
``... /tmp/bench10.pcap 0.1``. nfstream is the reference, installed for the benchmark only (into
a venv of its own with this package and setuptools: docs/capture.md, "Current figures"). Every
row runs in its own child (see ``_common.run_measured``): wall time from spawn to exit (imports
included), the time spent metering as reported by the tool, and the peak RSS. A third capture,
``--copies`` time-shifted copies of the full one back to back (each shifted past the flow
timeout), shows whether memory stays flat as the capture grows.

    .venv/bin/python benchmarks/bench_flows.py --capture /tmp/bench.pcap \
        --tenth /tmp/bench10.pcap --copies 4
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
from pathlib import Path

from _common import Measurement, run_measured

NFSTREAM_CODE = """
import json, sys, time
from nfstream import NFStreamer
t = time.perf_counter()
n = 0
for _flow in NFStreamer(source=sys.argv[1], statistical_analysis=True):
    n += 1
print(json.dumps({"flows": n, "seconds": time.perf_counter() - t}))
"""


def shifted_copies(src: Path, dst: Path, copies: int, shift_s: int = 300) -> int:
    """Write `copies` copies of a little-endian microsecond pcap, each `shift_s` later."""
    data = src.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise SystemExit("the copies need a little-endian microsecond pcap")
    packets = 0
    with dst.open("wb") as out:
        out.write(data[:24])
        for k in range(copies):
            pos = 24
            chunks = []
            while pos + 16 <= len(data):
                sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
                chunks.append(struct.pack("<IIII", sec + k * shift_s, usec, incl, orig))
                chunks.append(data[pos + 16 : pos + 16 + incl])
                pos += 16 + incl
                packets += 1
                if len(chunks) > 20000:
                    out.write(b"".join(chunks))
                    chunks = []
            out.write(b"".join(chunks))
    return packets


def packets_of(path: Path) -> int:
    from flowsentinel.capture import ReadCounters, iter_records

    counters = ReadCounters()
    for _ in iter_records(path, counters):
        pass
    return counters.records


def row(name: str, m: Measurement, packets: int, inner: float | None) -> list[str]:
    pps_wall = packets / m.seconds if m.ok and m.seconds else 0
    pps_inner = packets / inner if inner else 0
    return [
        name,
        f"{packets:,}",
        f"{m.seconds:.2f}" if m.ok else f"failed ({m.returncode})",
        f"{pps_wall:,.0f}",
        f"{inner:.2f}" if inner else "-",
        f"{pps_inner:,.0f}" if inner else "-",
        f"{m.peak_rss_mb:,.0f}",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capture", type=Path, required=True)
    p.add_argument("--tenth", type=Path)
    p.add_argument("--copies", type=int, default=0, help="time-shifted copies (0: skip)")
    p.add_argument("--no-nfstream", action="store_true")
    p.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench_flows")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    captures = [("full", args.capture)]
    if args.tenth:
        captures.insert(0, ("tenth", args.tenth))
    if args.copies:
        long = args.log_dir / f"bench_x{args.copies}.pcap"
        args.log_dir.mkdir(parents=True, exist_ok=True)
        shifted_copies(args.capture, long, args.copies)
        captures.append((f"{args.copies}x full", long))
    # warm the numba cache once so that no row pays for compilation
    warm = [sys.executable, "-m", "flowsentinel", "flows", str(captures[0][1]), "-o"]
    run_measured("warmup", [*warm, str(args.log_dir / "warm.csv")], log_dir=args.log_dir)
    header = ["tool / capture", "packets", "wall s", "packets/s (wall)", "metering s",
              "packets/s (metering)", "peak RSS MB"]  # fmt: skip
    rows, records = [], []
    for label, cap in captures:
        packets = packets_of(cap)
        out = args.log_dir / f"flows-{label.replace(' ', '')}.csv"
        m = run_measured(
            f"ours-{label.replace(' ', '')}",
            [sys.executable, "-m", "flowsentinel", "flows", str(cap), "-o", str(out), "--json"],
            log_dir=args.log_dir,
        )
        stats = m.last_json_line() or {}
        if not stats:  # the JSON is pretty-printed over several lines
            text = m.stdout
            stats = json.loads(text[text.index("{") :]) if "{" in text else {}
        rows.append(row(f"flowsentinel / {label}", m, packets, stats.get("seconds")))
        records.append({"tool": "flowsentinel", "capture": label, "packets": packets,
                        "flows": stats.get("flows"), **m.as_dict(0)})  # fmt: skip
        if not args.no_nfstream and "x" not in label:
            n = run_measured(
                f"nfstream-{label}", [sys.executable, "-c", NFSTREAM_CODE, str(cap)],
                log_dir=args.log_dir,
            )  # fmt: skip
            info = n.last_json_line() or {}
            rows.append(row(f"nfstream / {label}", n, packets, info.get("seconds")))
            records.append({"tool": "nfstream", "capture": label, "packets": packets,
                            "flows": info.get("flows"), **n.as_dict(0)})  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
