"""The request declaration of a served model: one struct decodes, explains and documents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import CIC_NAME, SEED_B_ATTACK, UNSW_NAME, cic_record
from flowsentinel.core.errors import LimitError
from flowsentinel.service.bodies import FlowBody, FlowInputError


@pytest.fixture(scope="module")
def cic(model_set) -> FlowBody:
    return model_set.get(CIC_NAME).body


def test_the_schema_is_the_declaration(cic: FlowBody, model_set) -> None:
    flow, batch, components = cic.schemas()
    schema = components[flow["$ref"].rsplit("/", 1)[1]]
    d = model_set.get(CIC_NAME).detector
    assert sorted(schema["required"]) == sorted(cic.display[f] for f in d.features)
    assert schema["additionalProperties"] is False
    for name in schema["required"]:
        assert schema["properties"][name]["minimum"] == -1e30
        assert schema["properties"][name]["maximum"] == 1e30
    body = components[batch["$ref"].rsplit("/", 1)[1]]
    assert body["required"] == ["flows"] and body["additionalProperties"] is False


def test_decoded_values_keep_their_order_and_bits(cic: FlowBody, model_set) -> None:
    d = model_set.get(CIC_NAME).detector
    rng = np.random.default_rng(5)
    values = rng.normal(size=(50, len(d.features))) * 10.0 ** rng.integers(-300, 29, (50, 1))
    values[0, 0] = -0.0
    flows = [
        {cic.display[f]: float(v) for f, v in zip(d.features, row, strict=True)} for row in values
    ]
    flows[1] = dict(reversed(list(flows[1].items())))  # any key order
    flows[2][cic.display[d.features[0]]] = 2**70  # an integer beyond 64 bits
    parsed = cic.decode_batch(json.dumps({"flows": flows}).encode(), 1000)
    assert parsed is not None
    values[2, 0] = float(2**70)
    assert parsed.numeric.tobytes() == values.tobytes()


def test_categorical_fields_are_text(model_set) -> None:
    unsw = model_set.get(UNSW_NAME).body
    parsed = unsw.decode_flow(json.dumps(SEED_B_ATTACK).encode())
    assert parsed.categorical == {"service": ["dns"], "state": ["INT"]}
    with pytest.raises(FlowInputError) as refused:
        unsw.decode_flow(json.dumps({**SEED_B_ATTACK, "service": 3}).encode())
    assert refused.value.errors == [
        {"loc": ["body", "service"], "msg": "must be a string, got `int`", "type": "string_type"}
    ]


def test_a_refused_batch_names_every_bad_field_of_every_flow(cic: FlowBody) -> None:
    good, bad = cic_record(), cic_record()
    del bad["idle_min"]
    bad["flow_iat_std"] = "x"
    bad["bogus"] = 3
    raw = json.dumps({"flows": [good, bad, good, 7], "extra": 1}).encode()
    assert cic.decode_batch(raw, 1000) is None
    found = {(tuple(e["loc"]), e["type"]) for e in cic.explain(raw, single=False)}
    assert found == {
        (("body", "extra"), "extra_forbidden"),
        (("body", "flows", 1, "idle_min"), "missing"),
        (("body", "flows", 1, "flow_iat_std"), "float_type"),
        (("body", "flows", 1, "bogus"), "extra_forbidden"),
        (("body", "flows", 3), "dict_type"),
    }


def test_the_batch_limit_is_a_limit(cic: FlowBody) -> None:
    raw = json.dumps({"flows": [cic_record()] * 11}).encode()
    assert cic.decode_batch(raw, 11) is not None
    with pytest.raises(LimitError, match="11 flows in one batch; the limit is 10"):
        cic.decode_batch(raw, 10)


def test_a_batch_is_scored_by_the_model_it_fits_or_names(model_set) -> None:
    served, parsed = model_set.decode_batch(json.dumps({"flows": [SEED_B_ATTACK]}).encode(), 10)
    assert served.key == UNSW_NAME and len(parsed) == 1
    named = json.dumps({"flows": [cic_record()], "model": UNSW_NAME}).encode()
    with pytest.raises(FlowInputError) as refused:  # explained by the model it names
        model_set.decode_batch(named, 10)
    assert {e["loc"][-1] for e in refused.value.errors} >= {"flow_duration", "dur"}
    with pytest.raises(FlowInputError) as refused:
        model_set.decode_batch(json.dumps({"flows": [cic_record()], "model": "x"}).encode(), 10)
    assert refused.value.errors[0]["loc"] == ["body", "model"]
