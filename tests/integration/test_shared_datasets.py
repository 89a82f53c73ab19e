"""Every real file of ../shared/datasets: read, cleaned, counted against the README there and
against an independent pandas computation. Nothing is copied from there into the repo."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from flowdata import SHARED_DATASETS
from flowsentinel.cleaning import CleaningOptions, clean, clean_to_dir
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets.reader import read_file
from flowsentinel.datasets.sources import load_sources
from flowsentinel.preparation import prepare

pytestmark = pytest.mark.integration

EN_DASH = "\u2013"
WEB = f"Web Attack {EN_DASH} "

# Counts from ../shared/datasets/README.md
CIC = {
    "friday-ddos-machinelearningcve-head9998.csv.gz": {
        "rows": 9_998,
        "labels": {"BENIGN": 9_998},
        "dialect": "machinelearningcve",
    },
    "thursday-webattacks-trafficlabelling.csv.gz": {
        "rows": 7_267,
        "labels": {
            "BENIGN": 5_087,
            f"{WEB}Brute Force": 1_507,
            f"{WEB}XSS": 652,
            f"{WEB}Sql Injection": 21,
        },
        "dialect": "trafficlabelling",
    },
    "cicids2017-sample-grouped-labels.csv.gz": {
        "rows": 6_311,
        "labels": {
            "WebAttack": 2_180,
            "Bot": 1_966,
            "DoS": 952,
            "BruteForce": 553,
            "PortScan": 397,
            "BENIGN": 227,
            "Infiltration": 36,
        },
        "dialect": "machinelearningcve",
    },
    "friday-ddos-10features.parquet": {
        "rows": 223_082,
        "labels": {"DDoS": 128_014, "BENIGN": 95_068},
        "dialect": "parquet",
    },
    "friday-ddos-11features.parquet": {
        "rows": 210_622,
        "labels": {"DDoS": 120_444, "BENIGN": 90_178},
        "dialect": "parquet",
    },
}
UNSW_FILE = "UNSW_NB15_training-set.csv.gz"
FLOW_FILES = [f"cicids2017/{name}" for name in CIC] + [f"unsw-nb15/{UNSW_FILE}"]
# Families written out by hand (independent of labels.py).
CIC_FAMILY = {
    "BENIGN": "BENIGN",
    "DDoS": "DDoS",
    f"{WEB}Brute Force": "WebAttack",
    f"{WEB}XSS": "WebAttack",
    f"{WEB}Sql Injection": "WebAttack",
} | {k: k for k in CIC["cicids2017-sample-grouped-labels.csv.gz"]["labels"]}


def shared(relative: str) -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATASETS} (../shared/datasets)")
    path = SHARED_DATASETS / relative
    assert path.is_file(), f"{path} is listed in ../shared/datasets/README.md but missing"
    return path


def test_every_flow_file_is_covered() -> None:
    """The parametrised lists below cover every file of the two folders."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATASETS} (../shared/datasets)")
    on_disk = {
        f"{p.parent.name}/{p.name}"
        for folder in ("cicids2017", "unsw-nb15")
        for p in (SHARED_DATASETS / folder).iterdir()
    }
    assert on_disk == {*FLOW_FILES, "unsw-nb15/NUSW-NB15_features.csv"}


# ------------------------------------------------------------------------------------------
# an independent pandas computation of the cleaning


def pandas_frame(path: Path) -> tuple[pd.DataFrame, list[str], list[str], str]:
    """The file in pandas with canonical feature names: frame, numeric, categorical, label."""
    is_parquet = path.suffix == ".parquet"
    df = pd.read_parquet(path) if is_parquet else pd.read_csv(path, low_memory=False)
    df.columns = [c.strip() for c in df.columns]
    if "attack_cat" in df.columns:  # UNSW-NB15 partition
        df["attack_cat"] = df["attack_cat"].fillna("Normal").astype(str).str.strip()
        cats = list(sc.UNSW_CATEGORICAL)
        numeric = [c for c in sc.UNSW_FEATURES if c not in cats]
        return df, numeric, cats, "attack_cat"
    if "Fwd Header Length.1" in df.columns:
        if "Fwd Header Length" in df.columns:
            df = df.drop(columns="Fwd Header Length.1")
        else:
            df = df.rename(columns={"Fwd Header Length.1": "Fwd Header Length"})
    df["Label"] = df["Label"].astype(str).str.strip()
    return df, [c for c in sc.CIC_FEATURES if c in df.columns], [], "Label"


