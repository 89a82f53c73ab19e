"""Exception handlers: every error is a small JSON body with the right status, never a
traceback, and the server keeps serving.

- request validation (FastAPI's and :class:`~.inputs.FlowInputError`) → 422 naming each field;
- :class:`~flowsentinel.core.errors.InputError` (a file that cannot be read...) → 422, and
  :class:`~flowsentinel.core.errors.LimitError` (an upload past a limit) → 413;
- :class:`~flowsentinel.core.errors.ModelError` → 503;
- HTTP errors keep their status (401, 404, 405, 413, 415...);
- anything else is logged with an id and answered 503 with that id (no 500, no traceback).
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowsentinel.core.errors import InputError, LimitError, ModelError
from flowsentinel.service.bodies import FlowInputError

log = logging.getLogger("flowsentinel.service")


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append(
            {
                "loc": [_plain(part) for part in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
        )
    return out


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)


async def _flow_input(request: Request, exc: FlowInputError) -> JSONResponse:
    return JSONResponse({"detail": _clean_errors(exc.errors)}, status_code=422)


async def _input(request: Request, exc: InputError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _limit(request: Request, exc: LimitError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=413)


async def _model(request: Request, exc: ModelError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    ident = uuid.uuid4().hex[:12]
    log.error(
        "unexpected %s on %s %s (error id %s)",
        type(exc).__name__,
        request.method,
        request.url.path,
        ident,
        exc_info=exc,
    )
    return JSONResponse(
        {"detail": f"internal error (id {ident}); it was logged and the server keeps serving"},
        status_code=503,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]  # starlette: handlers of Exception
    app.add_exception_handler(FlowInputError, _flow_input)  # type: ignore[arg-type]  # starlette: handlers of Exception
    app.add_exception_handler(InputError, _input)  # type: ignore[arg-type]  # starlette: handlers of Exception
    app.add_exception_handler(LimitError, _limit)  # type: ignore[arg-type]  # starlette: handlers of Exception
    app.add_exception_handler(ModelError, _model)  # type: ignore[arg-type]  # starlette: handlers of Exception
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]  # starlette: handlers of Exception
    app.add_exception_handler(Exception, _unexpected)
