"""Entry point of the ``flowsentinel`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowsentinel.cleaning import CleaningOptions, clean_to_dir
from flowsentinel.cli import data
from flowsentinel.cli import models as models_cli
from flowsentinel.cli._output import console, friendly_errors, is_tty
from flowsentinel.core.settings import get_settings
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.datasets.synthetic import write_demo_dataset

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


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "flowsentinel-demo"
    ),
    rows: Annotated[int, typer.Option(min=200, help="Flows to generate.")] = 20_000,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings).")] = None,
) -> None:
    """Run the whole path on built-in generated flows: generate → clean → prepare."""
    from flowsentinel.preparation import prepare  # sklearn is slow to import: only here

    settings = get_settings()
    seed = settings.seed if seed is None else seed
    csv_path = write_demo_dataset(out / "data", rows=rows, seed=seed)
    console.print(f"generated {csv_path} (seed {seed}; a demonstration set, not real traffic)")
    cache = ColumnarCache(settings.resolved_cache_dir) if settings.use_cache else None
    report, _ = clean_to_dir(
        [str(csv_path)],
        out / "clean",
        options=CleaningOptions(task="dos"),
        cache=cache,
        progress=is_tty(),
    )
    data.print_cleaning_summary(report, out / "clean", False)
    summary = prepare(out / "clean", seed=seed)
    console.print(
        f"prepared: {summary['rows']['train']:,} training rows, {summary['rows']['test']:,} test "
        f"rows, {len(summary['features'])} features; heatmaps in {out / 'clean'}"
    )


def run() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    run()
