"""Static checks: the ``type: ignore`` ratchet, ruff (lint and format) and mypy.

The tools are the versions pinned in the dev extra, run from this interpreter's environment
(``sys.executable -m ...``), with the configuration of pyproject.toml: CI runs them here, as
part of README's test command, so that it stays the one command CI runs.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LINTED = ["src", "tests", "benchmarks"]

#: ``type: ignore`` anywhere in a comment (mypy reads it after other pragmas too)
_IGNORE = re.compile(r"type\s*:\s*ignore\b")
#: the accepted form: specific error codes, then a reason as a comment of its own
_ACCEPTED = re.compile(
    r"type\s*:\s*ignore\[\s*[a-z][a-z0-9-]*(\s*,\s*[a-z][a-z0-9-]*)*\s*\]\s*#\s*\S"
)


def bad_ignores(source: str) -> list[int]:
    """Lines whose ``type: ignore`` comment names no error code or gives no reason after it.

    Comments are found with the tokenizer, so text in strings and docstrings is not taken
    for a pragma."""
    bad = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT or not _IGNORE.search(tok.string):
            continue
        if len(_IGNORE.findall(tok.string)) != len(_ACCEPTED.findall(tok.string)):
            bad.append(tok.start[0])
    return bad


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("x = f()  # type: ignore[attr-defined]  # numba dispatcher has no stubs\n", True),
        ("x = f()  # type: ignore[arg-type, call-arg]  # a reason\n", True),
        ("x = f()  # noqa: E501  # type: ignore[misc]  # a reason\n", True),
        ("x = f()  # type: ignore\n", False),
        ("x = f()  # type: ignore  # a reason without a code\n", False),
        ("x = f()  # type: ignore[attr-defined]\n", False),
        ("x = f()  # type: ignore[attr-defined]  #\n", False),
        ("x = f()  # type:ignore[]  # empty codes\n", False),
        ('x = "# type: ignore"  # a string, not a pragma\n', True),
    ],
)
def test_ignore_rule(line: str, ok: bool) -> None:
    assert (bad_ignores(line) == []) is ok


def test_every_type_ignore_names_a_code_and_a_reason() -> None:
    """``# type: ignore[code]  # why``: a bare or unexplained ignore hides more than it must."""
    bad = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        for line in bad_ignores(path.read_text(encoding="utf-8"))
    ]
    assert not bad, "type: ignore without [error-code] and '# reason' after it:\n" + "\n".join(bad)


def _run(*args: str, timeout: float) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )


def test_ruff_check() -> None:
    _run("ruff", "check", *LINTED, timeout=300)


def test_ruff_format() -> None:
    _run("ruff", "format", "--check", *LINTED, timeout=300)


@pytest.mark.slow
def test_mypy() -> None:
    """mypy over src (files and options in pyproject.toml; ~35 s without its cache)."""
    _run("mypy", timeout=900)
