"""Cleaning: every step's count checked against an independent pandas computation."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from flowdata import cic_row, write_cic_file, write_csv, write_unsw_partition
from flowsentinel.cleaning import CleaningOptions, CleaningReport, clean, clean_to_dir
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.datasets.sources import load_sources

EN_DASH = "\u2013"
# in canonical order (the order the cleaned frame keeps)
FEATURES = ["Flow Duration", "Total Fwd Packets", "Flow Bytes/s", "Bwd URG Flags"]
FEATURES += ["FIN Flag Count", "Idle Max"]
assert sorted(FEATURES, key=sc.CIC_FEATURES.index) == FEATURES
HEADER = ["Destination Port", *FEATURES, "Label"]
# The families of the labels used below, written out by hand (independent of labels.py).
FAMILY = {
    "BENIGN": "BENIGN",
    "DoS Hulk": "DoS",
    "DoS slowloris": "DoS",
    "DDoS": "DDoS",
    "PortScan": "PortScan",
    f"Web Attack {EN_DASH} XSS": "WebAttack",
    "FTP-Patator": "BruteForce",
}
LABELS = (
    ["BENIGN"] * 40
    + ["DoS Hulk"] * 20
    + ["DoS slowloris"] * 10
    + ["DDoS"] * 10
    + ["PortScan"] * 8
    + [f"Web Attack {EN_DASH} XSS"] * 6
    + ["FTP-Patator"] * 3
    + ["", "", "No Label"]
)


def flow_records() -> list[dict[str, object]]:
    """~110 hand-made flows: inf/NaN/blank values, exact and near duplicates, a constant
    column, a low-cardinality informative column, a column non-constant only for PortScan."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(LABELS))
    records: list[dict[str, object]] = []
    for i, k in enumerate(order):
        label = LABELS[k]
        records.append(
            {
                "Destination Port": 80 + i % 5,
                "Flow Duration": float(1000 + 7 * i),
                "Total Fwd Packets": float(i % 12),
                "Flow Bytes/s": 1.5 * i,
                "FIN Flag Count": float(i % 2),
                "Bwd URG Flags": 0.0,
                "Idle Max": float(5 + i) if label == "PortScan" else 0.0,
                "Label": label,
            }
        )
    for i, value in ((3, math.inf), (25, math.inf), (50, math.nan), (33, math.nan)):
        records[i]["Flow Bytes/s"] = value
    records[60]["Flow Bytes/s"] = -math.inf
    records[81]["Flow Duration"] = None  # blank cell
    # exact duplicates (also duplicates of a row with inf, which goes first)
    for i in (0, 1, 21, 22, 22, 3):
        records.append(dict(records[i]))
    # same features, other identifier: a duplicate once identifiers are gone
    records.append(dict(records[2], **{"Destination Port": 9999}))
    # same features, another label: not a duplicate, but a conflicting row
    benign = next(i for i in range(5, 100) if records[i]["Label"] == "BENIGN")
    records.append(dict(records[benign], Label="DoS Hulk"))
    return records


def write_flows(path: Path) -> Path:
    records = flow_records()
    return write_csv(path, HEADER, [[r[c] for c in HEADER] for r in records])


def expected(
    records: list[dict[str, object]],
    task: str,
    rule: str = "constant",
    ddos_as_dos: bool = False,
) -> dict[str, object]:
    """The same cleaning, computed independently with pandas."""
    df = pd.DataFrame(records).astype({c: "float64" for c in FEATURES})
    out: dict[str, object] = {"rows_in": len(df)}
    text = df["Label"].str.strip()
    labelled = df[~text.isin(["", "No Label"])].copy()
    out["unlabelled"] = len(df) - len(labelled)
    labelled["Family"] = labelled["Label"].map(FAMILY)
    if task == "dos":
        keep = {"BENIGN", "DoS"} | ({"DDoS"} if ddos_as_dos else set())
        kept = labelled[labelled["Family"].isin(keep)]
    else:
        kept = labelled
    out["label_filter"] = len(labelled) - len(kept)
    finite = np.isfinite(kept[FEATURES].to_numpy(dtype=float)).all(axis=1)
    after = kept[finite]
    out["nonfinite"] = len(kept) - len(after)
    nunique = after[FEATURES].nunique(dropna=False)
    if rule == "constant":
        dropped = [c for c in FEATURES if nunique[c] <= 1]
    elif rule == "seed":
        dropped = [c for c in FEATURES if (1 - nunique[c] / len(after)) * 100 > 95]
    else:
        dropped = []
    features = [c for c in FEATURES if c not in dropped]
    dedup = after.drop_duplicates(subset=[*features, "Label"], keep="first")
    out["duplicates"] = len(after) - len(dedup)
    out["features"] = features
    out["dropped_columns"] = dropped
    out["frame"] = dedup
    out["conflicting"] = int(dedup.duplicated(subset=features, keep=False).sum())
    if task == "multiclass":
        target = dedup["Family"]
    elif task == "dos":
        positive = {"DoS"} | ({"DDoS"} if ddos_as_dos else set())
        target = dedup["Family"].isin(positive).astype(int)
    else:
        target = (dedup["Family"] != "BENIGN").astype(int)
    out["target"] = target
    return out


