"""Request bodies, declared once per served model.

For each served model a msgspec ``Flow`` struct is generated from its feature list: the
documented name of every feature (snake_case for CIC-IDS2017, as in the first seed's API; the
partition names for UNSW-NB15), numbers within ±1e30 (the models compute in float32),
categorical fields strings, nothing else; and a ``Batch`` struct, ``{"flows": [Flow, ...],
"model": name}``. That one declaration

- decodes and checks a body in one typed pass, without a dict per flow (a batch of 1,000 flows
  costs about as much as parsing its JSON);
- names every bad field of a body it refuses (:meth:`FlowBody.explain` walks the document with
  the struct's own field types: no second set of rules);
- is the JSON schema of the OpenAPI document (:meth:`FlowBody.schemas`).

Files (``/v1/scan``) are read by the data layer, which knows every spelling of a column; JSON
bodies use the documented names.

Examples
--------
>>> body = FlowBody("m", ["Flow Duration", "Flow Bytes/s"], [], "cicids2017")
>>> body.decode_flow(b'{"flow_duration": 3, "flow_bytes_s": 1.5}').numeric.tolist()
[[3.0, 1.5]]
>>> [e["loc"] for e in body.explain(b'{"flow_duration": "x"}', single=True)]
[['body', 'flow_duration'], ['body', 'flow_bytes_s']]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pydantic_core
from msgspec.structs import astuple

from flowsentinel.core import schema as sc
from flowsentinel.core.errors import LimitError

#: numbers beyond this are refused in requests (models work in float32) and clamped in files
VALUE_LIMIT = 1e30
MAX_ERRORS = 100


class FlowInputError(Exception):
    """A request whose content is wrong; ``errors`` name each bad field (answered with 422)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors[:MAX_ERRORS]
        if len(errors) > MAX_ERRORS:
            self.errors.append(
                {"loc": ["body"], "msg": f"{len(errors) - MAX_ERRORS} more errors", "type": "more"}
            )
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def error(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def clamp(values: np.ndarray) -> np.ndarray:
    """Finite values of a file clamped to ±:data:`VALUE_LIMIT` (NaN and ±inf left as they
    are: the pipeline treats them as missing)."""
    finite = np.isfinite(values)
    if finite.all() and (np.abs(values) <= VALUE_LIMIT).all():
        return values
    out = values.copy()
    out[finite] = np.clip(out[finite], -VALUE_LIMIT, VALUE_LIMIT)
    return out


@dataclass
class Parsed:
    """Checked flows: numeric values in feature order, categorical values as text."""

    numeric: np.ndarray  # (n, number of numeric features) float64
    categorical: dict[str, list[str]]

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name) if part)


