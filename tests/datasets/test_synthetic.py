"""The built-in demonstration flows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from flowsentinel.core import schema as sc
from flowsentinel.datasets.reader import read_file
from flowsentinel.datasets.synthetic import generate_flows, write_demo_dataset

CLASSES = {"BENIGN", "DoS Hulk", "DoS slowloris", "DoS Slowhttptest", "DoS GoldenEye"}


def test_generate_flows_is_deterministic() -> None:
    a = generate_flows(1_000, seed=7)
    b = generate_flows(1_000, seed=7)
    c = generate_flows(1_000, seed=8)
    assert a.equals(b)
    assert not a.equals(c)


def test_generate_flows_shape_and_labels() -> None:
    frame = generate_flows(2_000, seed=1)
    assert frame.columns == ["Destination Port", *sc.CIC_FEATURES, "Label"]
    assert frame.height == 2_000 + 2_000 // 50  # plus ~2% exact duplicates
    assert set(frame["Label"].unique().to_list()) == CLASSES
    assert frame.is_duplicated().sum() >= 2 * (2_000 // 50) - 5  # the copies exist
    benign_share = (frame["Label"] == "BENIGN").mean()
    assert 0.5 < benign_share < 0.75


def test_generated_features_are_consistent() -> None:
    frame = generate_flows(1_000, seed=3)
    assert (frame["Total Fwd Packets"] >= 1).all()
    assert (frame["Subflow Fwd Packets"] == frame["Total Fwd Packets"]).all()
    assert (frame["Fwd Packet Length Max"] >= frame["Fwd Packet Length Min"]).all()
    var = frame["Packet Length Variance"].to_numpy()
    std = frame["Packet Length Std"].to_numpy()
    assert np.allclose(var, std**2)
    # a few zero-length flows give infinite rates, as in the real files
    zero = frame["Flow Duration"] == 0
    assert zero.sum() > 0
    assert frame.filter(zero)["Flow Bytes/s"].is_infinite().all()
    assert frame.filter(~zero)["Flow Bytes/s"].is_finite().all()


def test_demo_csv_reads_back_exactly(tmp_path: Path) -> None:
    rows, seed = 1_500, 11
    path = write_demo_dataset(tmp_path / "demo", rows=rows, seed=seed)
    assert path.parent == tmp_path / "demo"
    header = path.read_text().split("\n", 1)[0].split(",")
    assert header[0] == " Destination Port"  # MachineLearningCVE: leading spaces
    assert header.count(" Fwd Header Length") == 2
    assert len(header) == 79

    generated = generate_flows(rows, seed)
    df, report = read_file(path)
    assert report.dialect == "machinelearningcve"
    assert report.rows == generated.height
    assert report.duplicate_column_mismatches == 0
    assert report.missing_features == []
    assert df["Label"].to_list() == generated["Label"].to_list()
    assert dict(df["Label"].value_counts().iter_rows()) == dict(
        generated["Label"].value_counts().iter_rows()
    )
    assert set(df["Family"].unique().to_list()) == {"BENIGN", "DoS"}
    for column in ["Destination Port", *sc.CIC_FEATURES]:
        want = generated[column].cast(pl.Float64).to_numpy()
        got = df[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
        assert np.array_equal(want, got, equal_nan=True), column


def test_demo_dataset_is_deterministic(tmp_path: Path) -> None:
    a = write_demo_dataset(tmp_path / "a", rows=500, seed=5)
    b = write_demo_dataset(tmp_path / "b", rows=500, seed=5)
    assert a.read_bytes() == b.read_bytes()