def step(report: CleaningReport, name: str):  # type: ignore[no-untyped-def]
    matches = [s for s in report.steps if s.step == name]
    assert len(matches) == 1, [s.step for s in report.steps]
    return matches[0]


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    return write_flows(tmp_path / "flows.csv")


def test_the_fixture_exercises_every_step() -> None:
    exp = expected(flow_records(), "dos")
    assert exp["unlabelled"] == 3
    assert exp["label_filter"] > 0
    assert exp["nonfinite"] > 0
    assert exp["duplicates"] > 0
    assert exp["conflicting"] > 0
    seed = expected(flow_records(), "dos", "seed")
    assert "FIN Flag Count" in seed["dropped_columns"]
    assert "FIN Flag Count" in exp["features"]


@pytest.mark.parametrize(
    ("task", "rule", "ddos_as_dos"),
    [
        ("dos", "constant", False),
        ("dos", "seed", False),
        ("dos", "constant", True),
        ("attack", "constant", False),
        ("attack", "seed", False),
        ("multiclass", "none", False),
        ("multiclass", "constant", False),
    ],
)
def test_step_counts_match_pandas(flows: Path, task: str, rule: str, ddos_as_dos: bool) -> None:
    exp = expected(flow_records(), task, rule, ddos_as_dos)
    data = load_sources([flows])
    frame, report = clean(
        data, CleaningOptions(task=task, near_constant=rule, ddos_as_dos=ddos_as_dos)
    )
    assert report.rows_in == exp["rows_in"]
    for name in ("unlabelled", "label_filter", "nonfinite", "duplicates"):
        s = step(report, name)
        assert s.enabled
        assert s.dropped == exp[name], name
        assert s.rows_in - s.rows_out == s.dropped
    assert step(report, "read (malformed CSV rows)").dropped == 0
    # the steps chain: each one starts where the previous one stopped
    for a, b in itertools.pairwise(report.steps):
        assert b.rows_in == a.rows_out
    assert report.rows_out == frame.height == len(exp["frame"])
    assert report.features == exp["features"]
    assert frame.columns == [*exp["features"], "Label", "Family", "Target", "source_file"]
    dropped = {c.column for c in report.columns_dropped}
    assert set(exp["dropped_columns"]) <= dropped
    assert not set(exp["features"]) & dropped
    assert report.conflicting_feature_rows == exp["conflicting"]

    want = exp["frame"]
    # the same rows, in file order, with the first of each duplicate kept
    for column in exp["features"]:
        assert frame[column].cast(pl.Float64).to_list() == want[column].tolist(), column
    assert frame["Label"].to_list() == want["Label"].tolist()
    assert frame["Family"].to_list() == want["Family"].tolist()
    assert frame["Target"].to_list() == exp["target"].tolist()
    assert report.label_counts == want["Label"].value_counts().to_dict()
    assert report.family_counts == want["Family"].value_counts().to_dict()
    assert report.target_counts == {str(k): v for k, v in exp["target"].value_counts().items()}


def test_nonfinite_detail(flows: Path) -> None:
    _, report = clean(load_sources([flows]), CleaningOptions(task="attack"))
    detail = step(report, "nonfinite").detail
    records = pd.DataFrame(flow_records())
    labelled = records[~records["Label"].str.strip().isin(["", "No Label"])]
    values = labelled[FEATURES].astype("float64")
    assert detail["rows_with_inf"] == int(np.isinf(values.to_numpy()).any(axis=1).sum())
    per_column = (~np.isfinite(values)).sum()
    assert detail["by_column"] == {c: int(v) for c, v in per_column.items() if v}


