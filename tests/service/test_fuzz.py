"""Fuzz the OpenAPI document of the real server with schemathesis: no 5xx, whatever arrives.

Every operation gets generated requests, valid by the schema and invalid ones (wrong types,
missing and extra fields, odd content types); the only check is that no answer is a 5xx.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.integration

EXAMPLES = 40


def test_no_server_error_on_any_operation(server) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/reports/", "/classify", "/v1/predict", "/v1/scan", "/v1/model"} <= paths
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for operation in operations:
        strategy = operation.as_strategy(modes[0]) | operation.as_strategy(modes[1])

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:
            case.call_and_validate(headers=server.headers, checks=[not_a_server_error])

        run()
    answered = _answered(server)
    assert sum(answered.values()) > 5 * len(operations)  # the fuzzer really called the server
    assert not [status for status in answered if status.startswith("5")]


def _answered(server) -> dict[str, float]:
    """Requests answered per status, from the server's own metrics."""
    text = httpx.get(server.url + "/metrics").text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flowsentinel_http_requests_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[status] = counts.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts
