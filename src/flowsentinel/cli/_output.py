"""Console helpers shared by the commands: one-line errors, summary tables."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flowsentinel.core.errors import FlowsentinelError

# tables stay readable in logs and CI (a non-terminal gets 80 columns by default otherwise)
console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
stdout = Console(width=None if sys.stdout.isatty() else 140)
P = ParamSpec("P")
R = TypeVar("R")


def one_line(exc: BaseException) -> str:
    """An error's text as one line (its first non-empty one), safe from rich markup."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return escape(lines[0] if lines else type(exc).__name__)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn any error into one line on stderr and a non-zero exit code (no traceback)."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except FlowsentinelError as exc:
            console.print(f"[bold red]error:[/] {one_line(exc)}", highlight=False, soft_wrap=True)
            code = exc.exit_code
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]")
            code = 130
        except typer.Exit:
            raise
        except Exception as exc:  # last resort: still one line, never a traceback
            if os.environ.get("FLOWSENTINEL_DEBUG"):
                raise
            console.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {one_line(exc)} "
                "(set FLOWSENTINEL_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            code = 1
        # What the failed command held (its frames, reached through reference cycles) is
        # released now, while Arrow is alive: an Arrow reader's thread still running when the
        # interpreter tears Arrow down aborts the process ("terminate called without an
        # active exception", apache/arrow#34314), seen once in a few hundred error exits.
        gc.collect()
        raise typer.Exit(code)

    return wrapper


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in r])
    return t


def is_tty() -> bool:
    return sys.stderr.isatty()


def workers_option() -> Any:
    """``--workers N``: a local Dask cluster of N worker processes (every command that scales
    out takes it, with :func:`cluster_option`)."""
    return typer.Option(
        "--workers",
        help="Run on a local Dask cluster of this many worker processes (default: in-process).",
        min=1,
    )


def cluster_option() -> Any:
    """``--cluster ADDRESS``: an existing Dask scheduler."""
    return typer.Option(
        "--cluster",
        help="Run on the Dask scheduler at this address (tcp://HOST:8786; default: the "
        "FLOWSENTINEL_DASK_SCHEDULER environment variable, else in this process).",
    )