def test_label_filter_detail(flows: Path) -> None:
    _, report = clean(load_sources([flows]), CleaningOptions(task="dos"))
    detail = step(report, "label_filter").detail["dropped_by_family"]
    records = pd.DataFrame(flow_records())
    families = records["Label"].map(FAMILY).dropna()
    want = families[~families.isin(["BENIGN", "DoS"])].value_counts().to_dict()
    assert set(want) == {"DDoS", "PortScan", "WebAttack", "BruteForce"}
    assert detail == want


def test_seed_rule_drops_an_informative_column_the_default_keeps(flows: Path) -> None:
    data = load_sources([flows])
    default, rep_default = clean(data, CleaningOptions(task="dos"))
    seed, rep_seed = clean(data, CleaningOptions(task="dos", near_constant="seed"))
    assert "FIN Flag Count" in default.columns
    assert "FIN Flag Count" not in seed.columns
    reasons = {c.column: c.reason for c in rep_seed.columns_dropped}
    assert "similarity" in reasons["FIN Flag Count"]
    assert default["FIN Flag Count"].n_unique() == 2  # two values: not constant
    # constant columns go with both rules
    for frame in (default, seed):
        assert "Bwd URG Flags" not in frame.columns
    reasons_default = {c.column: c.reason for c in rep_default.columns_dropped}
    assert reasons_default["Bwd URG Flags"].startswith("constant")


def test_near_constant_is_judged_on_the_rows_left(flows: Path) -> None:
    data = load_sources([flows])
    dos, _ = clean(data, CleaningOptions(task="dos"))
    attack, _ = clean(data, CleaningOptions(task="attack"))
    assert "Idle Max" not in dos.columns  # only PortScan rows have it, and dos drops them
    assert "Idle Max" in attack.columns
    none, _ = clean(data, CleaningOptions(task="attack", near_constant="none"))
    assert {"Bwd URG Flags", "Idle Max", "FIN Flag Count"} <= set(none.columns)


def test_identifiers_are_dropped_by_default(flows: Path) -> None:
    frame, report = clean(load_sources([flows]), CleaningOptions(task="attack"))
    assert "Destination Port" not in frame.columns
    reasons = {c.column: c.reason for c in report.columns_dropped}
    assert "identifier" in reasons["Destination Port"]


def test_keep_identifiers(flows: Path) -> None:
    frame, report = clean(
        load_sources([flows]), CleaningOptions(task="attack", drop_identifiers=False)
    )
    assert "Destination Port" not in {c.column for c in report.columns_dropped}
    assert "Destination Port" in frame.columns


def test_switches_turn_steps_off(flows: Path) -> None:
    data = load_sources([flows])
    records = flow_records()
    frame, report = clean(
        data,
        CleaningOptions(
            task="dos",
            filter_labels=False,
            drop_nonfinite=False,
            drop_duplicates=False,
            near_constant="none",
        ),
    )
    for name in ("label_filter", "nonfinite", "duplicates"):
        s = step(report, name)
        assert not s.enabled
        assert s.dropped == 0
    assert frame.height == len(records) - 3  # only the unlabelled rows went
    labelled = pd.DataFrame(records)
    labelled = labelled[~labelled["Label"].str.strip().isin(["", "No Label"])]
    values = labelled["Flow Bytes/s"].astype("float64")
    assert frame["Flow Bytes/s"].is_infinite().sum() == int(np.isinf(values).sum()) > 0
    assert frame["Flow Bytes/s"].is_nan().sum() + frame["Flow Bytes/s"].null_count() == int(
        values.isna().sum()
    )
    # without the label filter, the dos target is 1 for DoS only
    assert frame.filter(pl.col("Target") == 1)["Family"].unique().to_list() == ["DoS"]


def test_target_types(flows: Path) -> None:
    data = load_sources([flows])
    for task in ("dos", "attack"):
        frame, _ = clean(data, CleaningOptions(task=task))
        assert frame["Target"].dtype == pl.Int8
        assert set(frame["Target"].unique().to_list()) == {0, 1}
    frame, _ = clean(data, CleaningOptions(task="multiclass"))
    assert frame["Target"].dtype == pl.String
    assert (frame["Target"] == frame["Family"]).all()


