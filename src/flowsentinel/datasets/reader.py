"""Read one flow file (CSV, CSV.gz or parquet) of either data set into canonical columns.

The header is sniffed first (a few kB): the dialect, the data set and the name mapping are
decided from it, then pyarrow's multi-threaded CSV reader parses the file with explicit column
types. Nothing here loops over rows: labels are decoded per *distinct* value.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import math
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import InputError
from flowsentinel.datasets import labels as lab

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_SNIFF_BYTES = 1 << 16
# Cell texts that mean "no value" in a number column (the fast path gives them to pyarrow, the
# lenient path applies the same list): blank, not a bad cell.
NULL_TEXTS: tuple[str, ...] = ("", "NaN", "nan", "NA", "N/A", "null", "NULL", "-", " ")
FIRST_ROWS = 5  # first row numbers kept per column and kind of bad cell
BadCell = Literal["unparseable", "non_utf8"]
_READ_ERRORS = (OSError, EOFError, zlib.error)


@dataclass
class FileReport:
    """What reading one file found and dropped."""

    path: str
    dataset: str
    dialect: str
    rows: int = 0
    encoding: str = "utf-8"
    malformed_rows_skipped: int = 0
    repeated_header_rows: int = 0
    unparseable_values: dict[str, int] = field(default_factory=dict)
    unparseable_rows: dict[str, list[int]] = field(default_factory=dict)
    non_utf8_values: dict[str, int] = field(default_factory=dict)
    non_utf8_rows: dict[str, list[int]] = field(default_factory=dict)
    blank_as_zero: dict[str, int] = field(default_factory=dict)
    unknown_columns: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)
    duplicate_column_mismatches: int | None = None
    label_mismatches: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def count_bad_cells(self, kind: BadCell, column: str, rows: np.ndarray) -> None:
        """Count bad cells of a column: ``rows`` are their positions among the rows read
        (sorted, 0-based); the first :data:`FIRST_ROWS` are kept as 1-based row numbers.

        ``unparseable``: a number column's cell that holds no number (it becomes missing);
        ``non_utf8``: a cell whose bytes are not UTF-8 (a text cell is decoded as CP1252, a
        number cell is also unparseable)."""
        if not rows.size:
            return
        counts, first = (
            (self.unparseable_values, self.unparseable_rows)
            if kind == "unparseable"
            else (self.non_utf8_values, self.non_utf8_rows)
        )
        counts[column] = counts.get(column, 0) + int(rows.size)
        numbers = {int(r) + 1 for r in rows[:FIRST_ROWS]} | set(first.get(column, []))
        first[column] = sorted(numbers)[:FIRST_ROWS]


def one_line(text: object) -> str:
    """The first non-blank line of a library's error text (pyarrow's span several lines)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(text).__name__


def _read_error(exc: BaseException, path: Path) -> InputError:
    """A one-line error for a file that cannot be read, naming what is wrong with a gzip file."""
    text = one_line(exc) if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if path.name.lower().endswith(".gz"):
        if isinstance(exc, EOFError) or "truncated" in low or "ended before" in low:
            return InputError("the gzip data is cut short (a truncated file)", path=path)
        if isinstance(exc, (zlib.error, gzip.BadGzipFile)) or "zlib" in low or "gzip" in low:
            return InputError(f"corrupt gzip data ({text})", path=path)
    return InputError(f"cannot read the file ({text})", path=path)


def is_supported(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in SUPPORTED_SUFFIXES)


# ------------------------------------------------------------------------------------------
# header sniffing