def pandas_clean(path: Path, task: str) -> dict[str, object]:
    df, numeric, cats, label = pandas_frame(path)
    features = [c for c in (sc.UNSW_FEATURES if cats else sc.CIC_FEATURES) if c in df.columns]
    if cats:
        family = df[label].map(lambda v: "BENIGN" if v == "Normal" else v)
    else:
        family = df[label].map(CIC_FAMILY)
    assert family.notna().all(), set(df[label][family.isna()])
    df = df.assign(_family=family)
    values = df[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(values).all(axis=1) & df[cats].notna().all(axis=1).to_numpy()
    after = df[finite]
    nunique = after[features].nunique(dropna=False)
    kept = [c for c in features if nunique[c] > 1]
    dedup = after.drop_duplicates(subset=[*kept, label])
    if task == "multiclass":
        target = dedup["_family"].value_counts().to_dict()
    else:
        target = {
            str(k): v for k, v in (dedup["_family"] != "BENIGN").astype(int).value_counts().items()
        }
    return {
        "rows_in": len(df),
        "nonfinite": len(df) - len(after),
        "duplicates": len(after) - len(dedup),
        "features": kept,
        "rows_out": len(dedup),
        "families": dedup["_family"].value_counts().to_dict(),
        "labels": dedup[label].value_counts().to_dict(),
        "target": target,
    }


# ------------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("name", list(CIC))
def test_cic_file_rows_and_labels(name: str) -> None:
    want = CIC[name]
    df, report = read_file(shared(f"cicids2017/{name}"), "cicids2017")
    assert report.dataset == "cicids2017"
    assert report.dialect == want["dialect"]
    assert report.rows == df.height == want["rows"]
    assert dict(df["Label"].value_counts().iter_rows()) == want["labels"]
    families: dict[str, int] = {}
    for lab_, n in want["labels"].items():
        families[CIC_FAMILY[lab_]] = families.get(CIC_FAMILY[lab_], 0) + n
    assert dict(df["Family"].value_counts().iter_rows()) == families
    assert report.malformed_rows_skipped == 0
    assert report.unparseable_values == {}
    assert report.unknown_columns == []
    assert sc.CIC_DUPLICATE_COLUMN not in df.columns


def test_mlcve_duplicate_column_is_an_exact_copy() -> None:
    _, report = read_file(shared("cicids2017/friday-ddos-machinelearningcve-head9998.csv.gz"))
    assert report.duplicate_column_mismatches == 0
    assert report.missing_features == []


def test_trafficlabelling_identifiers() -> None:
    df, report = read_file(shared("cicids2017/thursday-webattacks-trafficlabelling.csv.gz"))
    assert set(sc.CIC_IDENTIFIERS) <= set(df.columns)
    assert report.missing_features == []


def test_unsw_partition_rows_and_labels() -> None:
    path = shared(f"unsw-nb15/{UNSW_FILE}")
    df, report = read_file(path, "unsw-nb15")
    assert report.dialect == "unsw-partition"
    assert report.rows == df.height == 82_332
    assert report.missing_features == []
    assert report.label_mismatches == 0
    assert (df["Family"] != "BENIGN").sum() == 45_332  # label 1
    assert (df["Family"] == "BENIGN").sum() == 37_000  # label 0
    raw = pd.read_csv(path, usecols=["attack_cat", "label"])
    assert (
        dict(df["Label"].value_counts().iter_rows())
        == raw["attack_cat"].str.strip().value_counts().to_dict()
    )
    assert set(df["Family"].unique().to_list()) <= {
        "BENIGN", "Generic", "Exploits", "Fuzzers", "DoS", "Reconnaissance", "Analysis",
        "Backdoor", "Shellcode", "Worms",
    }  # fmt: skip


def test_unsw_feature_descriptions_name_the_raw_columns() -> None:
    path = shared("unsw-nb15/NUSW-NB15_features.csv")
    names = pd.read_csv(path, encoding="latin-1")["Name"].tolist()
    assert [sc.name_key(n) for n in names] == [sc.name_key(n) for n in sc.UNSW_RAW_COLUMNS]


def test_unsw_feature_descriptions_are_not_flows() -> None:
    path = shared("unsw-nb15/NUSW-NB15_features.csv")
    with pytest.raises(InputError) as exc:
        read_file(path)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_slowloris_cicflowmeter_v4_flows() -> None:
    path = shared("pcaps/attack/slowloris-lab.pcap_Flow.csv")
    df, report = read_file(path, require_label=False)
    assert report.dialect == "cicflowmeter-v4"
    assert report.rows == 300
    assert report.missing_features == []
    assert set(sc.CIC_FEATURES) <= set(df.columns)
    assert df["Label"].null_count() == 300  # "No Label"
    raw = pd.read_csv(path)
    assert raw["Label"].eq("No Label").all()
    for short, canonical in (
        ("Flow Duration", "Flow Duration"),
        ("Tot Fwd Pkts", "Total Fwd Packets"),
        ("Flow Byts/s", "Flow Bytes/s"),
        ("Init Fwd Win Byts", "Init_Win_bytes_forward"),
        ("Dst Port", "Destination Port"),
    ):
        got = df[canonical].cast(pl.Float64).to_numpy()
        assert np.allclose(got, raw[short].to_numpy(dtype=float), equal_nan=True), canonical
    assert df["Source IP"].to_list() == raw["Src IP"].tolist()


def test_thursday_with_cp1252_dash(tmp_path: Path) -> None:
    source = shared("cicids2017/thursday-webattacks-trafficlabelling.csv.gz")
    data = gzip.decompress(source.read_bytes())
    assert data.count(EN_DASH.encode()) == 2_180
    cp1252 = tmp_path / "thursday-cp1252.csv"
    cp1252.write_bytes(data.replace(EN_DASH.encode(), b"\x96"))
    original, _ = read_file(source)
    rewritten, _ = read_file(cp1252)
    assert rewritten["Label"].equals(original["Label"])
    assert rewritten["Family"].equals(original["Family"])
    assert dict(rewritten["Label"].value_counts().iter_rows()) == CIC[source.name]["labels"]


# ------------------------------------------------------------------------------------------
# cleaning


@pytest.mark.parametrize("task", ["attack", "multiclass"])
@pytest.mark.parametrize("relative", FLOW_FILES)
def test_clean_matches_pandas(relative: str, task: str) -> None:
    path = shared(relative)
    want = pandas_clean(path, task)
    frame, report = clean(load_sources([path]), CleaningOptions(task=task))
    steps = {s.step: s for s in report.steps}
    assert report.rows_in == want["rows_in"]
    assert steps["unlabelled"].dropped == 0
    assert steps["label_filter"].dropped == 0  # attack and multiclass keep every family
    assert steps["nonfinite"].dropped == want["nonfinite"]
    assert steps["duplicates"].dropped == want["duplicates"]
    assert report.features == want["features"]
    assert report.rows_out == frame.height == want["rows_out"]
    assert report.family_counts == want["families"]
    assert report.label_counts == want["labels"]
    assert report.target_counts == want["target"]


@pytest.mark.parametrize(
    ("name", "ddos_as_dos", "positive"),
    [
        ("cicids2017-sample-grouped-labels.csv.gz", False, "DoS"),
        ("friday-ddos-11features.parquet", True, "DDoS"),
    ],
)
def test_dos_task(name: str, ddos_as_dos: bool, positive: str) -> None:
    path = shared(f"cicids2017/{name}")
    want = pandas_clean(path, "multiclass")  # no family filter: count the two kept ones
    frame, report = clean(
        load_sources([path]), CleaningOptions(task="dos", ddos_as_dos=ddos_as_dos)
    )
    dropped = CIC[name]["rows"] - CIC[name]["labels"][positive] - CIC[name]["labels"]["BENIGN"]
    assert {s.step: s for s in report.steps}["label_filter"].dropped == dropped
    assert set(frame["Family"].unique().to_list()) == {"BENIGN", positive}
    assert report.target_counts["1"] == (frame["Family"] == positive).sum()
    assert report.target_counts["0"] == (frame["Family"] == "BENIGN").sum()
    # with the families filtered first, duplicates are the same rows as in the full run
    assert report.target_counts["1"] == want["families"][positive]


def test_friday_ddos_is_not_dos_by_default() -> None:
    path = shared("cicids2017/friday-ddos-11features.parquet")
    frame, report = clean(load_sources([path]), CleaningOptions(task="dos"))
    assert report.target_counts == {"0": 90_178}
    assert frame["Family"].unique().to_list() == ["BENIGN"]
    assert {s.step: s for s in report.steps}["label_filter"].detail["dropped_by_family"] == {
        "DDoS": 120_444
    }


def test_unsw_folder_loads() -> None:
    """The Kaggle UNSW-NB15 folder holds NUSW-NB15_features.csv (column descriptions) beside
    the flow files, and the download command tells the user to clean the whole folder."""
    folder = shared(f"unsw-nb15/{UNSW_FILE}").parent
    data = load_sources([folder], "unsw-nb15")
    assert data.frame.height == 82_332


def test_whole_cic_folder_is_refused_as_mixed() -> None:
    folder = shared("cicids2017/friday-ddos-10features.parquet").parent
    with pytest.raises(InputError, match="--mixed intersect"):
        load_sources([folder])


@pytest.mark.slow
def test_prepare_real_web_attacks(tmp_path: Path) -> None:
    path = shared("cicids2017/thursday-webattacks-trafficlabelling.csv.gz")
    report, _ = clean_to_dir([str(path)], tmp_path / "c", options=CleaningOptions(task="attack"))
    summary = prepare(tmp_path / "c", tmp_path / "p", test_size=0.2, seed=42)
    assert len(list((tmp_path / "p").glob("*.png"))) == 3
    clean_counts = {int(k): v for k, v in report.target_counts.items()}
    test = pl.read_parquet(tmp_path / "p" / "test.parquet")
    train = pl.read_parquet(tmp_path / "p" / "train.parquet")
    test_counts = dict(test.group_by("Target").len().iter_rows())
    for cls, n in clean_counts.items():
        assert abs(test_counts[cls] - 0.2 * n) <= 1
    train_counts = dict(train.group_by("Target").len().iter_rows())
    assert train_counts[0] == train_counts[1] == clean_counts[1] - test_counts[1]
    assert summary["features"] == [c for c in test.columns if c not in sc.META_COLUMNS]

    # no test row in train (all features kept, so clean rows are distinct)
    prepare(
        tmp_path / "c",
        tmp_path / "q",
        correlation_threshold=None,
        heatmaps=False,
        undersample=False,
    )
    q_train = pl.read_parquet(tmp_path / "q" / "train.parquet")
    q_test = pl.read_parquet(tmp_path / "q" / "test.parquet")
    columns = [c for c in q_test.columns if c != "source_file"]
    assert q_test.join(q_train, on=columns, how="semi", nulls_equal=True).height == 0
    assert q_train.height + q_test.height == report.rows_out


@pytest.mark.slow
def test_prepare_real_unsw(tmp_path: Path) -> None:
    path = shared(f"unsw-nb15/{UNSW_FILE}")
    report, _ = clean_to_dir([str(path)], tmp_path / "c", options=CleaningOptions(task="attack"))
    summary = prepare(tmp_path / "c", heatmaps=False)
    test = pl.read_parquet(tmp_path / "c" / "test.parquet")
    train = pl.read_parquet(tmp_path / "c" / "train.parquet")
    for cls, n in report.target_counts.items():
        assert abs(summary["test_classes"][cls] - 0.2 * n) <= 1
    assert summary["train_classes"]["0"] == summary["train_classes"]["1"]
    for name in sc.UNSW_CATEGORICAL:  # categories pass through as text
        assert train[name].dtype == pl.String
        assert test[name].dtype == pl.String
    assert train.columns == test.columns


@pytest.mark.parametrize(
    ("relative", "task", "dataset"),
    [
        ("cicids2017/thursday-webattacks-trafficlabelling.csv.gz", "attack", "cicids2017"),
        (f"unsw-nb15/{UNSW_FILE}", "multiclass", "unsw-nb15"),
    ],
)
def test_cli_clean_real_file(relative: str, task: str, dataset: str, tmp_path: Path) -> None:
    path = shared(relative)
    script = Path(sys.executable).with_name("flowsentinel")
    result = subprocess.run(
        [str(script), "data", "clean", str(path), "--out", str(tmp_path / "out"),
         "--dataset", dataset, "--task", task, "--json"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    want = pandas_clean(path, task)
    assert report["rows_in"] == want["rows_in"]
    assert report["rows_out"] == want["rows_out"]
    assert report["target_counts"] == want["target"]
    saved = pl.read_parquet(tmp_path / "out" / "clean.parquet")
    assert saved.height == want["rows_out"]
