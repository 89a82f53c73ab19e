"""Scoring: the one place where flows meet a model (shared by the CLI, the service and capture).

The scoring entry itself, :class:`~flowsentinel.models.detector.Detector`, lives with the
models so that training scores its test rows through it too; this module is its public name.
"""

from __future__ import annotations

from flowsentinel.models.detector import (
    DEFAULT_MODEL,
    DEMO_MODEL,
    Detector,
    Explain,
    Verdicts,
    resolve_uri,
)

__all__ = ["DEFAULT_MODEL", "DEMO_MODEL", "Detector", "Explain", "Verdicts", "resolve_uri"]
