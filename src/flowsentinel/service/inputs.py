"""Request bodies → model input, with every bad field named.

JSON flows are checked here rather than by a pydantic model built on the exact field names, so
that any known spelling of a feature is accepted (``flow_bytes_s``, ``Flow Bytes/s``,
``Flow Byts/s``...), and so that a batch of 10,000 flows costs one pass over plain dicts. The
rules match the generated pydantic models that document the routes (:mod:`.schemas`): every
feature required, unknown names refused, numbers finite and within ±1e30, categorical fields
strings. Errors use FastAPI's shape: ``{"loc": [...], "msg": ..., "type": ...}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pydantic_core

from flowsentinel.datasets import schema as sc

#: numbers beyond this are refused in requests (models work in float32) and clamped in files
VALUE_LIMIT = 1e30
MAX_ERRORS = 100
_NUMBER_TYPES = frozenset({int, float})


class FlowInputError(Exception):
    """A request whose content is wrong; ``errors`` name each bad field (answered with 422)."""

    def __init__(self, errors: list[dict[str, Any]], status_code: int = 422) -> None:
        self.errors = errors[:MAX_ERRORS]
        if len(errors) > MAX_ERRORS:
            self.errors.append(
                {"loc": ["body"], "msg": f"{len(errors) - MAX_ERRORS} more errors", "type": "more"}
            )
        self.status_code = status_code
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def error(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def parse_json(body: bytes) -> Any:
    """The JSON document of a request body (422 when it is not JSON).

    Read by orjson (about twice as fast as pydantic-core on a batch of 10,000 flows); a body
    orjson refuses (``NaN`` / ``Infinity`` literals, integers beyond 64 bits, bad JSON) is read
    again by pydantic-core, which accepts those literals so that the field holding them can be
    named in the answer, and whose message names what is wrong with a bad document.
    """
    if not body.strip():
        raise FlowInputError([error(["body"], "a JSON body is required", "missing")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        text = str(exc).splitlines()[0] if str(exc) else "not JSON"
        raise FlowInputError([error(["body"], f"invalid JSON: {text}", "json_invalid")]) from None


def display_name(feature: str, dataset: str) -> str:
    """The JSON name of a feature: snake_case for CIC-IDS2017 (the first seed's API), the
    partition name for UNSW-NB15 (already snake_case)."""
    return sc.snake_case(feature) if dataset == "cicids2017" else feature


@dataclass
class Parsed:
    """Validated flows: numeric values in feature order, categorical values as text."""

    numeric: np.ndarray  # (n, len(numeric features)) float64
    categorical: dict[str, list[str]]

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


@dataclass
class _Plan:
    numeric: Any  # itemgetter or None
    n_numeric: int
    categorical: list[tuple[str, str]]  # (input key, canonical)
    key_of: dict[str, str]  # canonical → input key
    unknown: list[str]
    missing: list[str]


class FlowParser:
    """Checks JSON flow records against one model's features."""

    def __init__(
        self,
        features: list[str],
        categorical: list[str],
        dataset: str,
        canonical_columns: Any,
    ) -> None:
        self.features = list(features)
        self.categorical = [f for f in features if f in set(categorical)]
        self.numeric = [f for f in features if f not in set(categorical)]
        self.dataset = dataset
        self._canonical_columns = canonical_columns
        self.display = {f: display_name(f, dataset) for f in features}
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def _plan(self, keys: tuple[str, ...]) -> _Plan:
        plan = self._plans.get(keys)
        if plan is not None:
            return plan
        mapping, unknown = self._canonical_columns(list(keys))
        key_of: dict[str, str] = {}
        for key, canonical in mapping.items():
            key_of.setdefault(canonical, key)
        missing = [f for f in self.features if f not in key_of]
        num_keys = [key_of[f] for f in self.numeric if f in key_of]
        getter = itemgetter(*num_keys) if len(num_keys) > 1 and not missing else None
        plan = _Plan(
            getter,
            len(num_keys),
            [(key_of[f], f) for f in self.categorical if f in key_of],
            key_of,
            [str(u) for u in unknown],
            missing,
        )
        if len(self._plans) < 256:  # requests with odd key sets must not grow memory
            self._plans[keys] = plan
        return plan

    def input_keys(self, keys: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
        """The request keys of the numeric and the categorical features, in feature order,
        when ``keys`` (a flow's field names) name every feature exactly once and nothing
        else; otherwise ``None``."""
        plan = self._plan(keys)
        if plan.unknown or plan.missing or len(set(keys)) != len(keys):
            return None
        if len(plan.key_of) != len(keys):  # two spellings of one feature
            return None
        return [plan.key_of[f] for f in self.numeric], [key for key, _ in plan.categorical]

    def parse(self, records: list[Any], loc: list[Any]) -> Parsed:
        """``records`` (dicts) → :class:`Parsed`; raises :class:`FlowInputError` naming every
        missing, unknown, wrong-typed, NaN, infinite or out-of-range field."""
        if len(records) >= _UNIFORM_MIN:
            parsed = self._parse_uniform(records)
            if parsed is not None:
                return parsed
        errors: list[dict[str, Any]] = []
        rows: list[Any] = []
        cats: dict[str, list[str]] = {c: [] for c in self.categorical}
        single = len(records) == 1
        for i, rec in enumerate(records):
            where = loc if single else [*loc, i]
            if type(rec) is not dict:
                errors.append(error(where, "a flow must be a JSON object", "dict_type"))
                continue
            plan = self._plan(tuple(rec))
            if plan.unknown or plan.missing:
                for key in plan.unknown:
                    errors.append(error([*where, key], "unknown field", "extra_forbidden"))
                for f in plan.missing:
                    errors.append(error([*where, self.display[f]], "field required", "missing"))
                self._check_present(rec, plan, where, errors)
                if len(errors) > MAX_ERRORS:
                    break
                continue
            if plan.numeric is not None:
                values = plan.numeric(rec)
            else:
                values = tuple(rec[plan.key_of[f]] for f in self.numeric)
            cat_values = [rec[key] for key, _ in plan.categorical]
            if not _NUMBER_TYPES.issuperset(map(type, values)) or any(
                type(v) is not str for v in cat_values
            ):
                self._check_present(rec, plan, where, errors)  # names every bad field
                if len(errors) > MAX_ERRORS:
                    break
                continue
            for (_, canonical), value in zip(plan.categorical, cat_values, strict=True):
                cats[canonical].append(value)
            if len(errors) > MAX_ERRORS:
                break
            rows.append(values)
        if errors:
            raise FlowInputError(errors)
        numeric = self._matrix(rows)
        bad = ~(np.abs(numeric) <= VALUE_LIMIT)  # NaN compares False: bad too
        if bad.any():
            for i, j in zip(*np.nonzero(bad), strict=True):
                v = float(numeric[i, j])
                where = loc if single else [*loc, int(i)]
                key = self._key_for(records[int(i)], self.numeric[int(j)])
                if math.isnan(v) or math.isinf(v):
                    errors.append(error([*where, key], "must be a finite number", "finite_number"))
                else:
                    errors.append(
                        error(
                            [*where, key],
                            f"must be between -{VALUE_LIMIT:g} and {VALUE_LIMIT:g}",
                            "out_of_range",
                        )
                    )
                if len(errors) > MAX_ERRORS:
                    break
            raise FlowInputError(errors)
        return Parsed(numeric, cats)

    def _parse_uniform(self, records: list[Any]) -> Parsed | None:
        """The common batch, checked column-wise at C speed: every record a dict with the first
        record's keys, every number an int or float, every categorical value a string, every
        value finite and in range. Anything else returns ``None`` and the record-by-record
        path names the problems, so answers are the same either way."""
        first = records[0]
        if type(first) is not dict or not _DICT_ONLY.issuperset(map(type, records)):
            return None
        plan = self._plan(tuple(first))
        if plan.unknown or plan.missing or not _same_sizes(records, len(first)):
            return None
        try:  # a record holding other keys (same count) lacks one of these: KeyError
            if self.numeric:
                num_keys = [plan.key_of[f] for f in self.numeric]
                values = list(map(itemgetter(*num_keys), records))
                flat = chain.from_iterable(values) if len(num_keys) > 1 else iter(values)
                if not _NUMBER_TYPES.issuperset(map(type, flat)):
                    return None
                flat = chain.from_iterable(values) if len(num_keys) > 1 else iter(values)
                numeric = np.fromiter(flat, np.float64, len(records) * len(num_keys))
                numeric = numeric.reshape(len(records), len(num_keys))
            else:
                numeric = np.empty((len(records), 0), dtype=np.float64)
            cats: dict[str, list[str]] = {}
            for key, canonical in plan.categorical:
                column = list(map(itemgetter(key), records))
                if not _STR_ONLY.issuperset(map(type, column)):
                    return None
                cats[canonical] = column
        except (KeyError, OverflowError):
            return None
        if not within_limits(numeric):
            return None
        return Parsed(numeric, cats)

    def _check_present(
        self, rec: dict[str, Any], plan: _Plan, where: list[Any], errors: list[dict[str, Any]]
    ) -> None:
        """Type and value errors of the fields a flow does hold (when others are missing)."""
        categorical = set(self.categorical)
        for canonical, key in plan.key_of.items():
            value = rec[key]
            if canonical in categorical:
                if type(value) is not str:
                    errors.append(error([*where, key], "must be a string", "string_type"))
            elif type(value) not in _NUMBER_TYPES:
                errors.append(error([*where, key], "must be a number", "float_type"))
            else:
                number = _to_float(value)
                if math.isnan(number) or math.isinf(number):
                    errors.append(error([*where, key], "must be a finite number", "finite_number"))
                elif abs(number) > VALUE_LIMIT:
                    errors.append(
                        error(
                            [*where, key],
                            f"must be between -{VALUE_LIMIT:g} and {VALUE_LIMIT:g}",
                            "out_of_range",
                        )
                    )

    def _key_for(self, record: dict[str, Any], feature: str) -> str:
        return self._plan(tuple(record)).key_of.get(feature, self.display[feature])

    def _matrix(self, rows: list[Any]) -> np.ndarray:
        n_num = len(self.numeric)
        if not rows or n_num == 0:
            return np.empty((len(rows), n_num), dtype=np.float64)
        try:
            return np.array(rows, dtype=np.float64).reshape(len(rows), n_num)
        except OverflowError:  # an integer beyond float range: mark it infinite
            return np.array(
                [[_to_float(v) for v in row] for row in rows], dtype=np.float64
            ).reshape(len(rows), n_num)


#: batches at least this long try the column-wise check first
_UNIFORM_MIN = 16
_DICT_ONLY = frozenset({dict})
_STR_ONLY = frozenset({str})


def within_limits(numeric: np.ndarray) -> bool:
    """Every value finite and within ±:data:`VALUE_LIMIT` (NaN compares False: refused)."""
    return bool((np.abs(numeric) <= VALUE_LIMIT).all())


def _same_sizes(records: list[dict[str, Any]], size: int) -> bool:
    sizes = np.fromiter(map(len, records), np.int64, len(records))
    return bool((sizes == size).all())


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def clamp(values: np.ndarray) -> np.ndarray:
    """Finite values of a file clamped to ±:data:`VALUE_LIMIT` (NaN and ±inf left as they
    are: the pipeline treats them as missing)."""
    finite = np.isfinite(values)
    if finite.all() and (np.abs(values) <= VALUE_LIMIT).all():
        return values
    out = values.copy()
    out[finite] = np.clip(out[finite], -VALUE_LIMIT, VALUE_LIMIT)
    return out
