"""The OpenAPI document is the contract: schemathesis with every check (server errors, status
codes and bodies as documented, authentication as declared, schema-valid bodies accepted and
invalid ones refused, ...) against the real server, with and without an API key.

A bounded, seeded run (``EXAMPLES`` per operation); the settings are in ``schemathesis.toml``
beside this file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY

pytestmark = pytest.mark.integration

EXAMPLES = 25
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _schemathesis(url: str, *extra: str) -> subprocess.Popen[str]:
    cli = Path(sys.executable).with_name("schemathesis")
    args = [
        str(cli), "--no-color", "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
        "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", "7",
        "--phases", "examples,coverage,fuzzing", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_every_check_passes_with_and_without_a_key(server, open_server) -> None:
    for running, keyed in ((server, True), (open_server, False)):
        doc = httpx.get(running.url + "/openapi.json").json()
        # security is promised exactly when a key is configured
        assert ("securitySchemes" in doc.get("components", {})) == keyed
        operations = [op for ops in doc["paths"].values() for op in ops.values()]
        secured = [op for op in operations if "security" in op]
        assert all("401" in op["responses"] for op in secured)
        assert len(secured) == (6 if keyed else 0)  # the model and scoring routes
        assert not any("401" in op["responses"] for op in operations if "security" not in op)
    runs = [  # both at once: one server each
        _schemathesis(server.url, "--header", f"X-API-Key: {API_KEY}"),
        _schemathesis(open_server.url),
    ]
    for run in runs:
        out, _ = run.communicate(timeout=600)
        assert run.returncode == 0, out[-6000:]
    for running in (server, open_server):
        answered = _answered(running)
        assert sum(answered.values()) > 100  # the fuzzer really called the server
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