class FlowBody:
    """The request declaration of one served model (see the module's description)."""

    def __init__(
        self,
        key: str,
        features: list[str],
        categorical: list[str],
        dataset: str,
        title: str = "",
    ) -> None:
        cats = set(categorical)
        self.key = key
        self.numeric = [f for f in features if f not in cats]
        self.categorical = [f for f in features if f in cats]
        self.display = {f: sc.dataset(dataset).json_name(f) for f in features}
        self.flow = self._flow_struct(_title(key), dataset, title or key)
        self.batch = msgspec.defstruct(
            f"PredictRequest{_title(key)}",
            [
                ("flows", list[self.flow]),  # type: ignore[name-defined]  # a struct made at run time
                ("model", Literal[key] | None, None),
            ],
            forbid_unknown_fields=True,
            kw_only=True,
        )
        self.batch.__doc__ = f"A batch of flows for model {key} (`model` optional)."
        self._flow_decoder = msgspec.json.Decoder(self.flow)
        # the batch struct is made at run time: its fields (``flows``) are unknown to mypy
        self._batch_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.batch)
        self._fields = msgspec.structs.fields(self.flow)

    def _flow_struct(self, name: str, dataset: str, title: str) -> type[msgspec.Struct]:
        number = Annotated[float, msgspec.Meta(ge=-VALUE_LIMIT, le=VALUE_LIMIT)]
        ordered = [*self.numeric, *self.categorical]
        fields = [
            (f"f{i}", Annotated[number if i < len(self.numeric) else str, msgspec.Meta(
                description=feature
            )])
            for i, feature in enumerate(ordered)
        ]  # fmt: skip
        rename = {f"f{i}": self.display[feature] for i, feature in enumerate(ordered)}
        flow = msgspec.defstruct(
            f"Flow{name}", fields, rename=rename, forbid_unknown_fields=True, gc=False, kw_only=True
        )
        flow.__doc__ = f"One {dataset} flow for model {title}: every feature, nothing else."
        return flow

    # --- decoding -----------------------------------------------------------------------------
    def _parsed(self, flows: list[Any]) -> Parsed:
        rows = [astuple(f) for f in flows]
        n = len(self.numeric)
        cats: dict[str, list[str]] = {}
        if self.categorical:
            cats = {c: [r[n + j] for r in rows] for j, c in enumerate(self.categorical)}
            rows = [r[:n] for r in rows]
        numeric = np.array(rows, dtype=np.float64).reshape(len(flows), n)
        return Parsed(numeric, cats)

    def decode_flow(self, body: bytes) -> Parsed:
        """One flow (the seed routes); refused bodies raise :class:`FlowInputError`."""
        try:
            return self._parsed([self._flow_decoder.decode(body)])
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            raise FlowInputError(self.explain(body, single=True)) from None

    def decode_batch(self, body: bytes, max_batch: int) -> Parsed | None:
        """A batch, or ``None`` when the body is not this model's batch (see
        :meth:`explain`); past the server's batch limit, :class:`LimitError` (413)."""
        try:
            flows = self._batch_decoder.decode(body).flows
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
        if len(flows) > max_batch:
            raise LimitError(f"{len(flows):,} flows in one batch; the limit is {max_batch:,}")
        return self._parsed(flows)

    # --- explaining a refused body ------------------------------------------------------------
    def explain(self, body: bytes, *, single: bool) -> list[dict[str, Any]]:
        """Every problem of a body this declaration refuses, each with its place."""
        if not body.strip():
            return [error(["body"], "a JSON body is required", "missing")]
        try:
            doc = _lenient_json(body)
        except ValueError as exc:
            return [error(["body"], f"invalid JSON: {exc}", "json_invalid")]
        if single:
            return self._flow_errors(doc, ["body"])
        if type(doc) is not dict:
            return [error(["body"], "must be a JSON object", "dict_type")]
        problems = [error(["body", k], "unknown field", "extra_forbidden") for k in doc]
        problems = [p for p in problems if p["loc"][1] not in ("flows", "model")]
        if doc.get("model") not in (None, self.key):
            problems.append(error(["body", "model"], f"must be {self.key!r}", "literal_error"))
        flows = doc.get("flows")
        if flows is None:
            problems.append(error(["body", "flows"], "field required", "missing"))
        elif type(flows) is not list:
            problems.append(error(["body", "flows"], "must be a list of flows", "list_type"))
        else:
            for i, flow in enumerate(flows):
                problems.extend(self._flow_errors(flow, ["body", "flows", i]))
                if len(problems) > MAX_ERRORS:
                    break
        return problems

    def _flow_errors(self, flow: Any, loc: list[Any]) -> list[dict[str, Any]]:
        if type(flow) is not dict:
            return [error(loc, "a flow must be a JSON object", "dict_type")]
        problems = []
        for field in self._fields:
            name = field.encode_name
            if name not in flow:
                problems.append(error([*loc, name], "field required", "missing"))
                continue
            value = flow[name]
            if type(value) is float and not math.isfinite(value):
                problems.append(error([*loc, name], "must be a finite number", "finite_number"))
                continue
            try:
                msgspec.convert(value, field.type)
            except msgspec.ValidationError as exc:
                problems.append(error([*loc, name], *_message(str(exc))))
        known = {field.encode_name for field in self._fields}
        unknown = [k for k in flow if k not in known]
        problems += [error([*loc, k], "unknown field", "extra_forbidden") for k in unknown]
        return problems

    def fits(self, body: bytes) -> int:
        """How many of this model's fields the first flow of a refused batch holds (to explain
        the body with the model it was meant for)."""
        try:
            doc = _lenient_json(body)
        except ValueError:
            return 0
        flows = doc.get("flows") if type(doc) is dict else None
        first = flows[0] if type(flows) is list and flows and type(flows[0]) is dict else {}
        return sum(1 for field in self._fields if field.encode_name in first)

    # --- documentation ------------------------------------------------------------------------
    def schemas(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """``(flow ref, batch ref, component schemas)`` for the OpenAPI document."""
        (flow, batch), components = msgspec.json.schema_components(
            [self.flow, self.batch], ref_template="#/components/schemas/{name}"
        )
        return flow, batch, components


def _lenient_json(body: bytes) -> Any:
    """The document of a refused body, reading the ``NaN`` and ``Infinity`` literals that some
    JSON writers emit (Python's among them) so that the field holding one can be named; a body
    that is not JSON even so raises ``ValueError`` with the position of the problem."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        first = exc
    try:
        return pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError:
        raise ValueError(str(first)) from None


def _message(text: str) -> tuple[str, str]:
    """A msgspec validation message (without its ``- at $...`` tail) and an error type."""
    text = text.split(" - at `", 1)[0]
    if "got `" in text and "Expected `float`" in text:
        return "must be a number" + text.split("Expected `float`", 1)[1], "float_type"
    if "got `" in text and "Expected `str`" in text:
        return "must be a string" + text.split("Expected `str`", 1)[1], "string_type"
    if "<=" in text or ">=" in text or "out of range" in text:
        return f"must be between -{VALUE_LIMIT:g} and {VALUE_LIMIT:g}", "out_of_range"
    return text, "value_error"
