"""The column-wise batch check of ``FlowParser`` against its record-by-record path, and the
two JSON readers of ``parse_json``: the same answers, errors included, whichever path runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from flowsentinel.service import inputs
from flowsentinel.service.inputs import FlowInputError, FlowParser, parse_json

NUMERIC = ["dur", "sbytes", "rate"]
CATEGORICAL = ["service", "state"]


def _canonical(columns: list[str]) -> tuple[dict[str, str], list[str]]:
    known = set(NUMERIC + CATEGORICAL)
    return {c: c for c in columns if c in known}, [c for c in columns if c not in known]


def _parser() -> FlowParser:
    return FlowParser(NUMERIC + CATEGORICAL, CATEGORICAL, "unsw-nb15", _canonical)


def _records(n: int = 100, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "dur": float(rng.random()),
            "sbytes": int(rng.integers(0, 10**6)),  # ints and floats mixed, as JSON gives them
            "rate": float(rng.random() * 1e5),
            "service": str(rng.choice(["-", "dns", "http"])),
            "state": str(rng.choice(["FIN", "INT"])),
        }
        for _ in range(n)
    ]


def _both(records: list[Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """(column-wise result, record-by-record result): a Parsed or the FlowInputError's errors."""

    def run() -> Any:
        try:
            return _parser().parse(records, ["body", "flows"])
        except FlowInputError as exc:
            return exc.errors

    fast = run()
    with monkeypatch.context() as m:
        m.setattr(inputs, "_UNIFORM_MIN", 10**9)  # the record-by-record path only
        slow = run()
    return fast, slow


def test_a_regular_batch_gives_the_same_matrix_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records()
    fast, slow = _both(records, monkeypatch)
    assert fast.numeric.dtype == np.float64 and fast.numeric.shape == (100, 3)
    np.testing.assert_array_equal(fast.numeric, slow.numeric)
    assert fast.categorical == slow.categorical
    assert fast.numeric[7, 1] == records[7]["sbytes"]
    assert fast.categorical["state"][9] == records[9]["state"]


BAD_VALUES: list[tuple[str, Any]] = [
    ("sbytes", "12"),  # a number as text
    ("sbytes", True),  # a bool is not a number
    ("rate", None),
    ("rate", math.nan),
    ("rate", math.inf),
    ("dur", 1e31),  # beyond the value limit
    ("sbytes", 10**400),  # beyond float range
    ("service", 5),  # categorical values are strings
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_a_bad_value_anywhere_is_named_as_before(
    field: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _records()
    records[57][field] = value
    fast, slow = _both(records, monkeypatch)
    assert isinstance(fast, list) and fast == slow
    assert fast[0]["loc"] == ["body", "flows", 57, field]


def test_irregular_records_are_named_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records()
    del records[10]["rate"]  # missing
    records[20]["extra"] = 1  # unknown
    records[30]["other"] = records[30].pop("dur")  # same number of keys, one unknown
    records[40] = [1, 2, 3]  # not an object
    reordered = _records(1, seed=9)[0]
    records[50] = dict(reversed(list(reordered.items())))  # other key order: still fine
    fast, slow = _both(records, monkeypatch)
    assert isinstance(fast, list) and fast == slow
    locs = [tuple(e["loc"]) for e in fast]
    assert ("body", "flows", 10, "rate") in locs and ("body", "flows", 20, "extra") in locs
    assert ("body", "flows", 30, "other") in locs and ("body", "flows", 40) in locs
    assert not any(loc[2] == 50 for loc in locs if len(loc) > 2)


def test_a_reordered_record_is_read_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records()
    records[50] = dict(reversed(list(records[50].items())))
    fast, slow = _both(records, monkeypatch)
    np.testing.assert_array_equal(fast.numeric, slow.numeric)
    assert fast.numeric[50, 0] == records[50]["dur"]


def test_parse_json_reads_what_either_reader_accepts() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    nan = parse_json(b'{"a": NaN, "b": Infinity}')  # orjson refuses these literals
    assert math.isnan(nan["a"]) and nan["b"] == math.inf
    big = parse_json(b'{"a": ' + b"9" * 30 + b"}")  # beyond 64 bits: the same float
    assert float(big["a"]) == float("9" * 30)
    huge = parse_json(b'{"flows": [{"dur": 1, "sbytes": 1' + b"0" * 400 + b', "rate": 2, '
                      b'"service": "-", "state": "FIN"}]}')  # fmt: skip
    with pytest.raises(FlowInputError) as info:
        _parser().parse(huge["flows"], ["body", "flows"])
    assert info.value.errors[0]["type"] == "finite_number"
    with pytest.raises(FlowInputError) as info:
        parse_json(b'{"a": [1, 2')
    assert info.value.errors[0]["type"] == "json_invalid"
    assert info.value.errors[0]["msg"].startswith("invalid JSON: ")
    with pytest.raises(FlowInputError, match="a JSON body is required"):
        parse_json(b"  ")
