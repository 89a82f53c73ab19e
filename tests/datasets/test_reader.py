"""read_file: every dialect onto canonical names, what the report counts, one-line errors."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import polars as pl
import pytest

from flowdata import (
    CICFLOWMETER_V4_HEADER,
    cic_row,
    unsw_partition_header,
    unsw_partition_rows,
    write_cic_file,
    write_csv,
    write_unsw_partition,
)
from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets.reader import read_file, sniff

EN_DASH = "\u2013"
FEATURES = list(sc.CIC_FEATURES)


def mlcve_header() -> list[str]:
    """The MachineLearningCVE header: leading spaces, "Fwd Header Length" written twice."""
    cut = FEATURES.index("Avg Bwd Segment Size") + 1
    names = ["Destination Port", *FEATURES[:cut], "Fwd Header Length", *FEATURES[cut:], "Label"]
    return [f" {n}" for n in names]


def mlcve_rows(labels: list[str], dup_differs: set[int] = frozenset()) -> list[list[object]]:
    rows = []
    cut = FEATURES.index("Avg Bwd Segment Size") + 1
    fhl = FEATURES.index("Fwd Header Length")
    for i, label in enumerate(labels):
        values = [float(i * 100 + j) for j in range(len(FEATURES))]
        copy = values[fhl] + (7.0 if i in dup_differs else 0.0)
        rows.append([443 + i, *values[:cut], copy, *values[cut:], label])
    return rows


# ------------------------------------------------------------------------------------------
# dialects


def test_machinelearningcve_dialect(tmp_path: Path) -> None:
    labels = ["BENIGN", "DoS Hulk", " DoS slowloris ", "BENIGN"]
    path = write_csv(tmp_path / "mlcve.csv", mlcve_header(), mlcve_rows(labels, {1, 3}))
    df, report = read_file(path)
    assert report.dialect == "machinelearningcve"
    assert report.dataset == "cicids2017"
    assert report.rows == 4
    assert df.columns == ["Destination Port", *FEATURES, "Label", "Family"]
    assert sc.CIC_DUPLICATE_COLUMN not in df.columns
    assert report.duplicate_column_mismatches == 2  # rows 1 and 3 differ in the copy
    assert report.missing_features == []
    assert report.unknown_columns == []
    assert df["Label"].to_list() == ["BENIGN", "DoS Hulk", "DoS slowloris", "BENIGN"]
    assert df["Family"].to_list() == ["BENIGN", "DoS", "DoS", "BENIGN"]
    assert df["Flow Duration"].cast(pl.Float64).to_list() == [0.0, 100.0, 200.0, 300.0]
    assert df["Destination Port"].cast(pl.Int64).to_list() == [443, 444, 445, 446]


def test_trafficlabelling_dialect(tmp_path: Path) -> None:
    header = [*sc.CIC_IDENTIFIERS, *FEATURES, "Label"]
    rows = []
    for i, label in enumerate(["BENIGN", f"Web Attack {EN_DASH} XSS"]):
        ident = [
            f"10.0.0.{i}-10.0.0.9-{1000 + i}-80-6",
            f"10.0.0.{i}",
            1000 + i,
            "10.0.0.9",
            80,
            6,
            "6/7/2017 9:0",
        ]
        rows.append([*ident, *cic_row(i, label)])
    path = write_csv(tmp_path / "tl.csv", header, rows)
    df, report = read_file(path)
    assert report.dialect == "trafficlabelling"
    assert df.columns == [*sc.CIC_IDENTIFIERS, *FEATURES, "Label", "Family"]
    assert df["Source IP"].to_list() == ["10.0.0.0", "10.0.0.1"]
    assert df["Timestamp"].to_list() == ["6/7/2017 9:0", "6/7/2017 9:0"]
    assert df["Source Port"].cast(pl.Int64).to_list() == [1000, 1001]
    assert df["Family"].to_list() == ["BENIGN", "WebAttack"]


def test_cicflowmeter_v4_dialect(tmp_path: Path) -> None:
    n_ident = 7
    rows = []
    for i in range(3):
        ident = [f"f{i}", "192.168.1.2", 5000 + i, "192.168.1.3", 80, 6, "30/03/2020 08:35:49 PM"]
        values = [float(i * 100 + j) for j in range(len(CICFLOWMETER_V4_HEADER) - n_ident - 1)]
        rows.append([*ident, *values, "No Label"])
    path = write_csv(tmp_path / "capture.pcap_Flow.csv", CICFLOWMETER_V4_HEADER, rows)
    df, report = read_file(path, require_label=False)
    assert report.dialect == "cicflowmeter-v4"
    assert report.missing_features == []
    assert set(FEATURES) <= set(df.columns)
    assert df["Destination Port"].cast(pl.Int64).to_list() == [80, 80, 80]
    assert df["Source IP"].to_list() == ["192.168.1.2"] * 3
    # "Tot Fwd Pkts" is the 2nd feature of the file: values i*100 + 1
    assert df["Total Fwd Packets"].cast(pl.Float64).to_list() == [1.0, 101.0, 201.0]
    assert df["Label"].null_count() == 3  # "No Label" means unlabelled
    assert df["Family"].null_count() == 3


def test_snake_case_dialect(tmp_path: Path) -> None:
    header = [sc.snake_case(f) for f in FEATURES] + ["label"]
    path = write_csv(tmp_path / "snake.csv", header, [cic_row(i, "BENIGN") for i in range(3)])
    df, report = read_file(path)
    assert df.columns == [*FEATURES, "Label", "Family"]
    assert df["Flow Bytes/s"].cast(pl.Float64).to_list() == [13.0, 113.0, 213.0]
    assert report.dialect == "snake-case"


def test_canonical_names_with_missing_features(tmp_path: Path) -> None:
    header = [*FEATURES[:10], "Label"]
    path = write_cic_file(tmp_path / "ten.csv", ["BENIGN", "DDoS"], header=header)
    df, report = read_file(path)
    assert df.columns == [*FEATURES[:10], "Label", "Family"]
    assert report.missing_features == FEATURES[10:]
    assert df["Family"].to_list() == ["BENIGN", "DDoS"]


def test_unknown_columns_are_dropped_and_reported(tmp_path: Path) -> None:
    header = [*FEATURES, "Comment", "Label"]
    rows = [[*cic_row(i, None)[:-1], "free text", "BENIGN"] for i in range(2)]
    df, report = read_file(write_csv(tmp_path / "extra.csv", header, rows))
    assert report.unknown_columns == ["Comment"]
    assert "Comment" not in df.columns
    assert df.height == 2


def test_utf8_bom_header(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "bom.csv", ["BENIGN", "PortScan"], encoding="utf-8-sig")
    df, report = read_file(path)
    assert report.unknown_columns == []
    assert df.columns[0] == FEATURES[0]
    assert df["Family"].to_list() == ["BENIGN", "PortScan"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "crlf.csv",
        [*FEATURES, "Label"],
        [cic_row(i, "BENIGN") for i in range(2)],
        newline="\r\n",
    )
    df, _ = read_file(path)
    assert df["Label"].to_list() == ["BENIGN", "BENIGN"]
    assert df["Idle Min"].cast(pl.Float64).to_list() == [75.0, 175.0]


def test_gzip_csv(tmp_path: Path) -> None:
    plain = write_cic_file(tmp_path / "plain.csv", ["BENIGN", "Bot", "DDoS"])
    gz = tmp_path / "packed.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a, _ = read_file(plain)
    b, report = read_file(gz)
    assert report.rows == 3
    assert a.equals(b)


def test_parquet(tmp_path: Path) -> None:
    plain = write_cic_file(tmp_path / "plain.csv", ["BENIGN", "Bot", "DDoS"])
    frame = pl.read_csv(plain).with_columns(pl.col(FEATURES[0]).cast(pl.Int32))
    frame.write_parquet(tmp_path / "flows.parquet")
    df, report = read_file(tmp_path / "flows.parquet")
    assert report.dialect == "parquet"
    assert report.rows == 3
    assert df.columns == [*FEATURES, "Label", "Family"]
    assert df["Family"].to_list() == ["BENIGN", "Bot", "DDoS"]
    assert df[FEATURES[0]].cast(pl.Float64).to_list() == [0.0, 100.0, 200.0]


def test_parquet_with_only_the_duplicate_header_column(tmp_path: Path) -> None:
    """Some re-uploads kept only "Fwd Header Length.1": it becomes "Fwd Header Length"."""
    pl.DataFrame(
        {"Flow Duration": [1.0, 2.0], "Fwd Header Length.1": [40, 60], "Label": ["A", "BENIGN"]}
    ).write_parquet(tmp_path / "dup.parquet")
    df, _ = read_file(tmp_path / "dup.parquet")
    assert df["Fwd Header Length"].cast(pl.Int64).to_list() == [40, 60]


# ------------------------------------------------------------------------------------------
# values


def test_infinity_stays_infinite_and_nan_becomes_missing(tmp_path: Path) -> None:
    rows = [cic_row(i, "BENIGN") for i in range(4)]
    col = FEATURES.index("Flow Bytes/s")
    rows[0][col] = math.inf
    rows[1][col] = -math.inf
    rows[2][col] = math.nan
    rows[3][col] = None
    df, _ = read_file(write_csv(tmp_path / "inf.csv", [*FEATURES, "Label"], rows))
    values = df["Flow Bytes/s"].cast(pl.Float64).to_list()
    assert values[0] == math.inf
    assert values[1] == -math.inf
    assert values[2] is None or math.isnan(values[2])
    assert values[3] is None


def test_malformed_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    lines = [",".join([*FEATURES, "Label"])]
    lines += [",".join(str(v) for v in cic_row(i, "BENIGN")) for i in range(5)]
    lines.insert(3, ",".join([*(str(v) for v in cic_row(9, "BENIGN")), "extra field"]))
    lines.insert(4, "1,2,3")
    path = tmp_path / "malformed.csv"
    path.write_text("\n".join(lines) + "\n")
    df, report = read_file(path)
    assert report.malformed_rows_skipped == 2
    assert report.rows == df.height == 5
    assert df["Flow Duration"].cast(pl.Float64).to_list() == [0.0, 100.0, 200.0, 300.0, 400.0]


def test_unparseable_values_become_null_and_are_counted(tmp_path: Path) -> None:
    rows = [cic_row(i, "BENIGN") for i in range(5)]
    rows[1][0] = "abc"
    rows[3][0] = "n/a?"
    rows[2][5] = "12x"
    df, report = read_file(write_csv(tmp_path / "text.csv", [*FEATURES, "Label"], rows))
    assert report.unparseable_values == {FEATURES[0]: 2, FEATURES[5]: 1}
    assert df[FEATURES[0]].cast(pl.Float64).to_list() == [0.0, None, 200.0, None, 400.0]
    assert df[FEATURES[5]].null_count() == 1
    assert df[FEATURES[5]].dtype.is_numeric()


def test_text_in_many_numeric_columns(tmp_path: Path) -> None:
    rows = [cic_row(i, "BENIGN") for i in range(4)]
    for col in range(6):
        rows[col % 4][col * 3] = f"bad{col}"
    df, report = read_file(write_csv(tmp_path / "text6.csv", [*FEATURES, "Label"], rows))
    assert report.unparseable_values == {FEATURES[col * 3]: 1 for col in range(6)}
    assert report.rows == 4
    for col in range(6):
        assert df[FEATURES[col * 3]].null_count() == 1
    assert df[FEATURES[1]].cast(pl.Float64).to_list() == [1.0, 101.0, 201.0, 301.0]


def test_bytes_not_utf8_in_a_number_cell_are_bad_cells_not_a_bad_file(tmp_path: Path) -> None:
    rows = [cic_row(i, "BENIGN") for i in range(7)]
    rows[2][0] = "__E9__"
    rows[5][0] = "__FF__"
    rows[6][0] = "abc"  # ASCII junk: the same path, the same counts
    rows[3][0] = ""  # blank: missing, not a bad cell
    path = write_csv(tmp_path / "bytes.csv", [*FEATURES, "Label"], rows)
    path.write_bytes(path.read_bytes().replace(b"__E9__", b"1\xe9").replace(b"__FF__", b"\xff"))
    df, report = read_file(path)
    assert report.rows == 7
    assert report.unparseable_values == {FEATURES[0]: 3}
    assert report.unparseable_rows == {FEATURES[0]: [3, 6, 7]}
    assert report.non_utf8_values == {FEATURES[0]: 2}
    assert report.non_utf8_rows == {FEATURES[0]: [3, 6]}
    assert report.encoding == "utf-8"  # no text cell was decoded as CP1252
    assert df[FEATURES[0]].cast(pl.Float64).to_list() == [0.0, 100.0, None, None, 400.0, None, None]


def test_bytes_not_utf8_in_a_text_cell_decode_as_cp1252(tmp_path: Path) -> None:
    header = [*sc.CIC_IDENTIFIERS, *FEATURES, "Label"]
    rows = [
        ["f", "10.0.0.1", 1, "10.0.0.2", 80, 6, "__T__", *cic_row(i, "BENIGN")] for i in range(3)
    ]
    path = write_csv(tmp_path / "text.csv", header, rows)
    path.write_bytes(
        path.read_bytes().replace(b"__T__", b"3 f\xe9v", 1).replace(b"__T__", b"x\x81")
    )
    df, report = read_file(path)
    assert df["Timestamp"].to_list() == ["3 f\u00e9v", "x\ufffd", "x\ufffd"]
    assert report.non_utf8_values == {"Timestamp": 3}
    assert report.non_utf8_rows == {"Timestamp": [1, 2, 3]}
    assert report.unparseable_values == {}
    assert report.encoding == "cp1252"


def test_first_row_numbers_are_capped(tmp_path: Path) -> None:
    rows = [cic_row(i, "BENIGN") for i in range(12)]
    for i in range(1, 12, 2):
        rows[i][4] = "x"
    _, report = read_file(write_csv(tmp_path / "many.csv", [*FEATURES, "Label"], rows))
    assert report.unparseable_values == {FEATURES[4]: 6}
    assert report.unparseable_rows == {FEATURES[4]: [2, 4, 6, 8, 10]}


def test_concatenated_csv_with_repeated_header(tmp_path: Path) -> None:
    """Files made by concatenating day CSVs repeat the header line mid-file."""
    first = write_cic_file(tmp_path / "a.csv", ["BENIGN", "DDoS"]).read_text()
    path = tmp_path / "concat.csv"
    path.write_text(first + first)
    df, report = read_file(path)
    assert report.rows == df.height == 4
    assert df["Label"].to_list() == ["BENIGN", "DDoS", "BENIGN", "DDoS"]
    assert df[FEATURES[0]].cast(pl.Float64).to_list() == [0.0, 100.0, 0.0, 100.0]


# ------------------------------------------------------------------------------------------
# labels


def test_cp1252_labels(tmp_path: Path) -> None:
    header = [*FEATURES, "Label"]
    labels = ["BENIGN", f"Web Attack {EN_DASH} Brute Force", f"Web Attack {EN_DASH} XSS"]
    utf8 = write_cic_file(tmp_path / "utf8.csv", labels, header=header)
    cp = write_cic_file(tmp_path / "cp1252.csv", labels, header=header, encoding="cp1252")
    assert b"\x96" in cp.read_bytes()
    a, _ = read_file(utf8)
    b, _ = read_file(cp)
    assert b["Label"].to_list() == labels
    assert a["Label"].equals(b["Label"])
    assert b["Family"].to_list() == ["BENIGN", "WebAttack", "WebAttack"]


def test_report_says_cp1252_for_a_file_with_cp1252_labels(tmp_path: Path) -> None:
    """FileReport.encoding should describe the file, not only its (ASCII) header."""
    path = write_cic_file(
        tmp_path / "cp1252.csv", ["BENIGN", f"Web Attack {EN_DASH} XSS"], encoding="cp1252"
    )
    _, report = read_file(path)
    assert report.encoding == "cp1252"


def test_unlabelled_rows_have_no_family(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "some.csv", ["BENIGN", "No Label", None, "  ", "Bot"])
    df, _ = read_file(path)
    assert df["Label"].to_list() == ["BENIGN", None, None, None, "Bot"]
    assert df["Family"].to_list() == ["BENIGN", None, None, None, "Bot"]


def test_no_label_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "nolabel.csv", FEATURES, [cic_row(i, None)[:-1] for i in range(2)])
    with pytest.raises(InputError, match=r"nolabel\.csv.*label"):
        read_file(path)
    df, report = read_file(path, require_label=False)
    assert report.rows == 2
    assert df["Label"].null_count() == 2
    assert df["Family"].null_count() == 2


# ------------------------------------------------------------------------------------------
# UNSW-NB15


def test_unsw_partition(tmp_path: Path) -> None:
    path = write_unsw_partition(
        tmp_path / "part.csv",
        [("Normal", 0), ("Generic", 1), ("Backdoors", 1), ("", 0), (" Fuzzers ", 1), ("Normal", 1)],
    )
    df, report = read_file(path)
    assert report.dataset == "unsw-nb15"
    assert report.dialect == "unsw-partition"
    assert df.columns == ["id", *sc.UNSW_FEATURES, "Label", "Family"]
    assert df["Label"].to_list() == [
        "Normal",
        "Generic",
        "Backdoors",
        "Normal",
        "Fuzzers",
        "Normal",
    ]
    assert df["Family"].to_list() == [
        "BENIGN",
        "Generic",
        "Backdoor",
        "BENIGN",
        "Fuzzers",
        "BENIGN",
    ]
    assert report.label_mismatches == 1  # "Normal" with label 1
    assert df["proto"].to_list() == ["tcp", "udp", "arp", "tcp", "udp", "arp"]
    assert df["service"].to_list()[:3] == ["-", "http", "dns"]  # "-" is a real category
    assert df["dur"].dtype.is_numeric()


def test_unsw_partition_blank_stays_missing(tmp_path: Path) -> None:
    rows = unsw_partition_rows([("Normal", 0), ("Exploits", 1)])
    col = unsw_partition_header().index("ct_ftp_cmd")
    rows[0][col] = None
    df, report = read_file(write_csv(tmp_path / "p.csv", unsw_partition_header(), rows))
    assert report.blank_as_zero == {}
    assert df["ct_ftp_cmd"].null_count() == 1


def _raw_unsw_rows() -> list[list[object]]:
    text = {"srcip": "59.166.0.1", "dstip": "149.171.126.2", "proto": "tcp", "state": "FIN"}
    text |= {"service": "http"}
    specs = [
        ("", 0, ()),
        (" Fuzzers ", 1, ("ct_flw_http_mthd", "is_ftp_login")),
        ("Backdoors", 1, ("ct_ftp_cmd",)),
        ("Exploits", 1, ("ct_ftp_cmd",)),
    ]
    rows: list[list[object]] = []
    for i, (cat, label, blanks) in enumerate(specs):
        row: list[object] = []
        for j, name in enumerate(sc.UNSW_RAW_COLUMNS):
            if name == "attack_cat":
                row.append(cat)
            elif name == "Label":
                row.append(label)
            elif name in blanks:
                row.append(None)
            elif name in text:
                row.append(text[name])
            else:
                row.append(i * 100 + j + 1)
        rows.append(row)
    return rows


def test_unsw_raw_headerless(tmp_path: Path) -> None:
    path = tmp_path / "UNSW-NB15_1.csv"
    body = "\n".join(",".join("" if v is None else str(v) for v in row) for row in _raw_unsw_rows())
    path.write_text(body + "\n")
    df, report = read_file(path)
    assert report.dataset == "unsw-nb15"
    assert report.dialect == "unsw-raw"
    assert report.rows == 4  # the first line is a row, not a header
    assert report.blank_as_zero == {"ct_flw_http_mthd": 1, "is_ftp_login": 1, "ct_ftp_cmd": 2}
    assert df["ct_ftp_cmd"].cast(pl.Float64).to_list()[2:] == [0.0, 0.0]
    assert df["ct_flw_http_mthd"].null_count() == 0
    assert report.missing_features == ["rate"]
    assert set(sc.UNSW_FEATURES) - {"rate"} <= set(df.columns)
    assert df["Family"].to_list() == ["BENIGN", "Fuzzers", "Backdoor", "Exploits"]
    col = sc.UNSW_RAW_COLUMNS.index("smeansz")
    assert df["smean"].cast(pl.Float64).to_list() == [
        col + 1.0,
        col + 101.0,
        col + 201.0,
        col + 301.0,
    ]


def test_unsw_raw_with_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "raw-header.csv", sc.UNSW_RAW_COLUMNS, _raw_unsw_rows())
    df, report = read_file(path)
    assert report.rows == 4
    assert report.dialect.startswith("unsw-raw")
    assert report.blank_as_zero == {"ct_flw_http_mthd": 1, "is_ftp_login": 1, "ct_ftp_cmd": 2}
    assert df["Family"].to_list() == ["BENIGN", "Fuzzers", "Backdoor", "Exploits"]


# ------------------------------------------------------------------------------------------
# errors: one line, naming the file


def _assert_one_line_naming(exc: pytest.ExceptionInfo[InputError], path: Path) -> str:
    message = str(exc.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputError) as exc:
        read_file(path)
    assert "empty" in _assert_one_line_naming(exc, path)


def test_header_only(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "header.csv", [])
    with pytest.raises(InputError) as exc:
        read_file(path)
    assert "no rows" in _assert_one_line_naming(exc, path)


def test_unknown_columns_only(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "other.csv", ["name", "age", "city"], [["a", 1, "x"]])
    with pytest.raises(InputError) as exc:
        read_file(path)
    assert "no known flow columns" in _assert_one_line_naming(exc, path)


def test_unsw_file_read_as_cicids2017(tmp_path: Path) -> None:
    path = write_unsw_partition(tmp_path / "unsw.csv", [("Normal", 0)])
    with pytest.raises(InputError) as exc:
        read_file(path, "cicids2017")
    assert "looks like a unsw-nb15 file, not cicids2017" in _assert_one_line_naming(exc, path)


def test_cic_file_read_as_unsw(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "cic.csv", ["BENIGN"])
    with pytest.raises(InputError) as exc:
        read_file(path, "unsw-nb15")
    assert "looks like a cicids2017 file, not unsw-nb15" in _assert_one_line_naming(exc, path)


def test_cic_parquet_read_as_unsw(tmp_path: Path) -> None:
    pl.DataFrame({f: [1.0] for f in FEATURES[:5]} | {"Label": ["BENIGN"]}).write_parquet(
        tmp_path / "cic.parquet"
    )
    with pytest.raises(InputError) as exc:
        read_file(tmp_path / "cic.parquet", "unsw-nb15")
    _assert_one_line_naming(exc, tmp_path / "cic.parquet")


def test_utf16_file(tmp_path: Path) -> None:
    path = write_cic_file(tmp_path / "utf16.csv", ["BENIGN", "DDoS"], encoding="utf-16")
    with pytest.raises(InputError) as exc:
        read_file(path)
    assert "UTF-16" in _assert_one_line_naming(exc, path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "random.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError) as exc:
        read_file(path)
    _assert_one_line_naming(exc, path)


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 50)
    with pytest.raises(InputError) as exc:
        read_file(path)
    assert "parquet" in _assert_one_line_naming(exc, path)


def test_truncated_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pl.DataFrame({f: [1.0, 2.0] for f in FEATURES} | {"Label": ["BENIGN", "Bot"]}).write_parquet(
        good
    )
    path = tmp_path / "cut.parquet"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError) as exc:
        read_file(path)
    _assert_one_line_naming(exc, path)


def test_empty_parquet(tmp_path: Path) -> None:
    path = tmp_path / "none.parquet"
    pl.DataFrame(
        {f: pl.Series([], dtype=pl.Float64) for f in FEATURES}
        | {"Label": pl.Series([], dtype=pl.String)}
    ).write_parquet(path)
    with pytest.raises(InputError) as exc:
        read_file(path)
    _assert_one_line_naming(exc, path)


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "fake.csv.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(InputError) as exc:
        read_file(path)
    _assert_one_line_naming(exc, path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(InputError) as exc:
        read_file(path)
    _assert_one_line_naming(exc, path)


# ------------------------------------------------------------------------------------------
# sniff


def test_sniff(tmp_path: Path) -> None:
    mlcve = write_csv(tmp_path / "a.csv", mlcve_header(), mlcve_rows(["BENIGN"]))
    unsw = write_unsw_partition(tmp_path / "b.csv", [("Normal", 0)])
    other = write_csv(tmp_path / "c.csv", ["name", "age"], [["x", 1]])
    assert sniff(mlcve)["dataset"] == "cicids2017"
    assert sniff(mlcve)["dialect"] == "machinelearningcve"
    assert sniff(unsw) == {"dataset": "unsw-nb15", "dialect": "unsw-partition", "encoding": "utf-8"}
    assert sniff(other)["dataset"] is None
