"""Bounded reading of untrusted files: every limit stops the work while the bytes are decoded."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowsentinel.bounded import Limits, capture_flows, csv_rows, gunzip, parquet_rows, prepare
from flowsentinel.core.errors import InputError, LimitError

REPO_ROOT = Path(__file__).resolve().parents[1]
SLOWLORIS = REPO_ROOT.parent / "shared" / "datasets" / "pcaps" / "attack" / "slowloris-lab.pcap"
HEADER = b"Flow Duration,Total Fwd Packets,Label\n"
ROW = b"1000,3,BENIGN\n"
WIDE = Limits(max_bytes=1 << 30, max_rows=10**9, max_packets=10**9)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_gzip_bomb_is_stopped_at_the_byte_limit(tmp_path: Path) -> None:
    # 64 MiB of zeros compress to ~64 KiB: the limit stops decompression after 1 MiB + a chunk
    bomb = _write(tmp_path / "bomb.gz", gzip.compress(b"0" * (64 << 20), compresslevel=9))
    out = tmp_path / "out"
    with pytest.raises(LimitError, match="decompresses to more than 1,048,576 bytes"):
        gunzip(bomb, out, Limits(1 << 20, 10**9, 1), "bomb.gz")
    assert out.stat().st_size <= 1 << 20  # nothing past the limit reached the disk


def test_gzip_rows_are_counted_while_decompressing(tmp_path: Path) -> None:
    data = HEADER + ROW * 5000
    src = _write(tmp_path / "f.csv.gz", gzip.compress(data))
    with pytest.raises(LimitError, match="more than 4,999 flows"):
        gunzip(src, tmp_path / "a", Limits(1 << 30, 4999, 1), "f.csv.gz")
    gunzip(src, tmp_path / "b", Limits(1 << 30, 5000, 1), "f.csv.gz")
    assert (tmp_path / "b").read_bytes() == data


def test_corrupt_and_truncated_gzip_are_one_line_errors(tmp_path: Path) -> None:
    whole = gzip.compress(HEADER + ROW * 100)
    for name, data in (("cut.gz", whole[: len(whole) // 2]), ("bad.gz", whole[:10] + b"x" * 50)):
        src = _write(tmp_path / name, data)
        with pytest.raises(InputError) as err:
            gunzip(src, tmp_path / "out", WIDE, name)
        assert "\n" not in str(err.value) and str(err.value).startswith(f"{name}: corrupt gzip")


@pytest.mark.parametrize(
    ("data", "rows"),
    [(HEADER, 0), (HEADER + ROW * 3, 3), (HEADER + ROW * 2 + ROW.rstrip(), 3), (b"", 0)],
)
def test_csv_rows_counts_data_rows(tmp_path: Path, data: bytes, rows: int) -> None:
    assert csv_rows(_write(tmp_path / "f.csv", data), WIDE) == rows


def test_csv_rows_stops_past_the_limit(tmp_path: Path) -> None:
    src = _write(tmp_path / "f.csv", HEADER + ROW * 11)
    with pytest.raises(LimitError, match="more than 10 flows"):
        csv_rows(src, Limits(1 << 30, 10, 1))


def test_parquet_limits_come_from_the_footer(tmp_path: Path) -> None:
    table = pa.table({"Flow Duration": list(range(1000)), "Label": ["BENIGN"] * 1000})
    pq.write_table(table, tmp_path / "f.parquet", row_group_size=100)
    src = tmp_path / "f.parquet"
    assert parquet_rows(src, WIDE) == 1000
    with pytest.raises(LimitError, match="more than 999 flows"):
        parquet_rows(src, Limits(1 << 30, 999, 1))
    with pytest.raises(LimitError, match="bytes uncompressed"):
        parquet_rows(src, Limits(1024, 10**6, 1))
    cut = _write(tmp_path / "cut.parquet", src.read_bytes()[:-20])
    with pytest.raises(InputError) as err:
        parquet_rows(cut, WIDE, "cut.parquet")
    assert "\n" not in str(err.value)


def test_prepare_finds_the_format_inside_gzip(tmp_path: Path) -> None:
    src = _write(tmp_path / "upload", gzip.compress(HEADER + ROW * 3))
    path, kind = prepare(src, WIDE, "flows.csv.gz")
    assert kind == "csv" and path.name == "upload.csv"
    assert path.read_bytes() == HEADER + ROW * 3


def test_prepare_refuses_archives_with_a_message(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("flows.csv", HEADER + ROW)
    src = _write(tmp_path / "upload", buf.getvalue())
    with pytest.raises(InputError, match=r"flows\.zip: a zip archive is not accepted"):
        prepare(src, WIDE, "flows.zip")
    nested = _write(tmp_path / "upload", gzip.compress(gzip.compress(HEADER)))
    with pytest.raises(InputError, match="gzip inside gzip"):
        prepare(nested, WIDE, "x.gz")


@pytest.mark.skipif(not SLOWLORIS.exists(), reason=f"{SLOWLORIS} absent (../shared not here)")
def test_capture_metering_stops_at_the_packet_limit(tmp_path: Path) -> None:
    table, stats = capture_flows(SLOWLORIS, WIDE)
    assert stats.packets == 3754 and table.num_rows == stats.flows > 100
    with pytest.raises(LimitError, match="more than 1,000 packets"):
        capture_flows(SLOWLORIS, Limits(1 << 30, 10**6, 1000), "slowloris.pcap")
    gz = _write(tmp_path / "upload", gzip.compress(SLOWLORIS.read_bytes()))
    path, kind = prepare(gz, WIDE, "slowloris.pcap.gz")
    assert kind == "pcap" and capture_flows(path, WIDE)[1].packets == 3754
