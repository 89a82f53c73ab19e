"""The `flowsentinel data ...` commands: bad input through the real console script, the
result cache, and every option reaching the code (in-process where a subprocess adds nothing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flowdata import (
    cic_row,
    write_cic_file,
    write_csv,
    write_ten_feature_parquet,
    write_unsw_partition,
)
from flowsentinel.cli.main import app
from flowsentinel.core import schema as sc
from flowsentinel.datasets.synthetic import write_demo_dataset

CONSOLE_SCRIPT = Path(sys.executable).with_name("flowsentinel")


def flowsentinel(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (FLOWSENTINEL_HOME comes from the autouse fixture)."""
    executable = CONSOLE_SCRIPT if CONSOLE_SCRIPT.exists() else shutil.which("flowsentinel")
    assert executable, "the flowsentinel console script is not installed"
    return subprocess.run(
        [str(executable), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **env},
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------
# bad input, through a real subprocess


def _empty(tmp: Path) -> tuple[list[str], list[str]]:
    path = tmp / "empty.csv"
    path.write_text("")
    return [str(path)], ["empty.csv", "empty"]


def _no_label(tmp: Path) -> tuple[list[str], list[str]]:
    path = write_csv(
        tmp / "nolabel.csv", sc.CIC_FEATURES, [cic_row(i, None)[:-1] for i in range(3)]
    )
    return [str(path)], ["nolabel.csv", "label"]


def _header_only(tmp: Path) -> tuple[list[str], list[str]]:
    path = write_cic_file(tmp / "header-only.csv", [])
    return [str(path)], ["header-only.csv", "no rows"]


def _unsw_as_cic(tmp: Path) -> tuple[list[str], list[str]]:
    path = write_unsw_partition(tmp / "unsw-part.csv", [("Normal", 0), ("Exploits", 1)])
    return [str(path), "--dataset", "cicids2017"], [
        "unsw-part.csv",
        "looks like a unsw-nb15 file, not cicids2017",
    ]


def _mixed(tmp: Path) -> tuple[list[str], list[str]]:
    folder = tmp / "mixed"
    write_demo_dataset(folder, rows=300, seed=1)
    write_ten_feature_parquet(folder / "ten-features.parquet")
    return [str(folder)], ["ten-features.parquet", "--mixed intersect"]


def _utf16(tmp: Path) -> tuple[list[str], list[str]]:
    path = write_cic_file(tmp / "utf16.csv", ["BENIGN", "DoS Hulk"], encoding="utf-16")
    return [str(path)], ["utf16.csv", "UTF-16"]


def _corrupt_parquet(tmp: Path) -> tuple[list[str], list[str]]:
    path = tmp / "corrupt.parquet"
    path.write_bytes(b"PAR1" + os.urandom(300))
    return [str(path)], ["corrupt.parquet", "parquet"]


def _missing(tmp: Path) -> tuple[list[str], list[str]]:
    return [str(tmp / "not-there.csv")], ["not-there.csv"]


BAD_INPUTS: dict[str, Callable[[Path], tuple[list[str], list[str]]]] = {
    "empty-file": _empty,
    "no-label-column": _no_label,
    "header-only": _header_only,
    "unsw-file-as-cicids2017": _unsw_as_cic,
    "mixed-dialects": _mixed,
    "utf16": _utf16,
    "corrupt-parquet": _corrupt_parquet,
    "missing-file": _missing,
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_error(case: str, tmp_path: Path) -> None:
    args, needles = BAD_INPUTS[case](tmp_path)
    result = flowsentinel("data", "clean", *args, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "out" / "clean.parquet").exists()


@pytest.mark.integration
@pytest.mark.parametrize("case", ["corrupt-parquet", "utf16", "empty-file"])
def test_info_on_bad_input_is_one_line_naming_the_file(case: str, tmp_path: Path) -> None:
    args, needles = BAD_INPUTS[case](tmp_path)
    result = flowsentinel("data", "info", *args)
    assert_one_line_error(result, needles[0])


@pytest.mark.slow
@pytest.mark.integration
def test_second_identical_clean_comes_from_the_cache(tmp_path: Path) -> None:
    csv_path = write_demo_dataset(tmp_path / "in", rows=2_000, seed=4)
    out = tmp_path / "out"
    args = ["data", "clean", str(csv_path), "--out", str(out), "--task", "dos"]
    first = flowsentinel(*args)
    assert first.returncode == 0, first.stderr
    assert "(from cache)" not in " ".join(first.stderr.split())
    clean_bytes = (out / "clean.parquet").read_bytes()
    report_text = (out / "cleaning_report.json").read_text()

    second = flowsentinel(*args)
    assert second.returncode == 0, second.stderr
    assert "(from cache)" in " ".join(second.stderr.split())
    assert (out / "clean.parquet").read_bytes() == clean_bytes
    assert (out / "cleaning_report.json").read_text() == report_text

    # --no-cache computes again, and gets the same rows
    third = flowsentinel(
        "data", "clean", str(csv_path), "--out", str(tmp_path / "out3"), "--no-cache", "--json"
    )
    assert third.returncode == 0, third.stderr
    report = json.loads(third.stdout)
    assert report["rows_out"] == json.loads(report_text)["rows_out"]
    assert pl.read_parquet(tmp_path / "out3" / "clean.parquet").equals(
        pl.read_parquet(out / "clean.parquet")
    )


@pytest.mark.integration
def test_download_without_network_is_one_line(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9"
    proxies = {k: dead for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")}
    started = time.perf_counter()
    result = flowsentinel("data", "download", "cicids2017", NO_PROXY="", no_proxy="", **proxies)
    assert time.perf_counter() - started < 30
    assert_one_line_error(result, "cicids2017", "flowsentinel data clean")
    assert result.returncode == 3


@pytest.mark.integration
def test_download_offline_is_one_line(tmp_path: Path) -> None:
    result = flowsentinel("data", "download", "unsw-nb15", FLOWSENTINEL_OFFLINE="1")
    assert_one_line_error(result, "unsw-nb15", "FLOWSENTINEL_OFFLINE")


# ------------------------------------------------------------------------------------------
# in-process (CliRunner): options reach the code


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_clean_options_reach_the_report(runner: CliRunner, tmp_path: Path) -> None:
    path = write_cic_file(
        tmp_path / "f.csv", ["BENIGN", "DoS Hulk", "DDoS", "PortScan", "BENIGN", "DoS slowloris"]
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "data", "clean", str(path), "--out", str(out), "--dataset", "cicids2017",
            "--task", "attack", "--near-constant", "seed", "--similarity-threshold", "80",
            "--keep-duplicates", "--keep-nonfinite", "--no-label-filter", "--ddos-as-dos",
            "--mixed", "intersect", "--no-cache", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "cleaning_report.json").read_text())
    assert report["options"] == {
        "task": "attack",
        "drop_identifiers": True,
        "drop_unlabelled": True,
        "filter_labels": False,
        "drop_nonfinite": False,
        "near_constant": "seed",
        "similarity_threshold": 80.0,
        "drop_duplicates": False,
        "ddos_as_dos": True,
    }
    assert json.loads(result.stdout)["rows_out"] == report["rows_out"] == 6
    assert not (tmp_path / "flowsentinel-home" / "cache").exists()  # --no-cache


def test_clean_fills_the_cache_in_flowsentinel_home(
    runner: CliRunner, tmp_path: Path, flowsentinel_home: Path
) -> None:
    path = write_cic_file(tmp_path / "f.csv", ["BENIGN", "DoS Hulk", "BENIGN"])
    result = runner.invoke(app, ["data", "clean", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert any((flowsentinel_home / "cache").rglob("*.arrow"))


def test_keep_identifiers_flag(runner: CliRunner, tmp_path: Path) -> None:
    header = ["Destination Port", *sc.CIC_FEATURES, "Label"]
    rows = [[80 + i, *cic_row(i, label)] for i, label in enumerate(["BENIGN", "DoS Hulk"])]
    path = write_csv(tmp_path / "f.csv", header, rows)
    result = runner.invoke(
        app, ["data", "clean", str(path), "--out", str(tmp_path / "o"), "--keep-identifiers"]
    )
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(tmp_path / "o" / "clean.parquet")
    assert "Destination Port" in frame.columns


def test_info_json(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_demo_dataset(folder, rows=200, seed=1)
    write_unsw_partition(folder / "part.csv", [("Normal", 0)])
    write_csv(folder / "other.csv", ["name", "age"], [["x", 1]])
    result = runner.invoke(app, ["data", "info", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["flowsentinel-demo-flows.csv"]["dataset"] == "cicids2017"
    assert rows["flowsentinel-demo-flows.csv"]["dialect"] == "machinelearningcve"
    assert rows["part.csv"]["dialect"] == "unsw-partition"
    assert rows["other.csv"]["dataset"] is None


def test_prepare_command(runner: CliRunner, tmp_path: Path) -> None:
    csv_path = write_demo_dataset(tmp_path / "in", rows=1_500, seed=2)
    clean = runner.invoke(app, ["data", "clean", str(csv_path), "--out", str(tmp_path / "c")])
    assert clean.exit_code == 0, clean.output
    result = runner.invoke(
        app,
        [
            "data", "prepare", str(tmp_path / "c"), "--out", str(tmp_path / "p"),
            "--test-size", "0.3", "--seed", "5", "--no-heatmaps", "--correlation-threshold", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "p" / "preparation.json").read_text())
    assert summary["split"] == {"test_size": 0.3, "seed": 5, "stratified": True}
    assert summary["correlation_threshold"] is None
    assert summary["plots"] == {}
    assert not list((tmp_path / "p").glob("*.png"))
    n = pl.read_parquet(tmp_path / "c" / "clean.parquet").height
    assert pl.read_parquet(tmp_path / "p" / "test.parquet").height == pytest.approx(0.3 * n, abs=1)


def test_prepare_without_clean_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "prepare", str(tmp_path)])
    assert result.exit_code != 0
    assert "data clean" in result.output
    assert "Traceback" not in result.output


def test_download_uses_the_registry(
    runner: CliRunner, tmp_path: Path, flowsentinel_home: Path
) -> None:
    folder = write_cic_file(tmp_path / "kaggle" / "flows.csv", ["BENIGN"]).parent
    flowsentinel_home.mkdir(parents=True, exist_ok=True)
    (flowsentinel_home / "downloads.json").write_text(
        json.dumps({"chethuhn/network-intrusion-dataset": str(folder)})
    )
    result = runner.invoke(
        app, ["data", "download", "cicids2017"], env={"FLOWSENTINEL_OFFLINE": "1"}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(folder)


def test_unknown_task_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "f.csv", ["BENIGN"])
    result = runner.invoke(app, ["data", "clean", str(path), "--out", "o", "--task", "ddos"])
    assert result.exit_code == 2
    assert not Path("o").exists()
