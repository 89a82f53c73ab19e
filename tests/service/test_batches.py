"""The typed decode of ``/v1/predict`` bodies (:mod:`flowsentinel.service.batches`) against the
ordinary path: the same numbers bit for bit, and every unusual body left to the ordinary path
(so that its answers, errors included, are unchanged)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import CIC_NAME, SEED_B_ATTACK, SEED_B_NORMAL, UNSW_NAME, cic_record
from flowsentinel.service.app import create_app
from flowsentinel.service.batches import HotBatch
from flowsentinel.service.config import ServiceSettings
from flowsentinel.service.engine import ModelSet
from flowsentinel.service.inputs import parse_json

# Text forms of JSON numbers whose float value must come out exactly as Python reads them.
TRICKY = [
    "0", "-0", "-0.0", "1E5", "1e-5", "2.5e+3", "5e-324", "2.2250738585072014e-308",
    "9007199254740993", "18446744073709551615", "18446744073709551617",
    "123456789012345678901234567890", "0.1", "0.30000000000000004", "1.7976931348623157e29",
    "-999999999999999999999", "4.35679e-7", "1000000000000000000000000000000",
]  # fmt: skip


def _numbers(n: int, seed: int) -> list[str]:
    """Random JSON number texts: 17-digit reprs over many magnitudes, integers, tricky forms."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(repr(float(rng.lognormal(0, 12)) * float(rng.choice([-1, 1]))))
        elif kind == 1:
            out.append(str(int(rng.integers(-(2**62), 2**62))))
        elif kind == 2:
            out.append(f"{rng.random():.{int(rng.integers(1, 20))}g}")
        else:
            out.append(TRICKY[int(rng.integers(len(TRICKY)))])
    return [t if abs(float(t)) <= 1e30 else "1" for t in out]


def _body(records: list[dict[str, Any]], numbers: list[str], model: str | None = None) -> bytes:
    """A batch whose numeric values are written as the given texts, in record key order."""
    it = iter(numbers)
    parts = []
    for rec in records:
        fields = []
        for k, v in rec.items():
            value = json.dumps(v) if isinstance(v, str) else next(it)
            fields.append(f"{json.dumps(k)}: {value}")
        parts.append("{" + ", ".join(fields) + "}")
    extra = f', "model": {json.dumps(model)}' if model is not None else ""
    return ('{"flows": [' + ", ".join(parts) + "]" + extra + "}").encode()


