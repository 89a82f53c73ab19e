"""``flowsentinel score``: a flow table scored partition by partition, in-process or on a real
Dask cluster, with the record columns of ``scan``; bad input and a lost worker never leave a
partial output under the final name."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dask_cluster import DaskCluster, start_cluster
from flowsentinel.batch import score
from flowsentinel.cli.main import app
from flowsentinel.core.cluster import Cluster, ClusterError
from flowsentinel.core.settings import get_settings
from flowsentinel.datasets.synthetic import generate_flows, write_cic_csv
from flowsentinel.models.training import TrainConfig, train
from flowsentinel.scanning import flow_records, read_flow_file
from flowsentinel.scoring import Detector

MODEL = "flowsentinel-cicids2017-dos"


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A FLOWSENTINEL_HOME holding a registered xgb model (defaults, no search)."""
    home = tmp_path_factory.mktemp("score-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSENTINEL_HOME", str(home))
        get_settings.cache_clear()
        csv = write_cic_csv(generate_flows(2000, seed=3), home / "train.csv")
        train(TrainConfig(sources=[str(csv)], models=["xgb"], n_iter=0))
    get_settings.cache_clear()
    yield home


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two CSV files and a parquet file of labelled CIC-IDS2017 flows (3 partitions)."""
    folder = tmp_path_factory.mktemp("flows")
    write_cic_csv(generate_flows(700, seed=11), folder / "a.csv")
    write_cic_csv(generate_flows(500, seed=12), folder / "b.csv")
    third = write_cic_csv(generate_flows(600, seed=13), folder / "c.csv")
    pd.read_csv(third).to_parquet(folder / "c.parquet", index=False)
    third.unlink()
    return folder


@pytest.fixture
def det(model_home: Path, monkeypatch: pytest.MonkeyPatch) -> Detector:
    monkeypatch.setenv("FLOWSENTINEL_HOME", str(model_home))
    get_settings.cache_clear()
    return Detector.load(MODEL)


def _expected(flows_dir: Path, det: Detector) -> pd.DataFrame:
    """The records ``scan``'s path makes for each file, rows numbered across the files."""
    records: list[dict[str, object]] = []
    for path in sorted(flows_dir.iterdir()):
        frame = read_flow_file(path, det)
        records += flow_records(
            det.predict(frame), frame, dataset=det.dataset, first_row=len(records)
        )
    return pd.DataFrame.from_records(records)


def _plain(values: pd.Series) -> list[object]:
    return values.astype(object).where(values.notna(), None).tolist()


def _same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(found.columns) == list(expected.columns)
    assert found["row"].tolist() == expected["row"].tolist()
    for col in ("label", "true_label", "src_ip", "dst_port", "confidence"):
        assert _plain(found[col]) == _plain(expected[col]), col
    for col in ("probability", "attack_probability", "novelty"):
        assert np.array_equal(found[col].to_numpy(float), expected[col].to_numpy(float)), col


def test_in_process_file_has_scans_records(flows_dir: Path, det: Detector, tmp_path: Path) -> None:
    out = tmp_path / "verdicts.parquet"
    result = score(str(flows_dir), det, str(out))
    expected = _expected(flows_dir, det)
    on_disk = sum(
        len(pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p))
        for p in flows_dir.iterdir()
    )
    assert (result.files, result.flows) == (3, len(expected)) == (3, on_disk)
    assert result.by_label == expected["label"].value_counts().to_dict()
    _same(pd.read_parquet(out), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["verdicts.parquet"]  # no temporary left


def test_cluster_equals_in_process(
    flows_dir: Path, det: Detector, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    local = tmp_path / "local"
    remote = tmp_path / "remote"
    score(str(flows_dir), det, str(local))
    score(str(flows_dir), det, str(remote), Cluster(address=dask_cluster.address))
    parts = sorted(p.name for p in remote.iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    a, b = pd.read_parquet(local), pd.read_parquet(remote)
    pd.testing.assert_frame_equal(a, b)
    _same(b, _expected(flows_dir, det))


def test_cli_csv_output_and_bad_input(flows_dir: Path, det: Detector, tmp_path: Path) -> None:
    out = tmp_path / "v.csv"
    runner = CliRunner()
    ok = runner.invoke(app, ["score", str(flows_dir / "a.csv"), "--model", MODEL, "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert len(pd.read_csv(out)) == len(pd.read_csv(flows_dir / "a.csv"))
    again = runner.invoke(app, ["score", str(flows_dir), "--model", MODEL, "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.csv").write_text("a,b\n1,2\n")
    failed = runner.invoke(app, ["score", str(bad), "--model", MODEL, "-o", str(tmp_path / "o")])
    lines = [line for line in failed.output.splitlines() if line.strip()]
    assert failed.exit_code == 2 and len(lines) == 1 and "x.csv" in lines[0], failed.output
    assert not (tmp_path / "o").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "v.csv"]


@pytest.mark.slow
def test_worker_killed_during_the_job(
    tmp_path: Path, det: Detector, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One of two workers killed mid-job: the job finishes on the other with every verdict,
    or stops with one line and no output; never a partial output under the final name."""
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(6):
        write_cic_csv(generate_flows(400, seed=20 + k), folder / f"f{k}.csv")
    expected = _expected(folder, det)
    cluster = start_cluster(tmp_path_factory.mktemp("kill-logs"))
    out = tmp_path / "v.parquet"
    try:
        killer = threading.Timer(1.5, cluster.kill_worker, args=(0,))
        killer.start()
        started = time.perf_counter()
        try:
            result = score(str(folder), det, str(out), Cluster(address=cluster.address))
        except ClusterError as exc:
            assert "\n" not in str(exc) and not out.exists()
        else:
            assert result.flows == len(expected)
            _same(pd.read_parquet(out), expected)
        killer.join()
        assert time.perf_counter() - started > 1.5  # the kill landed during the job
    finally:
        cluster.stop()
    assert [p.name for p in tmp_path.iterdir() if p.name != "many"] in ([], ["v.parquet"])
