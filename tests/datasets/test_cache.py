"""ColumnarCache: content hashes memoised by stat signature, parsed frames, results."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
import xxhash

from flowsentinel.datasets import cache as cache_mod
from flowsentinel.datasets.cache import ColumnarCache, content_hash


def _xxh3(path: Path) -> str:
    return xxhash.xxh3_128_hexdigest(path.read_bytes())


@pytest.fixture
def counted_hash(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = cache_mod.content_hash

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(cache_mod, "content_hash", counting)
    return calls


def test_content_hash_is_xxh3_128_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(5_000_000))  # more than one read chunk
    assert content_hash(path) == _xxh3(path)
    assert len(content_hash(path)) == 32


def test_file_hash_equals_content_hash_and_ignores_the_name(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    b = tmp_path / "sub" / "b.csv"
    b.parent.mkdir()
    a.write_text("x,y\n1,2\n")
    b.write_text("x,y\n1,2\n")
    cache = ColumnarCache(tmp_path / "cache")
    assert cache.file_hash(a) == _xxh3(a)
    assert cache.file_hash(a) == cache.file_hash(b)


def test_file_hash_is_memoised_by_stat_signature(tmp_path: Path, counted_hash: list[Path]) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x,y\n1,2\n")
    cache = ColumnarCache(tmp_path / "cache")
    first = cache.file_hash(path)
    assert cache.file_hash(path) == first
    assert len(counted_hash) == 1
    # a new cache object on the same folder reads the stored index: still no re-hashing
    again = ColumnarCache(tmp_path / "cache").file_hash(path)
    assert again == first
    assert len(counted_hash) == 1


def test_changed_content_gives_a_new_hash(tmp_path: Path, counted_hash: list[Path]) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x,y\n1,2\n")
    cache = ColumnarCache(tmp_path / "cache")
    first = cache.file_hash(path)
    st = path.stat()
    path.write_text("x,y\n1,3\n")  # same size, other content
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = cache.file_hash(path)
    assert second != first
    assert second == _xxh3(path)
    assert len(counted_hash) == 2


def test_get_and_put_round_trip(tmp_path: Path) -> None:
    cache = ColumnarCache(tmp_path / "cache")
    frame = pl.DataFrame({"a": [1.0, 2.5, None], "Label": ["BENIGN", "DDoS", None]})
    meta = {"path": "x.csv", "rows": 3, "unparseable_values": {"a": 1}}
    assert cache.get("k1") is None
    cache.put("k1", frame, meta)
    hit = cache.get("k1")
    assert hit is not None
    got, got_meta = hit
    assert got.equals(frame)
    assert got_meta == meta
    assert cache.get("k2") is None


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = ColumnarCache(tmp_path / "cache")
    cache.put("k", pl.DataFrame({"a": [1]}), {"rows": 1})
    for arrow in (tmp_path / "cache").rglob("*.arrow"):
        arrow.write_bytes(b"not arrow at all")
    assert cache.get("k") is None


def test_corrupt_index_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    (root / "hash-index.json").write_text("{not json")
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n")
    assert ColumnarCache(root).file_hash(path) == _xxh3(path)


def test_results_store_and_fetch(tmp_path: Path) -> None:
    cache = ColumnarCache(tmp_path / "cache")
    src = tmp_path / "out1"
    src.mkdir()
    (src / "clean.parquet").write_bytes(b"parquet bytes")
    (src / "report.json").write_text('{"rows": 3}')
    names = ["clean.parquet", "report.json"]
    assert cache.fetch_result("r", names, tmp_path / "out2") is False
    cache.store_result("r", names, src)
    assert cache.fetch_result("r", names, tmp_path / "out2") is True
    for n in names:
        assert (tmp_path / "out2" / n).read_bytes() == (src / n).read_bytes()
    # asking for a file that was not stored is a miss
    assert cache.fetch_result("r", [*names, "other.json"], tmp_path / "out3") is False