def test_malformed_rows_are_a_counted_step(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "m.csv", ["BENIGN", "DoS Hulk", "BENIGN"])
    path.write_text(path.read_text() + "1,2,3\n")
    _, report = clean(load_sources([path]), CleaningOptions(task="dos", near_constant="none"))
    s = step(report, "read (malformed CSV rows)")
    assert s.dropped == 1
    assert s.rows_out == 3


def test_unsw_multiclass(tmp_path: Path) -> None:
    cats = [("Normal", 0)] * 6 + [("Exploits", 1)] * 3 + [("Backdoors", 1)] * 2 + [("DoS", 1)]
    path = write_unsw_partition(tmp_path / "part.csv", cats)
    frame, report = clean(load_sources([path]), CleaningOptions(task="multiclass"))
    assert report.dataset == "unsw-nb15"
    assert "id" not in frame.columns
    assert {"proto", "service", "state"} <= set(frame.columns)
    assert frame["proto"].dtype == pl.String
    assert report.family_counts == {"BENIGN": 6, "Exploits": 3, "Backdoor": 2, "DoS": 1}
    dos, _ = clean(load_sources([path]), CleaningOptions(task="dos"))
    assert dict(dos.group_by("Target").len().iter_rows()) == {0: 6, 1: 1}


# ------------------------------------------------------------------------------------------
# clean_to_dir


def test_clean_to_dir_writes_parquet_and_report(flows: Path, tmp_path: Path) -> None:
    report, cached = clean_to_dir([str(flows)], tmp_path / "out", options=None)
    assert cached is False
    frame = pl.read_parquet(tmp_path / "out" / "clean.parquet")
    assert frame.height == report.rows_out
    saved = json.loads((tmp_path / "out" / "cleaning_report.json").read_text())
    assert saved["rows_out"] == report.rows_out
    assert saved["task"] == "dos"
    assert CleaningReport.model_validate(saved) == report
    assert frame["source_file"].cast(pl.String).unique().to_list() == [str(flows.resolve())]


def test_clean_to_dir_result_cache(flows: Path, tmp_path: Path) -> None:
    cache = ColumnarCache(tmp_path / "cache")
    options = CleaningOptions(task="attack")
    first, cached1 = clean_to_dir([str(flows)], tmp_path / "a", options=options, cache=cache)
    second, cached2 = clean_to_dir([str(flows)], tmp_path / "b", options=options, cache=cache)
    assert (cached1, cached2) == (False, True)
    assert second == first
    a = (tmp_path / "a" / "clean.parquet").read_bytes()
    assert (tmp_path / "b" / "clean.parquet").read_bytes() == a
    # other options: computed again
    _, cached3 = clean_to_dir(
        [str(flows)], tmp_path / "c", options=CleaningOptions(task="dos"), cache=cache
    )
    assert cached3 is False
    # no cache: always computed
    _, cached4 = clean_to_dir([str(flows)], tmp_path / "d", options=options)
    assert cached4 is False


def test_result_cache_names_the_files_actually_given(flows: Path, tmp_path: Path) -> None:
    """Same content under another path: source_file must name the new path."""
    cache = ColumnarCache(tmp_path / "cache")
    copy = tmp_path / "elsewhere" / "renamed.csv"
    copy.parent.mkdir()
    shutil.copyfile(flows, copy)
    clean_to_dir([str(flows)], tmp_path / "a", cache=cache)
    report, _ = clean_to_dir([str(copy)], tmp_path / "b", cache=cache)
    frame = pl.read_parquet(tmp_path / "b" / "clean.parquet")
    assert frame["source_file"].cast(pl.String).unique().to_list() == [str(copy.resolve())]
    assert [f["path"] for f in report.files] == [str(copy.resolve())]


def test_a_changed_file_is_cleaned_again(tmp_path: Path) -> None:
    cache = ColumnarCache(tmp_path / "cache")
    path = write_cic_file(tmp_path / "f.csv", ["BENIGN", "DoS Hulk", "BENIGN"])
    r1, _ = clean_to_dir([str(path)], tmp_path / "a", cache=cache)
    write_cic_file(path, ["BENIGN", "DoS Hulk", "DoS Hulk", "BENIGN"])
    r2, cached = clean_to_dir([str(path)], tmp_path / "b", cache=cache)
    assert cached is False
    assert (r1.rows_in, r2.rows_in) == (3, 4)


