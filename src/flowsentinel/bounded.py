"""Bounded reading of untrusted files (the service's uploads): every limit is checked while the
bytes are decoded, so that a small compressed upload cannot make the process decompress, parse
or meter more than the limits allow.

- gzip is decompressed in chunks into a file beside the upload; the decompressed bytes and the
  text lines are counted as they come, and decompression stops as soon as either limit is
  passed (a 1 MB gzip of a billion rows costs at most the limit, not the billion rows);
- a CSV's rows are counted (newlines, read in chunks) before it is parsed;
- a parquet file's rows and uncompressed bytes are read from its footer before any column is;
- a packet capture is metered with its packets counted batch by batch, and stopped when the
  packet limit is passed (open flows cannot outgrow the packets that made them).

What the limits refuse raises :class:`~flowsentinel.core.errors.LimitError` (the service
answers 413); a file that is not what it claims raises
:class:`~flowsentinel.core.errors.InputError`.

Examples
--------
>>> from flowsentinel.bounded import Limits
>>> Limits(max_bytes=1 << 20, max_rows=1000, max_packets=10_000).max_rows
1000
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from flowsentinel.capture.frame import empty_table, flows_to_arrow
from flowsentinel.capture.pcap import is_capture_magic
from flowsentinel.capture.stream import CaptureStats, PacketTap, check_damage, iter_flow_arrays
from flowsentinel.core.errors import InputError, LimitError

Kind = Literal["pcap", "csv", "parquet"]
CHUNK = 1 << 20

#: compressed and archive formats that are recognised only to be refused with a clear message
_REFUSED = {
    b"PK\x03\x04": "a zip archive",
    b"BZh": "a bzip2 file",
    b"\xfd7zXZ": "an xz file",
    b"\x28\xb5\x2f\xfd": "a zstd file",
}


@dataclass(frozen=True)
class Limits:
    """What one untrusted file may hold.

    Parameters
    ----------
    max_bytes : int
        Decompressed bytes (a gzip upload is stopped when it expands past this).
    max_rows : int
        Flows (data rows) of a CSV or parquet file.
    max_packets : int
        Packets of a capture.
    """

    max_bytes: int
    max_rows: int
    max_packets: int


#: no limit (the command line reads the user's own files)
UNLIMITED = Limits(max_bytes=1 << 62, max_rows=1 << 62, max_packets=1 << 62)


def sniff(head: bytes, name: str = "") -> Literal["pcap", "parquet", "gzip", "csv"]:
    """The format of a file from its first bytes (its name only when the bytes say nothing)."""
    if is_capture_magic(head):
        return "pcap"
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    for magic, what in _REFUSED.items():
        if head.startswith(magic):
            raise InputError(
                f"{what} is not accepted: send the CSV, parquet or capture itself "
                "(gzip-compressed if you like)",
                path=name or None,
            )
    lowered = name.lower()
    if lowered.endswith((".pcap", ".pcapng", ".cap")):
        return "pcap"  # the capture reader names what is wrong with it
    if lowered.endswith(".parquet"):
        return "parquet"
    return "csv"


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(8)


def gunzip(src: Path, dst: Path, limits: Limits, name: str = "") -> None:
    """Decompress ``src`` into ``dst``, stopping as soon as the decompressed bytes pass
    ``limits.max_bytes`` or a CSV's lines pass ``limits.max_rows`` (plus its header)."""
    total = 0
    lines = 0
    text: bool | None = None
    try:
        with gzip.open(src, "rb") as gz, dst.open("wb") as out:
            while chunk := gz.read(CHUNK):
                total += len(chunk)
                if total > limits.max_bytes:
                    raise LimitError(
                        f"decompresses to more than {limits.max_bytes:,} bytes (the limit)",
                        path=name or None,
                    )
                if text is None:
                    text = sniff(chunk[:8]) == "csv"
                if text:
                    lines += chunk.count(b"\n")
                    _check_rows(lines - 1, limits, name)
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"corrupt gzip data ({_first_line(exc)})", path=name or None) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_rows(rows: int, limits: Limits, name: str) -> None:
    if rows > limits.max_rows:
        raise LimitError(f"more than {limits.max_rows:,} flows (the limit)", path=name or None)


def csv_rows(path: Path, limits: Limits, name: str = "") -> int:
    """Data rows of a CSV (lines after the header), counted in chunks; stops past the limit.

    A quoted field holding a newline counts as two rows (flow files have none)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            _check_rows(lines - 1, limits, name)
    rows = max(0, lines - 1 + (last != b"\n"))
    _check_rows(rows, limits, name)
    return rows


def parquet_rows(path: Path, limits: Limits, name: str = "") -> int:
    """Rows of a parquet file from its footer; refuses it when its rows or uncompressed bytes
    pass the limits (before a single column is read)."""
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"corrupt or unreadable parquet ({_first_line(exc)})", path=name or None
        ) from None
    _check_rows(meta.num_rows, limits, name)
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > limits.max_bytes:
        raise LimitError(
            f"holds {size:,} bytes uncompressed; the limit is {limits.max_bytes:,}",
            path=name or None,
        )
    return int(meta.num_rows)


def prepare(path: Path, limits: Limits, name: str = "") -> tuple[Path, Kind]:
    """Make an untrusted file ready to read: decompress it (bounded), find its format and check
    the limits that can be checked before parsing. Returns the file to read and its kind; the
    file is named with the suffix its kind's reader expects (``.csv``, ``.parquet``, ``.pcap``).
    """
    kind = sniff(_head(path), name)
    if kind == "gzip":
        inner = path.with_name(path.name + ".unzipped")
        gunzip(path, inner, limits, name)
        os.replace(inner, path)
        kind = sniff(_head(path), name.removesuffix(".gz").removesuffix(".GZ"))
        if kind == "gzip":
            raise InputError("gzip inside gzip is not accepted", path=name or None)
    suffix = {"pcap": ".pcap", "parquet": ".parquet", "csv": ".csv"}[kind]
    target = path.with_name("upload" + suffix)
    if target != path:
        os.replace(path, target)
    if kind == "csv":
        csv_rows(target, limits, name)
    elif kind == "parquet":
        parquet_rows(target, limits, name)
    return target, kind


def capture_flows(
    path: Path | list[Path],
    limits: Limits,
    name: str = "",
    *,
    allow_damaged: bool = False,
    tap: PacketTap | None = None,
) -> tuple[pa.Table, CaptureStats]:
    """The flows of a capture, metered with its packets counted batch by batch: past
    ``limits.max_packets`` the metering stops (at most one read batch later). A capture of
    which more than a small share could not be read is refused unless ``allow_damaged``
    (:func:`flowsentinel.capture.check_damage`)."""
    stats = CaptureStats()

    def check(_position: int) -> None:
        if stats.packets_read > limits.max_packets:
            raise LimitError(
                f"more than {limits.max_packets:,} packets (the limit)", path=name or None
            )

    source = [str(p) for p in path] if isinstance(path, list) else path
    arrays = iter_flow_arrays(source, stats=stats, on_progress=check, tap=tap)
    tables = [flows_to_arrow(f) for f in arrays]
    _check_rows(stats.flows, limits, name)
    check_damage(stats, allow_damaged=allow_damaged, hint="send allow_damaged=true to keep it")
    table = pa.concat_tables(tables) if tables else empty_table()
    return table, stats
