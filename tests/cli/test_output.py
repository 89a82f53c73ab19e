"""The CLI's last line of defence: any error is one line on stderr, never a traceback."""

from __future__ import annotations

import pytest
import typer

from flowsentinel.cli._output import friendly_errors
from flowsentinel.core.errors import InputError


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (InputError("first line\nsecond line", path="f.csv"), 2, "error: f.csv: first line"),
        (ValueError("\n  [b]odd[/b] text\nmore"), 1, "error: unexpected ValueError: [b]odd"),
        (RuntimeError(), 1, "error: unexpected RuntimeError: RuntimeError"),
    ],
)
def test_every_error_is_one_line(error, code, line, capsys) -> None:
    @friendly_errors
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(line), err
