"""The CLI's setting of polars' allocator (``_RJEM_MALLOC_CONF``, read when polars loads; polars
puts its own defaults first, so the last value of an option is the one jemalloc uses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def conf_after_import(argv: list[str], preset: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    if preset is not None:
        env["_RJEM_MALLOC_CONF"] = preset
    # polars loads when a command that uses it runs (not at the CLI's start-up): after the
    # variable is set, as here
    code = (
        f"import sys; sys.argv = {argv!r}; import flowsentinel.cli, os, polars; "
        "print(os.environ['_RJEM_MALLOC_CONF'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["flowsentinel", "data", "clean"], "dirty_decay_ms:-1,muzzy_decay_ms:-1"),
        (["flowsentinel", "serve"], "dirty_decay_ms:30000,muzzy_decay_ms:30000"),
        (["flowsentinel"], "dirty_decay_ms:30000,muzzy_decay_ms:30000"),
    ],
)
def test_data_commands_keep_freed_pages(argv: list[str], expected: str) -> None:
    assert conf_after_import(argv).endswith("," + expected)


def test_a_value_set_by_the_user_wins() -> None:
    conf = conf_after_import(["flowsentinel", "data"], "narenas:2")
    assert conf.endswith(",narenas:2")
    assert "decay_ms:-1" not in conf