def test_nothing_left_is_an_error(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "scan.csv", ["PortScan", "PortScan"])
    with pytest.raises(InputError, match="no rows left"):
        clean_to_dir([str(path)], tmp_path / "out", options=CleaningOptions(task="dos"))
    assert not (tmp_path / "out" / "clean.parquet").exists()


def test_options_validation() -> None:
    with pytest.raises(ValueError):
        CleaningOptions(task="binary")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CleaningOptions(similarity_threshold=150)
    with pytest.raises(ValueError):
        CleaningOptions(near_constant="sometimes")  # type: ignore[arg-type]


def test_source_file_column_for_several_files(tmp_path: Path) -> None:
    a = write_cic_file(tmp_path / "in" / "a.csv", ["BENIGN", "DoS Hulk"])
    b = write_cic_file(tmp_path / "in" / "b.csv", ["DoS GoldenEye", "BENIGN", "BENIGN"])
    # make b's rows distinct from a's
    b.write_text(b.read_text().replace("\n0.0,", "\n5.0,", 1))
    frame, _ = clean(load_sources([tmp_path / "in"]), CleaningOptions(near_constant="none"))
    counts = dict(frame.group_by(sc.SOURCE).len().iter_rows())
    assert {str(k): v for k, v in counts.items()} == {
        str(a.resolve()): 2,
        str(b.resolve()): 3,
    }


# ------------------------------------------------------------------------------------------
# several files, the columnar cache, duplicates across files


def _split_flows(folder: Path) -> list[dict[str, object]]:
    """The hand-made flows cut into three files (duplicates fall across files), the last one
    holding the only DDoS rows: a family met in a later file only. Returns the records in
    file order."""
    records = flow_records()
    ddos = [r for r in records if r["Label"] == "DDoS"]
    others = [r for r in records if r["Label"] != "DDoS"]
    cut = len(others) // 2
    chunks = [others[:cut], others[cut:], ddos + others[:5]]
    for i, chunk in enumerate(chunks):
        write_csv(folder / f"part{i}.csv", HEADER, [[r[c] for c in HEADER] for r in chunk])
    return [dict(r) for chunk in chunks for r in chunk]


@pytest.mark.parametrize(
    ("task", "rule", "ddos_as_dos"),
    [("dos", "constant", True), ("dos", "seed", True), ("multiclass", "none", False)],
)
def test_several_files_match_pandas(
    tmp_path: Path, task: str, rule: str, ddos_as_dos: bool
) -> None:
    exp = expected(_split_flows(tmp_path / "in"), task, rule, ddos_as_dos)
    opts = CleaningOptions(task=task, near_constant=rule, ddos_as_dos=ddos_as_dos)
    frame, report = clean(load_sources([tmp_path / "in"]), opts)
    assert step(report, "duplicates").dropped == exp["duplicates"]
    assert report.features == exp["features"]
    want = exp["frame"]
    assert frame["Label"].to_list() == want["Label"].tolist()
    for column in exp["features"]:
        assert frame[column].cast(pl.Float64).to_list() == want[column].tolist(), column
    if ddos_as_dos:  # DDoS rows live in the last file only, and are kept
        assert "DDoS" in frame["Family"].to_list()


def test_cached_runs_equal_uncached_runs(tmp_path: Path) -> None:
    """Every option set gives the same files with the cache (parsed files, stored row facts
    and duplicate mask) as without it, in whichever order the runs come."""
    _split_flows(tmp_path / "in")
    cache = ColumnarCache(tmp_path / "cache")
    option_sets = [
        CleaningOptions(task="dos"),
        CleaningOptions(task="dos", near_constant="seed", drop_identifiers=False),
        CleaningOptions(task="attack", drop_duplicates=False),
        CleaningOptions(task="multiclass", near_constant="none", drop_nonfinite=False),
        CleaningOptions(task="attack", near_constant="seed", filter_labels=False),
    ]
    for i, opts in enumerate(option_sets):
        cached, _ = clean_to_dir(
            [str(tmp_path / "in")], tmp_path / f"c{i}", options=opts, cache=cache
        )
        plain, _ = clean_to_dir([str(tmp_path / "in")], tmp_path / f"p{i}", options=opts)
        a = pl.read_parquet(tmp_path / f"c{i}" / "clean.parquet")
        b = pl.read_parquet(tmp_path / f"p{i}" / "clean.parquet")
        assert a.equals(b), opts
        assert cached.model_dump(exclude={"seconds"}) == plain.model_dump(exclude={"seconds"})


