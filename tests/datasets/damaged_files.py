"""A seeded generator of damaged flow files: the robustness corpus of the reader and of
`flowsentinel data clean`.

Every case starts from a few hundred real rows (a seeded choice among the rows of
``../shared/datasets``: the grouped-label CIC-IDS2017 sample, the TrafficLabelling web-attack
day, the UNSW-NB15 partition file), or synthetic rows made from them, and damages them in one
way. The generator records where it put the damage, and works out here, with no code of the
reader or of cleaning (only the column roles of the schema), what reading and cleaning must
report: rows read, rows skipped, every bad cell per column with its row number (1-based among
the rows read: a skipped malformed line or a repeated header line is not a row read), the rows
the non-finite step drops, or the one-line error or warning expected.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flowdata import SHARED_DATASETS
from flowsentinel.core import schema as sc

SOURCES = {
    "cic": SHARED_DATASETS / "cicids2017" / "cicids2017-sample-grouped-labels.csv.gz",
    "cic-ids": SHARED_DATASETS / "cicids2017" / "thursday-webattacks-trafficlabelling.csv.gz",
    "unsw": SHARED_DATASETS / "unsw-nb15" / "UNSW_NB15_training-set.csv.gz",
}
ROWS = 240  # rows of a slice
SOURCE_ROWS = 6000  # the slice is chosen among the first rows of a file (all kinds are there)
# what a number cell may hold and still mean "missing" (not a bad cell): the CSV convention
BLANKS = {"", "NaN", "nan", "NA", "N/A", "null", "NULL", "-"}
NOT_UTF8 = [b"\xe9", b"\xff", b"12\xe94", b"\x96", b"\x81", b"3.5\xa0\xff"]  # none is UTF-8
ASCII_JUNK = [b"abc", b"12x", b"#REF!", b"1.2.3", b"--5", b"?", b"0x1G"]
NUL_CELLS = [b"\x00", b"12\x0034", b"7\x00"]


def available() -> bool:
    return all(p.is_file() for p in SOURCES.values())


@cache
def _real(source: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    with gzip.open(SOURCES[source], "rt", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader))
        rows = tuple(tuple(r) for r in itertools.islice(reader, SOURCE_ROWS) if r)
    return header, rows


@dataclass
class Slice:
    """Real rows as the bytes of their cells, and the roles of the columns."""

    dataset: str
    header: list[str]
    cells: list[list[bytes]]

    def index(self, column: str) -> int:
        return [h.strip() for h in self.header].index(column)

    @property
    def label_column(self) -> str:
        return "Label" if self.dataset == "cicids2017" else "attack_cat"

    def numeric_features(self) -> list[str]:
        present = {h.strip() for h in self.header}
        features = sc.dataset(self.dataset).features
        categorical = set(sc.dataset(self.dataset).categorical)
        return [f for f in features if f in present and f not in categorical]


def real_slice(source: str, rng: random.Random, n: int = ROWS) -> Slice:
    header, rows = _real(source)
    label = header.index("Label") if "Label" in header else header.index("attack_cat")
    benign = [i for i, r in enumerate(rows) if r[label].strip() in {"BENIGN", "Normal"}]
    others = [i for i, r in enumerate(rows) if r[label].strip() not in {"BENIGN", "Normal"}]
    chosen = sorted(rng.sample(benign, n // 2) + rng.sample(others, n - n // 2))
    dataset = "unsw-nb15" if source == "unsw" else "cicids2017"
    cells = [[c.encode() for c in rows[i]] for i in chosen]
    return Slice(dataset, [h.strip() for h in header], cells)


@dataclass
class Damaged:
    """One damaged file and what reading and cleaning it must give."""

    name: str
    path: Path
    dataset: str
    args: list[str] = field(default_factory=lambda: ["--task", "attack"])
    lines: int = 0  # data lines written after the header (rows, malformed, repeated headers)
    rows_read: int = 0
    malformed: int = 0
    repeated_headers: int = 0
    unparseable: dict[str, list[int]] = field(default_factory=dict)  # all rows, 1-based
    non_utf8: dict[str, list[int]] = field(default_factory=dict)
    nonfinite_rows: int = 0  # rows (in the task) with a missing or infinite numeric feature
    nonfinite_by_column: dict[str, int] = field(default_factory=dict)
    label_filter_drops: int = 0
    values: dict[str, dict[int, str]] = field(default_factory=dict)  # column -> row -> text
    error: tuple[str, ...] = ()  # pieces of the one-line error (the file is refused)
    warning: tuple[str, ...] = ()  # pieces of the one-line warning


class Builder:
    """A slice being damaged: cells changed in place (positions recorded), extra lines
    (malformed rows, repeated headers) inserted between the rows."""

    def __init__(self, piece: Slice, rng: random.Random) -> None:
        self.piece = piece
        self.rng = rng
        self.unparseable: dict[str, set[int]] = {}
        self.non_utf8: dict[str, set[int]] = {}
        self.values: dict[str, dict[int, str]] = {}
        self.inserted: list[tuple[int, bytes, str]] = []  # (before row, line, kind)
        self.tail: bytes | None = None  # a last line cut short

    def rows(self, k: int) -> list[int]:
        return sorted(self.rng.sample(range(len(self.piece.cells)), k))

    def spoil(self, column: str, texts: list[bytes], k: int, number: bool = True) -> None:
        """Put one of ``texts`` in ``k`` cells of a column; a number cell counts as
        unparseable, a cell that is not UTF-8 as non_utf8."""
        col = self.piece.index(column)
        for row in self.rows(k):
            value = self.rng.choice(texts)
            self.piece.cells[row][col] = value
            if number:
                self.unparseable.setdefault(column, set()).add(row)
            if not _utf8(value):
                self.non_utf8.setdefault(column, set()).add(row)

    def recode(self, column: str, k: int, make: Callable[[bytes], tuple[bytes, str]]) -> None:
        """Rewrite ``k`` text cells of a column with ``make`` (new bytes, expected text)."""
        col = self.piece.index(column)
        for row in self.rows(k):
            raw, text = make(self.piece.cells[row][col])
            self.piece.cells[row][col] = raw
            self.values.setdefault(column, {})[row + 1] = text
            if not _utf8(raw):
                self.non_utf8.setdefault(column, set()).add(row)

    def insert(self, line: bytes, kind: str) -> None:
        self.inserted.append((self.rng.randrange(1, len(self.piece.cells)), line, kind))

    def cut_last_row(self) -> None:
        """The last line cut short inside its cells (fewer fields, no line end)."""
        last = self.piece.cells.pop()
        joined = b",".join(last)
        commas = [i for i, ch in enumerate(joined) if ch == ord(",")]
        self.tail = joined[: self.rng.choice(commas[5 : len(commas) // 2]) + 2]

    def write(self, path: Path, *, newline: bytes = b"\n", bom: bool = False, **kw: Any) -> Damaged:
        header = ",".join(self.piece.header).encode()
        body: list[bytes] = []
        malformed = repeated = 0
        extra = sorted(self.inserted, key=lambda t: t[0])
        for i, row in enumerate(self.piece.cells):
            while extra and extra[0][0] == i:
                _, line, kind = extra.pop(0)
                body.append(line)
                malformed += kind == "malformed"
                repeated += kind == "header"
            body.append(b",".join(row))
        if self.tail is not None:
            body.append(self.tail)
            malformed += 1
        data = (b"\xef\xbb\xbf" if bom else b"") + newline.join([header, *body])
        data += b"" if self.tail is not None else newline
        path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
        expected = self.expected(path, **kw)
        expected.lines = len(body)
        expected.malformed = malformed
        expected.repeated_headers = repeated
        return expected

    def expected(self, path: Path, name: str = "", args: list[str] | None = None) -> Damaged:
        piece = self.piece
        out = Damaged(name or path.stem, path, piece.dataset)
        if args is not None:
            out.args = args
        out.rows_read = len(piece.cells)
        out.unparseable = {c: [r + 1 for r in sorted(s)] for c, s in self.unparseable.items()}
        out.non_utf8 = {c: [r + 1 for r in sorted(s)] for c, s in self.non_utf8.items()}
        out.values = self.values
        rows, by_column = nonfinite(piece)
        out.nonfinite_rows, out.nonfinite_by_column = rows, by_column
        return out


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _finite(raw: bytes) -> bool:
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False
    if text in BLANKS or "\x00" in text:
        return False
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def nonfinite(piece: Slice) -> tuple[int, dict[str, int]]:
    """Rows with a missing, infinite or unparseable numeric feature, and how many per column
    (every row of these cases is labelled and in the task)."""
    columns = {c: piece.index(c) for c in piece.numeric_features()}
    by_column: dict[str, int] = {}
    rows = 0
    for row in piece.cells:
        bad = [c for c, i in columns.items() if not _finite(row[i])]
        rows += bool(bad)
        for c in bad:
            by_column[c] = by_column.get(c, 0) + 1
    return rows, by_column


# ------------------------------------------------------------------------------------------
# the cases: each a function of (folder, seed) -> Damaged


def _start(source: str, seed: int) -> Builder:
    rng = random.Random(f"{source}-{seed}")
    return Builder(real_slice(source, rng), rng)


def bytes_in_numbers(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    for column in b.rng.sample(b.piece.numeric_features(), 3):
        b.spoil(column, NOT_UTF8, b.rng.randint(1, 7))
    return b.write(tmp / "bytes-in-numbers.csv")


def ascii_junk(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    for column in b.rng.sample(b.piece.numeric_features(), 4):
        b.spoil(column, ASCII_JUNK, b.rng.randint(1, 7))
    return b.write(tmp / "ascii-junk.csv")


def bytes_in_text(tmp: Path, seed: int) -> Damaged:
    """Identifiers of the TrafficLabelling day: text cells decode as CP1252; a number
    identifier (a port) holds no number (not a feature: no row dropped for it)."""
    b = _start("cic-ids", seed)
    for column in ("Source IP", "Timestamp", "Flow ID"):
        b.recode(column, b.rng.randint(1, 6), lambda raw: (raw + b"\xe9", raw.decode() + "é"))
    b.spoil("Source Port", NOT_UTF8, 3)
    return b.write(tmp / "bytes-in-text.csv")


def _label_bytes(raw: bytes) -> tuple[bytes, str]:
    """A label with a CP1252 byte: BENIGN + no-break space (0xA0, trimmed away) or the label
    + é (0xE9; the family is unchanged)."""
    text = raw.decode().strip()
    if text == "BENIGN":
        return raw + b"\xa0", "BENIGN"
    return raw + b"\xe9", text + "é"


def bytes_in_labels(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    b.recode("Label", b.rng.randint(3, 9), _label_bytes)
    return b.write(tmp / "bytes-in-labels.csv")


def unsw_bytes_everywhere(tmp: Path, seed: int) -> Damaged:
    """UNSW-NB15: numbers, the categorical columns, attack_cat and the 0/1 label (not a
    feature) with bytes that are not UTF-8."""
    b = _start("unsw", seed)
    b.spoil("dur", NOT_UTF8, 2)
    b.spoil("sbytes", NOT_UTF8 + ASCII_JUNK, 3)
    b.spoil("label", [b"1\xe9", b"\xff"], 2)
    b.recode("proto", 2, lambda raw: (raw + b"\xe9", raw.decode() + "é"))
    b.recode("state", 2, lambda raw: (b"\x81" + raw, "\ufffd" + raw.decode()))
    b.recode("attack_cat", 3, lambda raw: (raw + b"\xa0", raw.decode().strip()))
    return b.write(tmp / "unsw-bytes.csv")


def nul_in_cells(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    for column in b.rng.sample(b.piece.numeric_features(), 2):
        b.spoil(column, NUL_CELLS, b.rng.randint(1, 4))
    return b.write(tmp / "nul-in-cells.csv")


def truncated_last_line(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    b.cut_last_row()
    return b.write(tmp / "truncated-last-line.csv")


def _field_count_lines(b: Builder, k: int) -> None:
    for _ in range(k):
        row = list(b.piece.cells[b.rng.randrange(len(b.piece.cells))])
        cut = b.rng.choice([row[: len(row) // 2], [*row, b"1", b"2"], row[:1]])
        b.insert(b",".join(cut), "malformed")


def broken_lines_with_bytes(tmp: Path, seed: int) -> Damaged:
    """Lines of another field count holding bytes that are not UTF-8 (pyarrow cannot hand
    them to its skip handler), among rows with bad cells."""
    b = _start("cic", seed)
    b.spoil(b.rng.choice(b.piece.numeric_features()), NOT_UTF8, 3)
    for _ in range(b.rng.randint(1, 3)):
        row = list(b.piece.cells[b.rng.randrange(len(b.piece.cells))])
        b.insert(b",".join([*row[:7], b"\xe9\xff", *row[9:20]]), "malformed")
    return b.write(tmp / "broken-lines-with-bytes.csv")


def wrong_field_counts(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    _field_count_lines(b, b.rng.randint(2, 5))
    return b.write(tmp / "wrong-field-counts.csv")


def bom_crlf(tmp: Path, seed: int) -> Damaged:
    b = _start("unsw", seed)
    b.spoil("sload", ASCII_JUNK, 3)
    return b.write(tmp / "bom-crlf.csv", newline=b"\r\n", bom=True)


def cr_line_ends(tmp: Path, seed: int) -> Damaged:
    """Old Mac line ends (CR alone), bad cells in two columns."""
    b = _start("cic", seed)
    for column in b.rng.sample(b.piece.numeric_features(), 2):
        b.spoil(column, NOT_UTF8 + ASCII_JUNK, 2)
    return b.write(tmp / "cr-line-ends.csv", newline=b"\r")


def repeated_headers(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    for _ in range(b.rng.randint(1, 3)):
        b.insert(",".join(b.piece.header).encode(), "header")
    b.spoil("Flow IAT Mean", ASCII_JUNK, 4)
    return b.write(tmp / "repeated-headers.csv")


def mixed_encodings(tmp: Path, seed: int) -> Damaged:
    """Web-attack labels with the en dash in UTF-8 (as written) and in CP1252 (0x96, as in
    the original Kaggle files) in one file: one label text."""
    b = _start("cic-ids", seed)
    label = b.piece.index("Label")
    attacks = [i for i, r in enumerate(b.piece.cells) if b"Web Attack" in r[label]]
    for row in b.rng.sample(attacks, len(attacks) // 2):
        text = b.piece.cells[row][label].decode()
        b.piece.cells[row][label] = text.encode("cp1252")
        b.values.setdefault("Label", {})[row + 1] = text.strip()
        b.non_utf8.setdefault("Label", set()).add(row)
    return b.write(tmp / "mixed-encodings.csv")


def everything_gzip(tmp: Path, seed: int) -> Damaged:
    """Every kind of damage at once, in a gzip file with a BOM and CRLF line ends."""
    b = _start("cic", seed)
    b.cut_last_row()  # first: the rows damaged below are rows read
    columns = b.rng.sample(b.piece.numeric_features(), 5)
    b.spoil(columns[0], NOT_UTF8, 4)
    b.spoil(columns[1], ASCII_JUNK, 4)
    b.spoil(columns[2], NUL_CELLS, 2)
    b.spoil(columns[3], NOT_UTF8 + ASCII_JUNK, 3)
    b.spoil(columns[4], [b"n/a?"], 1)
    b.recode("Label", 3, _label_bytes)
    _field_count_lines(b, 3)
    b.insert(",".join(b.piece.header).encode(), "header")
    return b.write(tmp / "everything.csv.gz", newline=b"\r\n", bom=True)


TEXT_COLUMNS = {"Label", "attack_cat", *sc.CIC_STRING_IDENTIFIERS, *sc.UNSW_STRING_IDENTIFIERS}


def _parquet_columns(piece: Slice, text: tuple[str, ...] = ()) -> dict[str, pa.Array]:
    """The slice as typed columns: numbers as float64, the columns in ``text`` as text, the
    text columns as bytes."""
    out: dict[str, pa.Array] = {}
    for i, name in enumerate(piece.header):
        if name in TEXT_COLUMNS or name in sc.dataset(piece.dataset).categorical:
            out[name] = pa.array([row[i] for row in piece.cells], pa.binary())
        elif name in text:
            out[name] = pa.array([row[i].decode() for row in piece.cells], pa.string())
        else:
            out[name] = pa.array([_number(row[i].decode()) for row in piece.cells], pa.float64())
    return out


def _number(text: str) -> float | None:
    text = text.strip()
    return None if text in BLANKS else float(text)


def parquet_wrong_types(tmp: Path, seed: int) -> Damaged:
    """Columns stored with other types: a feature as text holding junk at some rows, one as
    int32, one as booleans, the label as bytes with CP1252 in some cells."""
    b = _start("cic", seed)
    finite = [c for c in b.piece.numeric_features() if c != "Fwd PSH Flags" and _all_finite(b, c)]
    text_col, int_col = b.rng.sample(finite, 2)
    b.spoil(text_col, ASCII_JUNK, 4)
    b.recode("Label", 3, _label_bytes)
    columns = _parquet_columns(b.piece, text=(text_col,))
    ints = [r[b.piece.index(int_col)] for r in b.piece.cells]
    columns[int_col] = pa.array([int(float(v)) % 1000 for v in ints], pa.int32())
    columns["Fwd PSH Flags"] = pa.array([i % 2 == 0 for i in range(len(ints))], pa.bool_())
    path = tmp / "wrong-types.parquet"
    pq.write_table(pa.table(columns), path)
    for row in b.piece.cells:  # the int32 and boolean columns hold only finite numbers now
        row[b.piece.index(int_col)] = b"1"
        row[b.piece.index("Fwd PSH Flags")] = b"1"
    return b.expected(path)


def _all_finite(b: Builder, column: str) -> bool:
    return all(_finite(r[b.piece.index(column)]) for r in b.piece.cells)


def zero_one_labels(tmp: Path, seed: int) -> Damaged:
    """UNSW-NB15 without attack_cat: the 0/1 label alone, cleaned for the dos task."""
    b = _start("unsw", seed)
    cat = b.piece.index("attack_cat")
    label = b.piece.index("label")
    benign = sum(row[label] == b"0" for row in b.piece.cells)
    b.piece.header.pop(cat)
    for row in b.piece.cells:
        row.pop(cat)
    out = b.write(tmp / "train.csv", args=["--task", "dos"])
    kept = [r for r in b.piece.cells if r[b.piece.index("label")] == b"0"]
    out.nonfinite_rows, out.nonfinite_by_column = nonfinite(
        Slice(out.dataset, b.piece.header, kept)
    )
    out.label_filter_drops = out.rows_read - benign
    out.warning = (
        str(out.path),
        f"the task 'dos' leaves one class (BENIGN: {benign:,})",
        "the labels found are 0, 1 (numeric 0/1 labels): use --task attack",
    )
    return out


# errors: the file is refused with one line naming it


def _refused(path: Path, *pieces: str) -> Damaged:
    return Damaged(path.stem, path, "cicids2017", error=(str(path), *pieces))


def empty_file(tmp: Path, seed: int) -> Damaged:
    path = tmp / "empty.csv"
    path.write_bytes(b"")
    return _refused(path, "the file is empty")


def header_only(tmp: Path, seed: int) -> Damaged:
    path = tmp / "header-only.csv"
    path.write_bytes(",".join(_start("cic", seed).piece.header).encode() + b"\r\n")
    return _refused(path, "no rows")


def _gzip_bytes(seed: int) -> bytes:
    b = _start("cic", seed)
    lines = [",".join(b.piece.header).encode(), *(b",".join(r) for r in b.piece.cells)]
    return gzip.compress(b"\n".join(lines) + b"\n", mtime=0)


def truncated_gzip(tmp: Path, seed: int) -> Damaged:
    data = _gzip_bytes(seed)
    path = tmp / "truncated.csv.gz"
    path.write_bytes(data[: len(data) * random.Random(seed).randint(3, 8) // 10])
    return _refused(path, "gzip", "cut short")


def corrupt_gzip(tmp: Path, seed: int) -> Damaged:
    data = bytearray(_gzip_bytes(seed))
    rng = random.Random(seed)
    start = rng.randrange(len(data) // 3, 2 * len(data) // 3)
    for i in range(start, start + 16):
        data[i] ^= 0xFF
    path = tmp / "corrupt.csv.gz"
    path.write_bytes(bytes(data))
    return _refused(path, "gzip")


def truncated_parquet(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(_parquet_columns(b.piece)), sink)
    data = sink.getvalue().to_pybytes()
    path = tmp / "truncated.parquet"
    path.write_bytes(data[: len(data) * b.rng.randint(2, 9) // 10])
    return _refused(path, "parquet")


def parquet_list_column(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    columns = _parquet_columns(b.piece)
    columns["Flow Duration"] = pa.array([[1.0, 2.0]] * len(b.piece.cells))
    path = tmp / "list-column.parquet"
    pq.write_table(pa.table(columns), path)
    return _refused(path, "column 'Flow Duration' holds List")


def nul_in_header(tmp: Path, seed: int) -> Damaged:
    b = _start("cic", seed)
    b.piece.header[3] = "Total\x00Length"
    b.write(tmp / "nul-header.csv")
    return _refused(tmp / "nul-header.csv", "NUL")


READ_CASES: dict[str, Callable[[Path, int], Damaged]] = {
    "bytes-in-numbers": bytes_in_numbers,
    "ascii-junk": ascii_junk,
    "bytes-in-text": bytes_in_text,
    "bytes-in-labels": bytes_in_labels,
    "unsw-bytes-everywhere": unsw_bytes_everywhere,
    "nul-in-cells": nul_in_cells,
    "truncated-last-line": truncated_last_line,
    "wrong-field-counts": wrong_field_counts,
    "broken-lines-with-bytes": broken_lines_with_bytes,
    "bom-crlf": bom_crlf,
    "cr-line-ends": cr_line_ends,
    "repeated-headers": repeated_headers,
    "mixed-encodings": mixed_encodings,
    "everything-gzip": everything_gzip,
    "parquet-wrong-types": parquet_wrong_types,
    "zero-one-labels-dos": zero_one_labels,
}
ERROR_CASES: dict[str, Callable[[Path, int], Damaged]] = {
    "empty-file": empty_file,
    "header-only": header_only,
    "truncated-gzip": truncated_gzip,
    "corrupt-gzip": corrupt_gzip,
    "truncated-parquet": truncated_parquet,
    "parquet-list-column": parquet_list_column,
    "nul-in-header": nul_in_header,
}
