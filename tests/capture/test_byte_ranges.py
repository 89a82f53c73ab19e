"""A classic pcap read by byte ranges cut at guessed offsets, as the cluster's read tasks read
it: each range from its first plausible chain of records up to the first record at or after
its end. When the ranges join up (each begins where the one before it found the next record)
they hold exactly the records of one reader of the whole file; when they do not (plausible
records inside a payload, damage at a cut) the check names the file."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import dpkt
import numpy as np
import pytest
from capture_sets import busy_scenario, write_pcap

from flowsentinel.capture import ReadCounters, iter_records
from flowsentinel.capture.partitioned import CutMismatch, Span, check_cuts
from flowsentinel.capture.pcap import UnalignedCut

Record = tuple[int, bytes]
_skipped: list[tuple[int, int]] = []


def _records(
    path: Path, byte_range: tuple[int, int | None] | None = None
) -> tuple[list[Record], ReadCounters]:
    counters = ReadCounters()
    out = []
    for b in iter_records(path, counters, byte_range=byte_range):
        for o, n, t in zip(b.offset.tolist(), b.caplen.tolist(), b.ts_us.tolist(), strict=True):
            out.append((t, bytes(b.buf[o : o + n])))
    return out, counters


def _by_ranges(path: Path, cuts: list[int]) -> tuple[list[Record], list[Span], int, int]:
    """The records of the ranges [24, c1), [c1, c2), ..., [ck, end), their spans, bytes and
    damaged records (the skipped byte ranges they report: in ``_skipped``)."""
    records: list[Record] = []
    spans, total, corrupt = [], 0, 0
    _skipped.clear()
    starts, stops = [24, *cuts], [*cuts, None]
    for a, b in zip(starts, stops, strict=True):
        try:
            got, counters = _records(path, (a, b))
        except UnalignedCut:  # as the read task records it
            spans.append(Span(str(path), -1, -1, own_counts=False))
            continue
        records += got
        spans.append(Span.of(str(path), counters))
        total += counters.bytes_total
        corrupt += counters.corrupt_records
        _skipped.extend(counters.damaged_ranges)
    return records, spans, total, corrupt


def test_ranges_cut_anywhere_hold_the_records_of_the_whole_file(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "busy.pcap", busy_scenario(seed=3, flows=300))
    expected, whole = _records(path)
    size = path.stat().st_size
    rng = np.random.default_rng(0)
    for cuts in (
        sorted(rng.choice(np.arange(25, size), 6, replace=False).tolist()),
        [25, 26, 27],  # inside the first record, several times
        [size // 2, size // 2 + 1, size - 1],  # one byte apart, and inside the last record
    ):
        records, spans, total, _ = _by_ranges(path, cuts)
        check_cuts(spans)  # they join up: no CutMismatch
        assert records == expected
        assert total == size == whole.bytes_total


def _fake_records(n: int) -> bytes:
    """``n`` plausible pcap records of 8 bytes each: what a reader may take for a capture."""
    return b"".join(struct.pack("<IIII", 1_700_000_000, k, 8, 8) + bytes(8) for k in range(n))


def payload_pcap(path: Path, packets: int = 40) -> Path:
    """A capture whose TCP payloads are runs of plausible pcap records."""
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh, snaplen=65535)
        for k in range(packets):
            tcp = dpkt.tcp.TCP(sport=40000 + k % 3, dport=80, flags=dpkt.tcp.TH_ACK,
                               data=_fake_records(50))  # fmt: skip
            ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=6, data=tcp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
            writer.writepkt(bytes(eth), ts=1_700_000_000 + k * 0.01)
    return path


def test_a_chain_of_records_inside_a_payload_is_caught(tmp_path: Path) -> None:
    path = payload_pcap(tmp_path / "payloads.pcap")
    starts = _record_starts(path.read_bytes())
    cut = starts[20] + 16 + 54 + 5  # inside the payload of fake records of the 21st packet
    _, spans, _, _ = _by_ranges(path, [cut])
    assert spans[1].start != spans[0].end
    with pytest.raises(CutMismatch) as err:
        check_cuts(spans)
    assert err.value.sources == (str(path),)


def test_damage_counted_by_one_range_only(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "busy.pcap", busy_scenario(seed=4, flows=200))
    data = bytearray(path.read_bytes())
    starts = _record_starts(bytes(data))
    at = starts[len(starts) // 4]
    data[at + 8 : at + 12] = struct.pack("<I", 0)  # a captured length of 0: damaged
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(bytes(data))
    whole, counters = _records(damaged)
    assert counters.corrupt_records == 1
    # before the cut: the first range skips it as the whole reader does, the second one
    # begins at the record it found after it
    records, spans, total, corrupt = _by_ranges(damaged, [starts[len(starts) // 2] + 7])
    check_cuts(spans)
    assert records == whole and total == len(data) and corrupt == 1
    assert _skipped == counters.damaged_ranges  # file offsets, as the whole reader's
    # after the cut: the first range walked on over it (its counts are not its own alone),
    # so the file is to be read whole
    records, spans, total, corrupt = _by_ranges(damaged, [starts[10] + 7])
    assert records == whole and corrupt == 2
    _, second = _records(damaged, (starts[10] + 7, None))
    assert second.damaged_ranges == counters.damaged_ranges  # file offsets, not the range's
    with pytest.raises(CutMismatch):
        check_cuts(spans)


def _record_starts(data: bytes) -> list[int]:
    """Where each record of an undamaged little-endian pcap starts (its headers hopped)."""
    starts, pos = [], 24
    while pos < len(data):
        starts.append(pos)
        pos += 16 + struct.unpack("<I", data[pos + 8 : pos + 12])[0]
    return starts


def test_a_range_with_no_record_to_be_found_is_caught(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "busy.pcap", busy_scenario(seed=5, flows=50))
    data = path.read_bytes()
    junk = tmp_path / "junk.pcap"  # 5 MB of zeros after the records: no plausible header
    junk.write_bytes(data + bytes(5 << 20))
    cut = len(data) + 1000
    _, spans, _, _ = _by_ranges(junk, [cut])
    assert spans[1].start == -1 or spans[1].start != spans[0].end
    with pytest.raises(CutMismatch):
        check_cuts(spans)


class _NoSeek(io.BytesIO):
    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("seek")


def test_a_stream_that_cannot_seek_is_read_whole_instead(tmp_path: Path) -> None:
    data = write_pcap(tmp_path / "busy.pcap", busy_scenario(seed=6, flows=30)).read_bytes()
    stream = _NoSeek(data)
    with pytest.raises(UnalignedCut, match="cannot seek"):
        list(iter_records(stream, ReadCounters(), byte_range=(len(data) // 2, None)))