def _head_bytes(path: Path) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read(_SNIFF_BYTES)
        with path.open("rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except _READ_ERRORS as exc:
        raise _read_error(exc, path) from None


def _first_line(head: bytes, path: Path) -> tuple[list[str], str]:
    if not head.strip():
        raise InputError("the file is empty", path=path)
    if head.startswith(b"PAR1"):
        raise InputError("a parquet file named like a CSV: rename it to .parquet", path=path)
    line = head.split(b"\n", 1)[0].split(b"\r", 1)[0]  # CRLF, LF or (old Mac) CR ends
    # a NUL in the header means UTF-16 or binary; one in a data cell is a bad cell (counted)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in line:
        raise InputError(
            "not a text CSV in UTF-8 or CP1252 (its header holds NUL bytes: UTF-16 or binary?)",
            path=path,
        )
    encoding = "utf-8"
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        encoding = "cp1252"
        text = line.decode("cp1252", errors="replace")
    fields = next(csv.reader([text]), [])
    return fields, encoding


def _map_names(names: list[str], dataset: str) -> tuple[list[str | None], list[str]]:
    """Canonical name per column (None if unknown) and the unknown names."""
    mapped: list[str | None] = []
    unknown: list[str] = []
    seen: set[str] = set()
    ds = sc.dataset(dataset)
    for raw in names:
        canon = ds.canonical(raw)
        if canon == sc.CIC_DUPLICATE_OF and canon in seen:
            canon = sc.CIC_DUPLICATE_COLUMN  # the second "Fwd Header Length" of CICFlowMeter
        if canon is None or canon in seen:
            unknown.append(raw.strip() or "<blank>")
            mapped.append(None)
            continue
        seen.add(canon)
        mapped.append(canon)
    return mapped, unknown


def _score(names: list[str], aliases: dict[str, str]) -> int:
    return sum(sc.name_key(n) in aliases for n in names)


def detect_dataset(names: list[str]) -> str | None:
    """The data set a header belongs to, or None when it matches neither."""
    scores = [_score(names, d.aliases) for d in sc.ALL]
    best = max(range(len(scores)), key=scores.__getitem__)  # the first of equal scores
    return sc.ALL[best].name if scores[best] >= 3 else None


def _check_dataset(path: Path, names: list[str], dataset: str | None) -> str:
    found = detect_dataset(names)
    if found is None:
        shown = ", ".join(" ".join(n.split()) for n in names[:5])  # one line, whatever
        raise InputError(
            f"no known flow columns in the header (starts: {shown}); "
            "expected CIC-IDS2017 (CICFlowMeter) or UNSW-NB15 columns",
            path=path,
        )
    if dataset is not None and found != dataset:
        raise InputError(f"this looks like a {found} file, not {dataset}", path=path)
    return found


def _dialect(dataset: str, canon: list[str | None], names: list[str]) -> str:
    present = {c for c in canon if c}
    if sc.dataset(dataset) is sc.UNSW:
        return "unsw-partition" if "id" in present or "rate" in present else "unsw-raw-header"
    if any(sc.name_key(n) in {"totfwdpkts", "flowbytss"} for n in names):
        return "cicflowmeter-v4"
    snake = [n for n in names if n.strip() and n.strip() == sc.snake_case(n)]
    if len(snake) > len(names) // 2:  # flow_duration, flow_bytes_s, ...
        return "snake-case"
    if "Flow ID" in present:
        return "trafficlabelling"
    return "machinelearningcve"


# ------------------------------------------------------------------------------------------
# reading


def _column_types(dataset: str, canon: list[str | None]) -> dict[str, pa.DataType]:
    strings = sc.dataset(dataset).text_columns
    types: dict[str, pa.DataType] = {}
    for name in canon:
        if name is None:
            continue
        if name in (sc.LABEL, "attack_cat"):
            types[name] = pa.binary()  # decoded per distinct value (UTF-8 or CP1252)
        elif name in strings:
            types[name] = pa.string()
        else:
            types[name] = pa.float64()  # features, UNSW's 0/1 `label`
    return types


def _unique_name(names: list[str | None], unknown_prefix: str = "__unknown_") -> list[str]:
    return [n if n is not None else f"{unknown_prefix}{i}" for i, n in enumerate(names)]


def _read_csv_table(
    path: Path,
    canon: list[str | None],
    types: dict[str, pa.DataType],
    has_header: bool,
    report: FileReport,
    raw_names: list[str],
) -> pa.Table:
    """Parse with the explicit types (the fast path). When pyarrow names a column it cannot
    convert (text or bytes that are not UTF-8 in it), that column alone is read again as raw
    bytes, to be decoded and counted cell by cell (:func:`_decode_binary_columns`)."""
    column_names = _unique_name(canon)
    include = [n for n in canon if n is not None]
    types = dict(types)
    malformed: list[int] = []
    cleaned: pa.Buffer | None = None  # the text without repeated headers or broken lines
    lines_removed = 0
    headers_left = has_header  # repeated header lines may be inside the file
    lenient: list[str] = []
    raw_by_name = {c: raw for c, raw in zip(canon, raw_names, strict=False) if c is not None}

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # a quote never closed swallows the lines after it into one invalid row: count them
        malformed.append(1 + row.text.rstrip("\r\n").count("\n"))
        return "skip"

    for _attempt in range(8):
        malformed.clear()
        try:
            table = _parse_csv(
                _csv_source(path) if cleaned is None else pa.BufferReader(cleaned),
                column_names,
                include,
                types,
                has_header,
                on_invalid,
            )
            if lenient and headers_left and _holds_header(table, raw_by_name):
                headers_left = False  # header lines read as cells: remove them
                cleaned = _without_repeated_headers(_text_of(path, cleaned), report)
                continue
            report.malformed_rows_skipped = sum(malformed) + lines_removed
            return table
        except pa.ArrowInvalid as exc:
            message = str(exc)
            bad, value = _bad_column(message, column_names)
            if bad is None and "CSV parse error" in message and not lines_removed:
                # a broken line holding bytes that are not UTF-8: pyarrow cannot give it to
                # the skip handler; such lines are found by their commas and removed
                found = _without_broken_lines(_text_of(path, cleaned), len(column_names))
                if found is not None:
                    cleaned, lines_removed = found
                    continue
            if bad is None or bad in lenient:
                raise InputError(f"malformed CSV ({one_line(message)})", path=path) from None
            if (
                headers_left
                and value is not None
                and value.strip() in {n.strip() for n in raw_names}
            ):
                headers_left = False
                cleaned = _without_repeated_headers(_text_of(path, cleaned), report)
                continue  # concatenated CSV files
            # a column with bad cells: read as bytes, decoded and counted cell by cell; after
            # a few such columns, every number and text column is read that way (one more pass)
            lenient.append(bad)
            targets = (
                [bad]
                if len(lenient) < 4
                else [n for n, t in types.items() if t in (pa.float64(), pa.string())]
            )
            for name in targets:
                types[name] = pa.binary()
            lenient.extend(targets)
        except _READ_ERRORS as exc:
            raise _read_error(exc, path) from None
    raise InputError("malformed CSV: too many unreadable columns", path=path)


def _parse_csv(
    source: Path | pa.NativeFile,
    column_names: list[str],
    include: list[str],
    types: dict[str, pa.DataType],
    has_header: bool,
    on_invalid: Callable[[pacsv.InvalidRow], str],
) -> pa.Table:
    with _QUIET.during():
        return pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=column_names,
                skip_rows=1 if has_header else 0,
                block_size=1 << 20,  # blocks that stay in the CPU caches while parsed
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=include,
                strings_can_be_null=False,  # "-" is a real UNSW category
                null_values=list(NULL_TEXTS),
            ),
        )