def _records(kind: str, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    base = [cic_record()] if kind == "cic" else [SEED_B_NORMAL, SEED_B_ATTACK]
    out = []
    for i in range(n):
        rec = dict(base[i % len(base)])
        keys = list(rec)
        if i % 3 == 2:  # the same fields in another order
            keys = [keys[j] for j in rng.permutation(len(keys))]
        out.append({k: rec[k] for k in keys})
    return out


def _ordinary(model_set: ModelSet, body: bytes) -> tuple[Any, Any]:
    flows = parse_json(body)["flows"]
    served = model_set.get(CIC_NAME) if "flow_duration" in flows[0] else model_set.get(UNSW_NAME)
    return served, served.parser.parse(flows, ["body", "flows"])


def _learnt(model_set: ModelSet, kind: str, model: str | None = None) -> HotBatch:
    hot = HotBatch()
    records = _records(kind, 20, seed=1)
    served, _ = _ordinary(model_set, _body(records, _numbers(10_000, 0)))
    hot.learn(served, records[0], model)
    return hot


@pytest.mark.parametrize("kind", ["cic", "unsw"])
def test_the_typed_decode_reads_what_the_ordinary_path_reads(model_set, kind) -> None:
    hot = _learnt(model_set, kind)
    records = _records(kind, 300, seed=2)
    body = _body(records, _numbers(300 * 45, seed=3))
    decoded = hot.decode(body, max_batch=1000)
    assert decoded is not None, "a batch with the learnt fields takes the typed decode"
    served, parsed = decoded
    expected_served, expected = _ordinary(model_set, body)
    assert served is expected_served
    assert parsed.numeric.dtype == np.float64 and parsed.numeric.shape == expected.numeric.shape
    # bit for bit, so that -0.0 and 0.0 are told apart
    np.testing.assert_array_equal(parsed.numeric.view(np.uint64), expected.numeric.view(np.uint64))
    assert parsed.categorical == expected.categorical
    if kind == "unsw":
        assert set(parsed.categorical) == {"service", "state"}
    np.testing.assert_array_equal(
        served.score(parsed).attack_probability, served.score(expected).attack_probability
    )


def _mutate(records: list[dict[str, Any]], change: str) -> bytes:
    recs = [dict(r) for r in records]
    key = next(iter(recs[5]))
    if change == "bool":
        recs[5][key] = True
    elif change == "text number":
        recs[5][key] = "12"
    elif change == "null":
        recs[5][key] = None
    elif change == "missing":
        del recs[5][key]
    elif change == "extra":
        recs[5]["extra_field"] = 1
    elif change == "nested":
        recs[5][key] = [1]
    elif change == "out of range":
        recs[5][key] = 2e30
    elif change == "not an object":
        recs[5] = [1, 2]  # type: ignore[call-overload]
    if change == "NaN literal":
        return json.dumps({"flows": recs}).replace(f'"{key}": 1.0', f'"{key}": NaN', 1).encode()
    if change == "beyond float":
        return json.dumps({"flows": recs}).replace(f'"{key}": 1.0', f'"{key}": 1e400', 1).encode()
    if change == "top-level field":
        return json.dumps({"flows": recs, "other": 1}).encode()
    if change == "another model":
        return json.dumps({"flows": recs, "model": UNSW_NAME}).encode()
    if change == "trailing text":
        return json.dumps({"flows": recs}).encode() + b" x"
    if change == "empty":
        return json.dumps({"flows": []}).encode()
    if change == "too many":
        return json.dumps({"flows": recs * 20}).encode()
    return json.dumps({"flows": recs}).encode()


CHANGES = [
    "bool", "text number", "null", "missing", "extra", "nested", "out of range",
    "not an object", "NaN literal", "beyond float", "top-level field", "another model",
    "trailing text", "empty", "too many",
]  # fmt: skip


@pytest.mark.parametrize("change", CHANGES)
def test_unusual_bodies_are_left_to_the_ordinary_path(model_set, change) -> None:
    hot = _learnt(model_set, "cic")
    records = [cic_record() for _ in range(30)]
    assert hot.decode(_mutate(records, "none"), max_batch=100) is not None
    assert hot.decode(_mutate(records, change), max_batch=100) is None


def test_categorical_fields_must_be_text(model_set) -> None:
    hot = _learnt(model_set, "unsw")
    records = [dict(SEED_B_NORMAL) for _ in range(20)]
    assert hot.decode(json.dumps({"flows": records}).encode(), 100) is not None
    records[3]["state"] = 3
    assert hot.decode(json.dumps({"flows": records}).encode(), 100) is None


def test_another_spelling_or_model_is_learnt_anew(model_set) -> None:
    hot = _learnt(model_set, "cic")
    unsw = [dict(SEED_B_NORMAL) for _ in range(20)]
    assert hot.decode(json.dumps({"flows": unsw}).encode(), 100) is None
    hot.learn(model_set.get(UNSW_NAME), unsw[0], None)
    assert hot.decode(json.dumps({"flows": unsw}).encode(), 100) is not None
    cic = [cic_record() for _ in range(20)]
    assert hot.decode(json.dumps({"flows": cic}).encode(), 100) is None


@pytest.fixture()
def fresh_client(model_set, store) -> Iterator[TestClient]:
    """An app with models of its own (nothing learnt yet)."""
    models = ModelSet(list(model_set.models))
    config = ServiceSettings(max_batch=50, max_body_bytes=1 << 20)
    with TestClient(create_app(config, store.settings, models=models)) as c:
        c.models = models  # type: ignore[attr-defined]
        yield c


def test_the_route_answers_the_same_before_and_after_learning(fresh_client, store) -> None:
    records = [cic_record() for _ in range(30)]
    good = json.dumps({"flows": records}).encode()
    bodies = [good] + [_mutate(records, c) for c in CHANGES]

    def answers() -> list[tuple[int, Any]]:
        out = []
        for body in bodies:
            r = fresh_client.post(
                "/v1/predict", content=body, headers={"content-type": "application/json"}
            )
            out.append((r.status_code, r.json()))
        return out

    before = answers()  # the first good body teaches the typed decode
    assert fresh_client.models.hot_batch.decode(good, 50) is not None
    after = answers()
    assert before == after
    assert before[0][0] == 200 and before[0][1]["n_flows"] == 30
    statuses = dict(zip(CHANGES, [s for s, _ in before[1:]], strict=True))
    assert statuses["too many"] == 413 and statuses["empty"] == 200
    assert statuses["another model"] == 422  # UNSW model, CIC fields: missing fields named
    assert all(statuses[c] == 422 for c in CHANGES if c not in ("too many", "empty"))
