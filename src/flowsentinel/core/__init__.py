"""Cross-cutting pieces: settings, errors and console logging."""

from flowsentinel.core.errors import FlowsentinelError, InputError
from flowsentinel.core.settings import Settings, get_settings

__all__ = ["FlowsentinelError", "InputError", "Settings", "get_settings"]
