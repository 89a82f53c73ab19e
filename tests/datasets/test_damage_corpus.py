"""The robustness corpus (damaged_files.py): damaged CSV, gzip and parquet files of real rows.

For every case: what the reader keeps and counts (rows, skipped lines, every bad cell per column
with its first row numbers, decoded text) equals what the generator worked out from the damage
it placed; `flowsentinel data clean` accounts for every row (rows in = rows out + every counted
drop) and exits 0, or refuses the file with one line on stderr, a non-zero exit code and no
traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from damaged_files import ERROR_CASES, READ_CASES, Damaged, available
from typer.testing import CliRunner, Result

from flowsentinel.cli.main import app
from flowsentinel.core.errors import InputError
from flowsentinel.datasets.reader import FIRST_ROWS, read_file

pytestmark = pytest.mark.skipif(
    not available(), reason="the real rows of ../shared/datasets are not there"
)
SEEDS = (0, 1)


def _first(rows: dict[str, list[int]]) -> dict[str, list[int]]:
    return {c: r[:FIRST_ROWS] for c, r in rows.items()}


def _counts(rows: dict[str, list[int]]) -> dict[str, int]:
    return {c: len(r) for c, r in rows.items()}


def _label_of(column: str) -> str:
    return "Label" if column == "attack_cat" else column


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", list(READ_CASES))
def test_reader_counts_what_the_generator_placed(case: str, seed: int, tmp_path: Path) -> None:
    want: Damaged = READ_CASES[case](tmp_path, seed)
    frame, report = read_file(want.path)
    assert report.rows == frame.height == want.rows_read
    assert report.malformed_rows_skipped == want.malformed
    assert report.repeated_header_rows == want.repeated_headers
    if want.lines:  # every line after the header is a row read, a skipped line or a header
        assert want.rows_read + want.malformed + want.repeated_headers == want.lines
    assert report.unparseable_values == _counts(want.unparseable)
    assert report.unparseable_rows == _first(want.unparseable)
    assert report.non_utf8_values == _counts(want.non_utf8)
    assert report.non_utf8_rows == _first(want.non_utf8)
    for column, rows in want.unparseable.items():  # an unparseable cell is missing now
        if column in frame.columns:
            values = frame[column].gather([r - 1 for r in rows])
            assert values.null_count() == len(rows), column
    for column, expected in want.values.items():  # text cells decoded as the generator says
        got = frame[_label_of(column)].gather([r - 1 for r in expected])
        assert got.to_list() == list(expected.values()), column
    if want.non_utf8.keys() & {"Label", "attack_cat", "Source IP", "proto"}:
        assert report.encoding == "cp1252"


def _clean(want: Damaged, out: Path, *extra: str) -> Result:
    args = ["data", "clean", str(want.path), "--out", str(out), "--no-cache", *extra]
    return CliRunner().invoke(app, [*args, *want.args])


def _one_line(text: str, prefix: str, pieces: tuple[str, ...]) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith(prefix), lines[0]
    for piece in pieces:
        assert piece in lines[0], (piece, lines[0])


@pytest.mark.parametrize("case", list(READ_CASES))
def test_clean_accounts_for_every_row(case: str, tmp_path: Path) -> None:
    want = READ_CASES[case](tmp_path, SEEDS[0])
    out = tmp_path / "out"
    result = _clean(want, out, "--json", "--keep-duplicates")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    report = json.loads((out / "cleaning_report.json").read_text())
    (file_report,) = report["files"]
    assert file_report["unparseable_values"] == _counts(want.unparseable)
    assert file_report["unparseable_rows"] == _first(want.unparseable)
    assert file_report["non_utf8_values"] == _counts(want.non_utf8)
    assert file_report["non_utf8_rows"] == _first(want.non_utf8)
    steps = {s["step"]: s for s in report["steps"]}
    read = steps["read (malformed CSV rows)"]
    assert read["dropped"] == want.malformed
    assert report["rows_in"] == read["rows_out"] == want.rows_read
    rows = want.rows_read
    for step in report["steps"][1:]:  # the steps chain, each drop counted
        assert step["rows_in"] == rows
        assert step["rows_in"] - step["rows_out"] == step["dropped"] >= 0
        rows = step["rows_out"]
    assert rows == report["rows_out"] == pl.read_parquet(out / "clean.parquet").height
    assert steps["unlabelled"]["dropped"] == 0
    assert steps["label_filter"]["dropped"] == want.label_filter_drops
    assert steps["nonfinite"]["dropped"] == want.nonfinite_rows
    assert steps["nonfinite"]["detail"]["by_column"] == want.nonfinite_by_column
    assert steps["duplicates"]["dropped"] == 0  # --keep-duplicates
    assert report["rows_out"] == want.rows_read - want.label_filter_drops - want.nonfinite_rows
    if want.warning:
        _one_line(result.stderr, "warning: ", want.warning)
        assert [w["message"] for w in report["warnings"]] == [result.stderr.strip()[9:]]
    else:
        assert report["warnings"] == []
        assert result.stderr.strip() == ""  # nothing printed by a library either


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_refused_file_is_one_line(case: str, tmp_path: Path) -> None:
    want = ERROR_CASES[case](tmp_path, SEEDS[0])
    with pytest.raises(InputError) as exc:
        read_file(want.path)
    assert "\n" not in str(exc.value)
    out = tmp_path / "out"
    result = _clean(want, out)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    _one_line(result.stderr, "error: ", want.error)
    assert not (out / "clean.parquet").exists()


def test_every_refusal_is_one_line_for_every_seed(tmp_path: Path) -> None:
    for seed in SEEDS[1:]:
        for name, make in ERROR_CASES.items():
            folder = tmp_path / f"{name}-{seed}"
            folder.mkdir()
            want = make(folder, seed)
            with pytest.raises(InputError) as exc:
                read_file(want.path)
            message = str(exc.value)
            assert "\n" not in message and all(p in message for p in want.error), message


def test_training_stops_on_a_task_that_leaves_one_class(tmp_path: Path) -> None:
    """`flowsentinel train` cleans with two_classes: the warning of `data clean` is its error."""
    want = READ_CASES["zero-one-labels-dos"](tmp_path, SEEDS[0])
    result = CliRunner().invoke(app, ["train", str(want.path), "--task", "dos"])
    assert result.exit_code == 2, result.output
    _one_line(result.stderr, "error: ", want.warning)


@pytest.mark.integration
def test_console_script_refuses_a_truncated_gzip_in_one_line(tmp_path: Path) -> None:
    want = ERROR_CASES["truncated-gzip"](tmp_path, SEEDS[0])
    executable = Path(sys.executable).with_name("flowsentinel")
    command = str(executable) if executable.exists() else shutil.which("flowsentinel")
    assert command, "the flowsentinel console script is not installed"
    result = subprocess.run(
        [command, "data", "clean", str(want.path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    _one_line(result.stderr, "error: ", want.error)