def test_duplicates_are_exact_even_when_every_hash_collides(
    flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are only keyed by their hash: with a hash that is the same for every row, the
    values decide, and the result is still pandas' drop_duplicates."""
    import flowsentinel.cleaning as cleaning_mod

    def colliding(parts, features, release):  # type: ignore[no-untyped-def]
        return [np.zeros(part.height, dtype=np.uint64) for part in parts]

    monkeypatch.setattr(cleaning_mod, "_row_hashes", colliding)
    data = load_sources([flows])
    data.facts = [None] * len(data.parts)  # no stored hashes either
    for rule in ("constant", "seed"):
        exp = expected(flow_records(), "dos", rule)
        frame, report = clean(data, CleaningOptions(task="dos", near_constant=rule))
        assert step(report, "duplicates").dropped == exp["duplicates"]
        assert frame["Label"].to_list() == exp["frame"]["Label"].tolist()
        for column in exp["features"]:
            assert frame[column].cast(pl.Float64).to_list() == exp["frame"][column].tolist()


def test_parquet_output_reads_back_with_pandas_and_polars(flows: Path, tmp_path: Path) -> None:
    report, _ = clean_to_dir([str(flows)], tmp_path / "out", options=CleaningOptions(task="dos"))
    frame = pl.read_parquet(tmp_path / "out" / "clean.parquet")
    pdf = pd.read_parquet(tmp_path / "out" / "clean.parquet")
    assert list(pdf.columns) == frame.columns == [*report.features, *sc.META_COLUMNS]
    assert frame["Target"].dtype == pl.Int8
    assert frame["Label"].dtype == pl.String


def test_duplicates_across_files_whose_columns_differ_in_type(tmp_path: Path) -> None:
    """A column exact in float32 in one file and not in another: rows of the first repeated
    in the second are still found (row hashes of the two files are not compared as stored)."""
    rows = [[float(i), float(i % 3), 1.5 * i, "BENIGN"] for i in range(6)]
    header = ["Flow Duration", "Total Fwd Packets", "Flow Bytes/s", "Label"]
    write_csv(tmp_path / "in" / "a.csv", header, rows)
    write_csv(tmp_path / "in" / "b.csv", header, [*rows[:3], [0.1, 1.0, 2.0, "DoS Hulk"]])
    data = load_sources([tmp_path / "in"])
    dtypes = {f.hash_dtypes for f in data.facts if f is not None}
    assert len(dtypes) == 2  # Flow Duration: float32 in a.csv, float64 in b.csv
    frame, report = clean(data, CleaningOptions(task="dos", near_constant="none"))
    assert step(report, "duplicates").dropped == 3
    assert frame.height == 7


def test_seed_rule_duplicates_on_the_columns_left_match_pandas(tmp_path: Path) -> None:
    """Many columns left by the seed rule: rows are keyed by a few of them and compared on all
    of them. Rows equal on the key columns but not on another column left stay; rows equal on
    every column left but not on a dropped one go; rows equal with another label conflict."""
    high = sc.CIC_FEATURES[1:13]  # 12 columns with a value per row
    low = sc.CIC_FEATURES[13:20]  # 7 columns with two values: dropped by the seed rule
    rng = np.random.default_rng(3)
    rows = []
    for i in range(200):
        values = [float(1000 * i + j) for j in range(len(high))]
        values += [float(rng.integers(0, 2)) for _ in low]
        rows.append([*values, "BENIGN" if i % 3 else "DoS Hulk"])
    for i in range(10):  # equal on the first 11 columns left, not on the 12th
        rows[100 + i][:11] = rows[i][:11]
    for i in range(10, 20):  # equal on every column left, not on the dropped ones
        rows[120 + i][: len(high)] = rows[i][: len(high)]
        rows[120 + i][-1] = rows[i][-1]
        rows[120 + i][len(high)] = 1.0 - rows[i][len(high)]
    for i in range(20, 25):  # equal on every column left, another label
        rows[150 + i][: len(high)] = rows[i][: len(high)]
        rows[150 + i][-1] = "DoS Hulk" if rows[i][-1] == "BENIGN" else "BENIGN"
    header = [*high, *low, "Label"]
    path = write_csv(tmp_path / "f.csv", header, rows)
    frame, report = clean(load_sources([path]), CleaningOptions(task="dos", near_constant="seed"))
    assert report.features == list(high)
    want = pd.DataFrame(rows, columns=header).drop_duplicates(subset=[*high, "Label"])
    assert step(report, "duplicates").dropped == len(rows) - len(want) == 10
    assert frame["Label"].to_list() == want["Label"].tolist()
    for column in high:
        assert frame[column].cast(pl.Float64).to_list() == want[column].tolist()
    assert report.conflicting_feature_rows == int(want.duplicated(subset=high, keep=False).sum())
    assert report.conflicting_feature_rows == 10


# ------------------------------------------------------------------------------------------
# a task that leaves one class


def test_zero_one_labels_with_the_dos_task_warn_and_name_the_task_that_fits(
    tmp_path: Path,
) -> None:
    path = write_cic_file(tmp_path / "train.csv", ["0", "1", "0", "1", "1", "0", "0"])
    report, _ = clean_to_dir([str(path)], tmp_path / "out", options=CleaningOptions(task="dos"))
    message = (
        f"{path}: the task 'dos' leaves one class (BENIGN: 4); the labels found are 0, 1 "
        "(numeric 0/1 labels): use --task attack"
    )
    assert [(w.kind, w.message) for w in report.warnings] == [("one_class", message)]
    written = json.loads((tmp_path / "out" / "cleaning_report.json").read_text())
    assert written["warnings"] == [{"kind": "one_class", "message": message}]
    assert report.target_counts == {"0": 4}


def test_training_clean_stops_on_one_class_before_writing(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "train.csv", ["0", "1", "0", "1"])
    with pytest.raises(InputError, match=r"leaves one class \(BENIGN: 2\).*use --task attack"):
        clean_to_dir(
            [str(path)], tmp_path / "out", options=CleaningOptions(task="dos"), two_classes=True
        )
    assert not (tmp_path / "out" / "clean.parquet").exists()


def test_one_family_fits_no_task(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "benign.csv", ["BENIGN", "BENIGN ", "BENIGN"])
    report, _ = clean_to_dir([str(path)], tmp_path / "out", options=CleaningOptions(task="attack"))
    (warning,) = report.warnings
    assert warning.message == (
        f"{path}: the task 'attack' leaves one class (BENIGN: 3); the labels found are "
        "BENIGN: no task has two classes in these labels"
    )


def test_no_label_filter_keeps_families_in_one_target(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "f.csv", ["BENIGN", "PortScan", "PortScan"])
    report, _ = clean_to_dir(
        [str(path)],
        tmp_path / "out",
        options=CleaningOptions(task="dos", filter_labels=False),
    )
    (warning,) = report.warnings
    assert "leaves one class (all of PortScan 2, BENIGN 1 in one Target)" in warning.message
    assert warning.message.endswith("use --task attack")


def test_a_class_lost_to_the_nonfinite_step_warns(tmp_path: Path) -> None:
    rows = [cic_row(i, label) for i, label in enumerate(["BENIGN", "DoS Hulk", "BENIGN"])]
    rows[1][0] = math.inf
    path = write_csv(tmp_path / "f.csv", [*sc.CIC_FEATURES, "Label"], rows)
    report, _ = clean_to_dir([str(path)], tmp_path / "out", options=CleaningOptions(task="dos"))
    (warning,) = report.warnings
    assert warning.message == (
        f"{path}: cleaning for the task 'dos' leaves one class (Target 0: 2 rows) after the "
        "non-finite and duplicate steps"
    )


def test_two_classes_no_warning(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "f.csv", ["BENIGN", "DoS Hulk", "PortScan"])
    report, _ = clean_to_dir([str(path)], tmp_path / "out", two_classes=True)
    assert report.warnings == []