class _QuietHandlerErrors:
    """pyarrow decodes a broken line as UTF-8 before it calls the skip handler; when that
    fails, it prints the error ("Exception ignored in ...", from one of its threads) and stops
    with a parse error, which :func:`_read_csv_table` then handles. While a parse runs, those
    prints are kept off the user's terminal; every other one goes to the hook found before."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.previous: Callable[[Any], object] = sys.unraisablehook

    def hook(self, info: Any) -> None:
        if not (self.active and isinstance(info.exc_value, UnicodeDecodeError)):
            self.previous(info)

    @contextlib.contextmanager
    def during(self) -> Iterator[None]:
        with self.lock:
            if sys.unraisablehook != self.hook:
                self.previous, sys.unraisablehook = sys.unraisablehook, self.hook
            self.active += 1
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1


_QUIET = _QuietHandlerErrors()


def _text_of(path: Path, cleaned: pa.Buffer | None) -> bytes:
    """The file's bytes (decompressed), or the cleaned text already made from them."""
    if cleaned is not None:
        return cleaned.to_pybytes()
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except _READ_ERRORS as exc:
        raise _read_error(exc, path) from None


def _csv_source(path: Path) -> Path | pa.NativeFile:
    """A plain file is parsed where the OS page cache holds it (memory-mapped: no copy into
    the process); a gzip file goes through pyarrow's decompressing reader."""
    if path.name.lower().endswith(".gz"):
        return path
    return pa.memory_map(str(path))


