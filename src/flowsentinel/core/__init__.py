"""Cross-cutting pieces: settings, errors and console logging.

The settings (pydantic, about 60 ms of imports) load on first use, so that the error types stay
free to import for the command line's start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowsentinel.core.errors import FlowsentinelError, InputError

if TYPE_CHECKING:
    from flowsentinel.core.settings import Settings, get_settings

__all__ = ["FlowsentinelError", "InputError", "Settings", "get_settings"]


def __getattr__(name: str) -> Any:
    if name in ("Settings", "get_settings"):
        from flowsentinel.core import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
