"""The ``flowsentinel`` command line."""

from flowsentinel.cli.main import app, run

__all__ = ["app", "run"]