def _without_repeated_headers(data: bytes, report: FileReport) -> pa.Buffer:
    first, _, rest = data.partition(b"\n")
    header = first.rstrip(b"\r").removeprefix(b"\xef\xbb\xbf")  # repeats have no BOM
    count = rest.count(header)
    report.repeated_header_rows = count
    cleaned = rest.replace(header + b"\r\n", b"").replace(header + b"\n", b"")
    if cleaned.endswith(header):
        cleaned = cleaned[: -len(header)]
    return pa.py_buffer(first + b"\n" + cleaned)


def _without_broken_lines(data: bytes, n_fields: int) -> tuple[pa.Buffer, int] | None:
    """The text without its lines of another field count (not blank, not the header), and
    how many: commas counted per line with numpy. None when such a line holds a quote (its
    fields cannot be told by its commas)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [buf.size]))
    commas = np.flatnonzero(buf == ord(","))
    fields = 1 + np.searchsorted(commas, stops) - np.searchsorted(commas, starts)
    blank = stops - starts <= 1  # empty, or a lone CR (pyarrow skips empty lines)
    broken = np.flatnonzero((fields != n_fields) & ~blank)
    broken = broken[broken > 0]
    if not broken.size:
        return None
    pieces, previous = [], 0
    for start, stop in zip(starts[broken], stops[broken], strict=True):  # few lines
        if b'"' in data[start:stop]:
            return None
        pieces.append(data[previous:start])
        previous = stop + 1
    pieces.append(data[previous:])
    return pa.py_buffer(b"".join(pieces)), int(broken.size)


def _holds_header(table: pa.Table, raw_by_name: dict[str, str]) -> bool:
    """Whether a binary column holds its own header name: a header line repeated inside the
    file, read as a row because its columns were read as bytes."""
    for index, name in enumerate(table.column_names):
        column, raw = table.column(index), raw_by_name.get(name)
        if (
            raw is not None
            and _is_binary(column.type)
            and pc.any(pc.equal(column, pa.scalar(raw.encode(), column.type))).as_py()
        ):
            return True
    return False


def _bad_column(message: str, names: list[str]) -> tuple[str | None, str | None]:
    """The column (and the offending value) named by a pyarrow conversion error."""
    marker = "In CSV column #"
    if marker not in message:
        return None, None
    try:
        index = int(message.split(marker, 1)[1].split(":", 1)[0])
    except ValueError:
        return None, None
    value = (
        message.split("invalid value '", 1)[1].rsplit("'", 1)[0]
        if "invalid value '" in message
        else None
    )
    return (names[index] if 0 <= index < len(names) else None), value


def _read_parquet_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, *_READ_ERRORS) as exc:
        raise _parquet_error(exc, path) from None


def _parquet_error(exc: BaseException, path: Path) -> InputError:
    text = one_line(exc)
    if "magic bytes" in text:  # pyarrow's text repeats the path: say it in our words
        return InputError("not a parquet file, or one cut short (no parquet footer)", path=path)
    return InputError(f"corrupt or unreadable parquet ({text})", path=path)


# ------------------------------------------------------------------------------------------
# bad cells: bytes decoded cell by cell, text parsed as numbers, both counted per column


def _non_ascii_rows(column: pa.ChunkedArray) -> np.ndarray:
    """Positions (sorted) of the cells of a binary column holding a byte >= 0x80: the only
    cells that can be other than UTF-8 (one numpy pass over the bytes, no loop over rows)."""
    found: list[np.ndarray] = []
    base = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n and not (pa.types.is_binary(chunk.type) or pa.types.is_large_binary(chunk.type)):
            chunk = chunk.cast(pa.large_binary())
        buffers = chunk.buffers()
        if n and buffers[2] is not None:
            width = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
            offsets = np.frombuffer(buffers[1], dtype=width)[chunk.offset : chunk.offset + n + 1]
            data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
            high = np.flatnonzero(data >= 0x80) + offsets[0]
            if high.size:
                cells = np.searchsorted(offsets, high, side="right") - 1
                found.append(np.unique(cells) + base)
        base += n
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _decode_cells(column: pa.ChunkedArray, cp1252: bool) -> tuple[pa.ChunkedArray, np.ndarray]:
    """A binary column as text, and the positions of its cells that are not UTF-8.

    Such a cell is decoded as CP1252 in a text column (``cp1252``; the five bytes CP1252 leaves
    undefined become U+FFFD), and as UTF-8 with U+FFFD for the bad bytes in a number column
    (it then holds no number). Decoding is per distinct non-ASCII value."""
    rows = _non_ascii_rows(column)
    if not rows.size:
        return column.cast(pa.string()), rows
    raw = column.take(pa.array(rows)).combine_chunks()
    uniques = pc.unique(raw).drop_null()
    decoded: list[str] = []
    not_utf8: list[bytes] = []
    for value in uniques.to_pylist():
        try:
            decoded.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            not_utf8.append(value)
            decoded.append(value.decode("cp1252" if cp1252 else "utf-8", errors="replace"))
    text = pa.array(decoded, pa.string()).take(pc.index_in(raw, value_set=uniques))
    mask = np.zeros(len(column), dtype=bool)
    mask[rows] = True
    ascii_only = pc.if_else(pa.array(mask), pa.scalar(None, column.type), column)
    out = pc.replace_with_mask(ascii_only.cast(pa.string()), pa.array(mask), text)
    if not not_utf8:
        return out, np.zeros(0, dtype=np.int64)
    bad = pc.is_in(raw, value_set=pa.array(not_utf8, column.type)).to_numpy(zero_copy_only=False)
    return out, rows[bad]


def _decode_binary_columns(table: pa.Table, dataset: str, report: FileReport) -> pa.Table:
    """Every binary column but the labels (decoded per distinct value with the label rules)
    as text, the cells not in UTF-8 counted per column."""
    texts = sc.dataset(dataset).text_columns
    for index, name in enumerate(table.column_names):
        typ = table.schema.field(index).type
        if name in (sc.LABEL, "attack_cat") or not _is_binary(typ):
            continue
        text, not_utf8 = _decode_cells(table.column(index), cp1252=name in texts)
        report.count_bad_cells("non_utf8", name, not_utf8)
        if not_utf8.size and name in texts:
            report.encoding = "cp1252"
        table = table.set_column(index, name, text)
    return table


def _is_binary(typ: pa.DataType) -> bool:
    return pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_binary_view(typ)


def _parse_numbers(text: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """Text cells as float64, as pyarrow parses a number column (the texts of
    :data:`NULL_TEXTS` are missing values), and the positions of the cells that hold no
    number (missing now, counted)."""
    blank = text.is_null() | text.is_in(list(NULL_TEXTS))
    parsed = text.str.strip_chars(" \t").cast(pl.Float64, strict=False)
    bad = (~blank & parsed.is_null()).arg_true().to_numpy()
    number = pl.select(pl.when(blank).then(None).otherwise(parsed)).to_series()
    return number.alias(text.name), bad


def _label_texts(col: pl.Series, report: FileReport | None = None) -> dict[bytes, str | None]:
    """Distinct raw values of a binary label column → normalised text (UTF-8, else CP1252:
    those cells are counted per column and the file's encoding says cp1252)."""
    uniques = [u for u in col.unique().to_list() if u is not None]
    not_utf8 = [u for u in uniques if not _is_utf8(u)]
    if not_utf8 and report is not None:
        report.encoding = "cp1252"
        rows = col.is_in(pl.Series(not_utf8, dtype=pl.Binary).implode()).arg_true().to_numpy()
        report.count_bad_cells("non_utf8", col.name, rows)
    return {u: lab.normalize_label(lab.decode_label(u)) for u in uniques}


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_binary_labels(col: pl.Series, report: FileReport | None = None) -> pl.Series:
    return col.replace_strict(_label_texts(col, report), default=None, return_dtype=pl.String)


def _numeric_parse(df: pl.DataFrame, dataset: str, report: FileReport) -> pl.DataFrame:
    """Number columns as float64 (text parsed, the cells that hold no number counted and
    missing), text columns as text; a column of another kind (lists, structs) is an error."""
    texts = sc.dataset(dataset).text_columns
    exprs: list[pl.Expr | pl.Series] = []
    for name, dtype in df.schema.items():
        if dtype.is_nested():
            raise InputError(f"column '{name}' holds {dtype} values", path=report.path)
        if name in (sc.LABEL, "attack_cat"):
            continue
        if name in texts:
            if dtype != pl.String:
                exprs.append(pl.col(name).cast(pl.String))
        elif dtype == pl.String:
            number, bad = _parse_numbers(df.get_column(name))
            report.count_bad_cells("unparseable", name, bad)
            exprs.append(number)
        elif dtype == pl.Boolean or (dtype.is_numeric() and dtype != pl.Float64):
            exprs.append(pl.col(name).cast(pl.Float64))
        elif not dtype.is_numeric():
            raise InputError(f"column '{name}' holds {dtype} values, not numbers", path=report.path)
    if exprs:
        df = df.with_columns(exprs)
    return df


def _shrink_floats(df: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """Store a float64 column as float32 when every value survives the round trip exactly.

    The first rows are tried first: most columns that need float64 show it there, and are not
    tested in full for nothing."""
    strings = sc.dataset(dataset).text_columns | set(sc.dataset(dataset).label_columns)
    floats = [n for n, t in df.schema.items() if t == pl.Float64 and n not in strings]
    if floats and df.height:
        shrink = _exact_in_float32(df, _exact_in_float32(df.head(4096), floats))
        if shrink:
            df = df.with_columns(pl.col(shrink).cast(pl.Float32))
    return df


def _exact_in_float32(df: pl.DataFrame, names: list[str]) -> list[str]:
    if not names:
        return []
    row = df.select(
        (pl.col(n).cast(pl.Float32).cast(pl.Float64).eq_missing(pl.col(n)) | pl.col(n).is_nan())
        .all()
        .alias(n)
        for n in names
    ).row(0)
    return [n for n, ok in zip(names, row, strict=True) if ok]


# ------------------------------------------------------------------------------------------
# row facts


@dataclass
class RowFacts:
    """What the cleaning steps need to know of every row, computed once from the float64
    values while a file is read (and kept in the columnar cache beside its rows).

    ``complete``: every numeric feature finite and every categorical feature present (the
    non-finite step keeps these rows). ``row_hash``: ``hash_rows`` of the feature columns as
    stored (``hash_dtypes``), valid for polars ``hash_version``: the hashes of two files can be
    compared when their columns have the same types (else they are computed again).
    """

    features: tuple[str, ...]
    complete: np.ndarray
    row_hash: np.ndarray | None
    hash_version: str
    hash_dtypes: tuple[str, ...] = ()

    def meta(self) -> dict[str, object]:
        """The JSON-able part (the per-row arrays are stored as columns)."""
        return {
            "features": list(self.features),
            "hash_version": self.hash_version,
            "hash_dtypes": list(self.hash_dtypes),
        }


FACT_COMPLETE = "__complete"
FACT_HASH = "__row_hash"


def complete_rows(df: pl.DataFrame, features: list[str]) -> np.ndarray:
    """Rows whose numeric features are all finite and categorical features all present.

    A numeric column without nulls whose sum is finite holds no inf or NaN (one reduction, no
    mask); only the other columns are tested value by value."""
    if not df.height:
        return np.zeros(0, dtype=bool)
    schema = df.schema
    numeric = [c for c in features if schema[c].is_numeric()]
    others = [c for c in features if c not in numeric]
    suspects = list(others)
    if numeric:
        sums = df.select(pl.col(numeric).cast(pl.Float64).sum()).row(0)
        for c, total in zip(numeric, sums, strict=True):
            if df.get_column(c).null_count() or total is None or not math.isfinite(total):
                suspects.append(c)
    if not suspects:
        return np.ones(df.height, dtype=bool)
    checks = [
        pl.col(c).is_finite() if schema[c].is_numeric() else pl.col(c).is_not_null()
        for c in suspects
    ]
    mask = df.select(pl.all_horizontal(checks).fill_null(False)).to_series()
    return mask.to_numpy()


def row_facts(df: pl.DataFrame, dataset: str) -> RowFacts:
    """Facts of every row of a canonical frame (see :class:`RowFacts`)."""
    schema = df.schema
    features = [c for c in sc.dataset(dataset).features if c in schema]
    row_hash = df.select(features).hash_rows().to_numpy() if features and df.height else None
    return RowFacts(
        features=tuple(features),
        complete=complete_rows(df, features),
        row_hash=row_hash,
        hash_version=pl.__version__,
        hash_dtypes=tuple(str(schema[c]) for c in features),
    )


def _cic_labels(df: pl.DataFrame, report: FileReport, require_label: bool) -> pl.DataFrame:
    if sc.LABEL not in df.columns:
        if require_label:
            raise InputError(
                "no label column (expected 'Label'); pass --no-labels to read unlabelled flows",
                path=report.path,
            )
        return df.with_columns(
            pl.lit(None, pl.String).alias(sc.LABEL), pl.lit(None, pl.String).alias(sc.FAMILY)
        )
    col = df.get_column(sc.LABEL)
    if col.dtype == pl.Binary:  # label and family straight from the distinct raw values
        text = _label_texts(col, report)
        family = col.replace_strict(
            {u: lab.cic_family(t) for u, t in text.items()}, default=None, return_dtype=pl.String
        )
        col = col.replace_strict(text, default=None, return_dtype=pl.String)
        return df.with_columns(col.alias(sc.LABEL), family.alias(sc.FAMILY))
    else:
        col = col.cast(pl.String)
        uniques = col.unique().to_list()
        col = col.replace_strict(
            {u: lab.normalize_label(u) for u in uniques if u is not None},
            default=None,
            return_dtype=pl.String,
        )
    fam = {u: lab.cic_family(u) for u in col.unique().to_list() if u is not None}
    family = col.replace_strict(fam, default=None, return_dtype=pl.String)
    return df.with_columns(col.alias(sc.LABEL), family.alias(sc.FAMILY))


def _unsw_labels(df: pl.DataFrame, report: FileReport, require_label: bool) -> pl.DataFrame:
    has_cat, has_bin = "attack_cat" in df.columns, "label" in df.columns
    if not has_cat and not has_bin:
        if require_label:
            raise InputError(
                "no label column (expected 'attack_cat' and/or 'label'); pass --no-labels "
                "to read unlabelled flows",
                path=report.path,
            )
        return df.with_columns(
            pl.lit(None, pl.String).alias(sc.LABEL), pl.lit(None, pl.String).alias(sc.FAMILY)
        )
    if has_cat:
        cat = df.get_column("attack_cat")
        cat = _decode_binary_labels(cat, report) if cat.dtype == pl.Binary else cat.cast(pl.String)
        if has_bin:  # blank attack_cat is "Normal" where label says 0
            binary = df.get_column("label")
            cat = (
                pl.select(
                    pl.when(cat.is_null() & (binary == 0)).then(pl.lit("Normal")).otherwise(cat)
                )
                .to_series()
                .alias("attack_cat")
            )
        fam_map = {u: lab.unsw_family(u) for u in cat.unique().to_list() if u is not None}
        family = cat.replace_strict(fam_map, default=None, return_dtype=pl.String)
        label_text = cat
        if has_bin:
            binary = df.get_column("label")
            mismatch = ((family == sc.BENIGN) != (binary == 0)) & family.is_not_null()
            report.label_mismatches = int(mismatch.fill_null(False).sum())
    else:
        binary = df.get_column("label")
        label_text = binary.cast(pl.Int64).cast(pl.String)
        family = pl.select(
            pl.when(binary == 0)
            .then(pl.lit(sc.BENIGN))
            .when(binary == 1)
            .then(pl.lit("Attack"))
            .otherwise(None)
        ).to_series()
    out = df.drop([c for c in sc.UNSW_LABEL_COLUMNS if c in df.columns])
    return out.with_columns(label_text.alias(sc.LABEL), family.alias(sc.FAMILY))


def _finish(
    df: pl.DataFrame, dataset: str, report: FileReport, require_label: bool, with_facts: bool
) -> tuple[pl.DataFrame, RowFacts | None]:
    ds = sc.dataset(dataset)
    df = _numeric_parse(df, dataset, report)  # first: the copy below compares numbers
    if ds is sc.CIC and sc.CIC_DUPLICATE_COLUMN in df.columns:
        if sc.CIC_DUPLICATE_OF in df.columns:
            a, b = df.get_column(sc.CIC_DUPLICATE_COLUMN), df.get_column(sc.CIC_DUPLICATE_OF)
            report.duplicate_column_mismatches = int((~a.eq_missing(b)).sum())
            df = df.drop(sc.CIC_DUPLICATE_COLUMN)
        else:
            df = df.rename({sc.CIC_DUPLICATE_COLUMN: sc.CIC_DUPLICATE_OF})
    if ds is sc.UNSW:
        fills = [c for c in sc.UNSW_BLANK_MEANS_ZERO if c in df.columns]
        if report.dialect.startswith("unsw-raw"):
            for c in fills:
                n = df.get_column(c).null_count()
                if n:
                    report.blank_as_zero[c] = int(n)
            df = df.with_columns(pl.col(fills).fill_null(0))
    df = (_cic_labels if ds is sc.CIC else _unsw_labels)(df, report, require_label)
    features = ds.features
    report.missing_features = [f for f in features if f not in df.columns]
    report.rows = df.height
    ordered = [c for c in (*ds.identifiers, *features) if c in df.columns]
    df = _shrink_floats(df.select([*ordered, sc.LABEL, sc.FAMILY]), dataset)
    return df, (row_facts(df, dataset) if with_facts else None)


def read_file(
    path: str | Path, dataset: str | None = None, *, require_label: bool = True
) -> tuple[pl.DataFrame, FileReport]:
    """Read one CSV / CSV.gz / parquet file into canonical columns plus ``Label`` and ``Family``.

    Raises :class:`InputError` with a one-line message on anything it cannot read.
    """
    df, report, _ = read_file_with_facts(path, dataset, require_label=require_label, facts=False)
    return df, report


def read_file_with_facts(
    path: str | Path,
    dataset: str | None = None,
    *,
    require_label: bool = True,
    facts: bool = True,
) -> tuple[pl.DataFrame, FileReport, RowFacts | None]:
    """:func:`read_file`, plus the :class:`RowFacts` of the rows (when ``facts``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    if path.name.lower().endswith(".parquet"):
        table = _read_parquet_table(path)
        names = list(table.column_names)
        found = _check_dataset(path, names, dataset)
        canon, unknown = _map_names(names, found)
        report = FileReport(str(path), found, "parquet", unknown_columns=unknown)
        keep = [i for i, c in enumerate(canon) if c is not None]
        table = table.select(keep).rename_columns([canon[i] for i in keep])
        table = _decode_binary_columns(table, found, report)
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        if df.height == 0:
            raise InputError("the file holds no rows", path=path)
        frame, row = _finish(df, found, report, require_label, facts)
        return frame, report, row

    head = _head_bytes(path)
    names, encoding = _first_line(head, path)
    has_header = True
    if (
        dataset in (None, sc.UNSW.name)
        and detect_dataset(names) is None
        and len(names) == len(sc.UNSW_RAW_COLUMNS)
    ):
        names, has_header = list(sc.UNSW_RAW_COLUMNS), False  # headerless raw UNSW-NB15 file
    found = _check_dataset(path, names, dataset)
    canon, unknown = _map_names(names, found)
    dialect = "unsw-raw" if not has_header else _dialect(found, canon, names)
    report = FileReport(str(path), found, dialect, encoding=encoding, unknown_columns=unknown)
    table = _read_csv_table(path, canon, _column_types(found, canon), has_header, report, names)
    if table.num_rows == 0:
        raise InputError("the file holds a header but no rows", path=path)
    table = _decode_binary_columns(table, found, report)
    df = pl.from_arrow(table, rechunk=False)  # no copy: the row blocks of the parser stay
    assert isinstance(df, pl.DataFrame)
    frame, row = _finish(df, found, report, require_label, facts)
    return frame, report, row


def sniff(path: str | Path) -> dict[str, object]:
    """The data set and dialect of a file, from its header alone (cheap)."""
    path = Path(path)
    if path.name.lower().endswith(".parquet"):
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, *_READ_ERRORS) as exc:
            raise _parquet_error(exc, path) from None
        return {"dataset": detect_dataset(names), "dialect": "parquet"}
    names, encoding = _first_line(_head_bytes(path), path)
    found = detect_dataset(names)
    if found is None:
        return {"dataset": None, "dialect": None, "encoding": encoding}
    canon, _ = _map_names(names, found)
    return {"dataset": found, "dialect": _dialect(found, canon, names), "encoding": encoding}


__all__ = [
    "FileReport",
    "RowFacts",
    "complete_rows",
    "detect_dataset",
    "is_supported",
    "read_file",
    "read_file_with_facts",
    "row_facts",
    "sniff",
]
