"""Entry point of the ``flowsentinel`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowsentinel.cli import data
from flowsentinel.cli import models as models_cli
from flowsentinel.cli import scan as scan_cli
from flowsentinel.cli._output import console, friendly_errors

app = typer.Typer(
    help="flowsentinel: find attacks in network flows with machine learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
models_cli.register(app)

from flowsentinel.cli import serve as serve_cli  # noqa: E402  (serve)

serve_cli.register(app)

from flowsentinel.cli import capture as capture_cli  # noqa: E402  (flows, lab)

capture_cli.register(app)
scan_cli.register(app)

from flowsentinel.cli import score as score_cli  # noqa: E402  (score)

score_cli.register(app)


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "flowsentinel-demo"
    ),
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings).")] = None,
    scale: Annotated[
        float, typer.Option(min=0.05, max=20, help="Lab size multiplier (1: a few thousand flows).")
    ] = 1.0,
    n_iter: Annotated[int, typer.Option("--n-iter", min=0, help="Tuning candidates.")] = 3,
) -> None:
    """The whole path on built-in lab traffic: lab → flows → clean → train → register → scan."""
    import contextlib
    import sys

    from flowsentinel.cli.models import print_comparison
    from flowsentinel.demo import DEMO_NAME, run_demo

    with console.status("demo") as status, contextlib.redirect_stdout(sys.stderr):
        result = run_demo(out, seed=seed, scale=scale, n_iter=n_iter, say=status.update)
    lab = result["lab"]
    console.print(
        f"lab capture {lab['pcap']}: {lab['packets']:,} packets, flows per label {lab['flows']}"
    )
    c = result["cleaning"]
    console.print(f"cleaning kept {c['rows_out']:,} of {c['rows_in']:,} flows; heatmaps in "
                  f"{out / 'clean'}")  # fmt: skip
    print_comparison(result["train"])
    s = result["scan"]
    console.print(
        f"scanned the unseen capture {s['pcap']}: {s['flows']:,} flows, verdicts {s['by_label']}; "
        f"attacks detected {s['detection_rate']:.1%}, benign flows flagged "
        f"{s['false_positive_rate']:.1%} by the flow model alone; in context "
        f"({s['incidents']} incidents), {s['in_incidents']['detection_rate']:.1%} of the attack "
        f"flows and {s['in_incidents']['false_positive_rate']:.1%} of the benign ones sit in an "
        f"incident (verdicts in {s['verdicts']})"
    )
    console.print(
        f"[bold]A model trained on lab traffic is a demonstration.[/] Train on the real data sets "
        f"with `flowsentinel train ...` (see README). Model: models:/{DEMO_NAME}@champion"
    )


def run() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    run()
