"""load_sources: files and folders into one canonical frame with source_file."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from flowdata import write_cic_file, write_ten_feature_parquet, write_unsw_partition
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets import sources as sources_mod
from flowsentinel.datasets.cache import ColumnarCache, content_hash
from flowsentinel.datasets.sources import expand_sources, load_sources


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of three CIC files in three formats, one nested, plus files to ignore."""
    root = tmp_path / "flows"
    write_cic_file(root / "monday.csv", ["BENIGN", "BENIGN", "DoS Hulk"])
    gz_source = write_cic_file(tmp_path / "tmp.csv", ["DDoS", "BENIGN"])
    (root / "nested").mkdir(parents=True)
    (root / "nested" / "tuesday.csv.gz").write_bytes(gzip.compress(gz_source.read_bytes()))
    parquet_source = write_cic_file(tmp_path / "tmp2.csv", ["PortScan"] * 4)
    pl.read_csv(parquet_source).write_parquet(root / "nested" / "deeper.parquet")
    (root / "notes.txt").write_text("not data")
    (root / "nested" / "README.md").write_text("not data")
    return root


def test_folder_is_read_recursively(folder: Path) -> None:
    data = load_sources([folder])
    assert data.dataset == "cicids2017"
    assert len(data.files) == 3
    assert data.frame.height == 3 + 2 + 4
    counts = dict(data.frame.group_by(sc.SOURCE).len().iter_rows())
    expected_paths = {
        str((folder / "monday.csv").resolve()): 3,
        str((folder / "nested" / "tuesday.csv.gz").resolve()): 2,
        str((folder / "nested" / "deeper.parquet").resolve()): 4,
    }
    assert {str(k): v for k, v in counts.items()} == expected_paths
    assert sorted(data.frame["Family"].to_list()) == sorted(
        ["BENIGN", "BENIGN", "DoS", "DDoS", "BENIGN", *["PortScan"] * 4]
    )
    assert data.hashes == [""] * 3  # no cache: no hashes


def test_expand_sources_deduplicates_and_keeps_order(folder: Path) -> None:
    files = expand_sources([folder / "monday.csv", folder, folder / "monday.csv"])
    names = [p.name for p in files]
    assert names.count("monday.csv") == 1
    assert names[0] == "monday.csv"
    assert set(names) == {"monday.csv", "tuesday.csv.gz", "deeper.parquet"}


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere"):
        load_sources([tmp_path / "nowhere"])


def test_folder_without_flow_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="empty"):
        load_sources([tmp_path / "empty"])


def test_no_sources() -> None:
    with pytest.raises(InputError):
        load_sources([])


def test_mixed_columns_are_refused(tmp_path: Path) -> None:
    full = write_cic_file(tmp_path / "mix" / "a_full.csv", ["BENIGN", "DoS Hulk"])
    ten = write_ten_feature_parquet(tmp_path / "mix" / "b_ten.parquet", rows=6)
    with pytest.raises(InputError) as exc:
        load_sources([tmp_path / "mix"])
    message = str(exc.value)
    assert str(ten.resolve()) in message or str(full.resolve()) in message
    assert "--mixed intersect" in message
    assert "\n" not in message


def test_mixed_intersect_keeps_common_columns(tmp_path: Path) -> None:
    write_cic_file(tmp_path / "mix" / "a_full.csv", ["BENIGN", "DoS Hulk"])
    write_ten_feature_parquet(tmp_path / "mix" / "b_ten.parquet", rows=6)
    data = load_sources([tmp_path / "mix"], mixed="intersect")
    assert data.frame.height == 2 + 6
    features = [c for c in data.frame.columns if c in sc.CIC_FEATURES]
    assert features == list(sc.CIC_FEATURES[:10])
    assert set(data.columns_not_in_all_files) == set(sc.CIC_FEATURES[10:])
    assert data.frame.select(features).null_count().sum_horizontal().item() == 0


def test_files_of_two_data_sets_are_refused(tmp_path: Path) -> None:
    write_cic_file(tmp_path / "both" / "a.csv", ["BENIGN"])
    write_unsw_partition(tmp_path / "both" / "b.csv", [("Normal", 0)])
    for mixed in ("error", "intersect"):
        with pytest.raises(InputError, match="unsw-nb15"):
            load_sources([tmp_path / "both"], mixed=mixed)


def test_dataset_given_and_not_matching(tmp_path: Path) -> None:
    path = write_unsw_partition(tmp_path / "u.csv", [("Normal", 0)])
    with pytest.raises(InputError, match="not cicids2017"):
        load_sources([path], "cicids2017")


def test_cache_hashes_and_reuse(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ColumnarCache(tmp_path / "cache")
    first = load_sources([folder], cache=cache)
    paths = expand_sources([folder])
    assert first.hashes == [content_hash(p) for p in paths]

    calls: list[Path] = []
    real = sources_mod.read_file_with_facts

    def counting(path: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sources_mod, "read_file_with_facts", counting)
    second = load_sources([folder], cache=ColumnarCache(tmp_path / "cache"))
    assert calls == []  # every file came from the cache
    assert second.frame.equals(first.frame)
    assert [r.to_dict() for r in second.files] == [r.to_dict() for r in first.files]

    # another require_label is another cache entry
    load_sources([folder], cache=cache, require_label=False)
    assert len(calls) == 3


def test_cache_hit_reports_the_current_path(tmp_path: Path) -> None:
    cache = ColumnarCache(tmp_path / "cache")
    a = write_cic_file(tmp_path / "one" / "flows.csv", ["BENIGN", "Bot"])
    b = tmp_path / "two" / "copy.csv"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    load_sources([a], cache=cache)
    data = load_sources([b], cache=cache)
    assert data.files[0].path == str(b.resolve())
    assert data.frame[sc.SOURCE].cast(pl.String).unique().to_list() == [str(b.resolve())]
