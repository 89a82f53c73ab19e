"""Cleaning as Dask tasks per file, on a real cluster (a ``dask scheduler`` and two
``dask worker`` processes): the output rows, their order, the columns and the report are those
of the in-process :func:`clean_to_dir` on the same real CIC-IDS2017 files."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from distributed import Client
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from dask_cluster import DaskCluster, start_cluster
from flowdata import SHARED_DATASETS
from flowsentinel.cleaning import CLEAN_FILE, REPORT_FILE, CleaningOptions, clean_to_dir
from flowsentinel.cleaning_cluster import clean_on_cluster
from flowsentinel.cli.main import app
from flowsentinel.core import schema as sc

CIC = SHARED_DATASETS / "cicids2017"
THURSDAY = CIC / "thursday-webattacks-trafficlabelling.csv.gz"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three real files of three dialects, and a second copy of the Thursday file under another
    name (every row of the copy is a duplicate of a row of another file)."""
    copy = tmp_path_factory.mktemp("copy") / "thursday-again.csv.gz"
    shutil.copyfile(THURSDAY, copy)
    return [
        str(CIC / "friday-ddos-machinelearningcve-head9998.csv.gz"),
        str(THURSDAY),
        str(CIC / "cicids2017-sample-grouped-labels.csv.gz"),
        str(copy),
    ]


def _result(out: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    report = json.loads((out / REPORT_FILE).read_text())
    report.pop("seconds")
    return pl.read_parquet(out / CLEAN_FILE), report


@pytest.mark.parametrize(
    "options",
    [
        CleaningOptions(task="attack"),
        CleaningOptions(task="multiclass", near_constant="none", drop_identifiers=False),
        CleaningOptions(task="dos", drop_duplicates=False, drop_nonfinite=False),
        CleaningOptions(task="attack", near_constant="seed"),
    ],
    ids=["attack", "multiclass-keep-ids", "dos-keep-dups-nonfinite", "seed-rule"],
)
def test_cluster_equals_in_process(
    dask_cluster: DaskCluster, sources: list[str], tmp_path: Path, options: CleaningOptions
) -> None:
    clean_to_dir(sources, tmp_path / "local", options=options, mixed="intersect")
    with Client(dask_cluster.address, timeout=30) as client:
        clean_on_cluster(client, sources, tmp_path / "remote", options=options, mixed="intersect")
    local, local_report = _result(tmp_path / "local")
    remote, remote_report = _result(tmp_path / "remote")
    assert_frame_equal(remote, local)
    assert remote_report == local_report
    assert not list((tmp_path / "remote").glob(".clean-parts-*"))  # the parts are gone
    if options.drop_duplicates:  # the copy's rows are duplicates of rows of another file
        copy = sources[-1]
        assert remote.filter(pl.col(sc.SOURCE) == copy).height == 0
        assert remote.filter(pl.col(sc.SOURCE) == str(THURSDAY)).height > 0
    dropped = [d["column"] for d in remote_report["columns_dropped"]]
    if options.near_constant == "constant":  # judged over the rows of all files
        assert "Bwd PSH Flags" in dropped
    if options.near_constant == "seed":  # it drops informative columns (179 distinct values
        # here): the duplicates are found again on the columns left
        assert "Total Fwd Packets" in dropped


def test_cluster_through_the_columnar_cache(
    dask_cluster: DaskCluster, sources: list[str], tmp_path: Path
) -> None:
    """The workers parse each file once into the cache; the run that reads them back from it
    gives the same result as in-process cleaning without a cache."""
    options = CleaningOptions(task="attack")
    clean_to_dir(sources, tmp_path / "local", options=options, mixed="intersect")
    cache = tmp_path / "cache"
    entries: list[dict[Path, int]] = []
    with Client(dask_cluster.address, timeout=30) as client:
        for run in ("cold", "warm"):
            clean_on_cluster(
                client, sources, tmp_path / run, options=options, mixed="intersect", cache_dir=cache
            )
            entries.append({e: e.stat().st_mtime_ns for e in (cache / "parsed").glob("*.arrow")})
    # one entry per content (the copy shares the Thursday file's), read back and not rewritten
    assert len(entries[0]) == len(sources) - 1
    assert entries[1] == entries[0]
    local, local_report = _result(tmp_path / "local")
    for run in ("cold", "warm"):
        remote, remote_report = _result(tmp_path / run)
        assert_frame_equal(remote, local)
        assert remote_report == local_report


def test_cli_on_cluster(dask_cluster: DaskCluster, sources: list[str], tmp_path: Path) -> None:
    """``data clean --cluster``: the same files as ``data clean`` in-process."""
    runner = CliRunner()
    args = ["data", "clean", *sources, "--mixed", "intersect", "--task", "attack", "--no-cache"]
    local = runner.invoke(app, [*args, "-o", str(tmp_path / "local")])
    remote = runner.invoke(
        app, [*args, "-o", str(tmp_path / "remote"), "--cluster", dask_cluster.address]
    )
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    assert_frame_equal(_result(tmp_path / "remote")[0], _result(tmp_path / "local")[0])


def test_unreadable_file_is_one_line(dask_cluster: DaskCluster, tmp_path: Path) -> None:
    """A file a worker cannot read: the error names it, as in-process, and nothing is written."""
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    result = CliRunner().invoke(
        app,
        ["data", "clean", str(THURSDAY), str(bad), "-o", str(tmp_path / "out"),
         "--cluster", dask_cluster.address],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{bad}: no known flow columns" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def _submitted(client: Client, name: str) -> bool:
    """Whether the scheduler knows a task of the function ``name``."""

    def keys(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks]

    return any(name in k for k in client.run_on_scheduler(keys))


def test_worker_lost_while_holding_files(
    sources: list[str], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A worker killed once the files are read and held on the workers (its own cluster, so
    the session's keeps both workers): Dask reads its files again on the other worker, and the
    result is still the in-process one."""
    options = CleaningOptions(task="attack")
    clean_to_dir(sources, tmp_path / "local", options=options, mixed="intersect")
    cluster = start_cluster(tmp_path_factory.mktemp("dask-logs-lost"))
    try:
        with Client(cluster.address, timeout=30) as client:

            def kill_when_round_two_starts() -> None:
                deadline = time.monotonic() + 120
                while not _submitted(client, "_alive_rows") and time.monotonic() < deadline:
                    time.sleep(0.02)
                cluster.kill_worker(0)
                killed.append(time.monotonic())

            killed: list[float] = []
            killer = threading.Thread(target=kill_when_round_two_starts)
            killer.start()
            clean_on_cluster(
                client, sources, tmp_path / "remote", options=options, mixed="intersect"
            )
            finished = time.monotonic()
            killer.join()
        assert killed and killed[0] < finished  # the worker died during the job
    finally:
        cluster.stop()
    local, local_report = _result(tmp_path / "local")
    remote, remote_report = _result(tmp_path / "remote")
    assert_frame_equal(remote, local)
    assert remote_report == local_report
