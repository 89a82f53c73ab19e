"""The prediction service: FastAPI app serving flowsentinel models (see ``docs/service.md``).

``create_app`` is imported lazily so that ``import flowsentinel.service.config`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from flowsentinel.service.app import create_app

        return create_app
    raise AttributeError(name)
