"""The one ASGI layer of the service in front of the routes: request metrics, the body size
limit and the API key, for every HTTP request, before any routing.

One layer rather than three: each layer of the stack costs a call, a wrapped ``send`` and a
frame per request, which a single-flow request (~50 µs of model work) notices. The order of
the checks is the one the API documents: the body limit (413 at once from ``Content-Length``),
then the key (401), then the route; every answer, refusals included, is counted and timed.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowsentinel.service.metrics import ServiceMetrics

#: routes anyone may call (the page, health, metrics, the API's documentation)
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json")

UNAUTHORISED = "a valid API key is required (header X-API-Key or Authorization: Bearer)"


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the API key (the OpenAPI document says the same)."""
    return (
        path == "/"
        or path.startswith("/static/")
        or path in OPEN_PATHS
        or (path.startswith("/docs/"))
    )


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes")


class ResponseWatch:
    """Wraps ``send`` to see the response status as it starts (0 until then)."""

    __slots__ = ("_send", "status")

    def __init__(self, send: Send) -> None:
        self.status = 0
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


async def _send_json(
    send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(extra or [(b"connection", b"close")]),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _declared_length(headers: Any) -> int | None:
    """The ``Content-Length`` of a request (-1 when it is not a number), None without one."""
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once the body's bytes pass ``limit``."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited_receive


class ServiceGate:
    """Counts and times every HTTP request by route template (bounded labels), answers 413 for
    a body beyond the limit of its path and, when a key is configured, 401 for a guarded route
    (all but :data:`OPEN_PATHS` and the page) without it in ``X-API-Key`` or
    ``Authorization: Bearer``. Other scopes (lifespan) pass through."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        limit_for: Callable[[str], int],
        key: str | None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limit_for = limit_for
        self.key = key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        watch = ResponseWatch(send)
        try:
            await self._checked(scope, receive, watch)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None)
            if path is None:
                raw = scope.get("path", "")
                path = "/static" if raw.startswith("/static/") else "unmatched"
            self.metrics.observe_request(
                scope.get("method", ""), path, watch.status or 500, time.perf_counter() - started
            )

    async def _checked(self, scope: Scope, receive: Receive, send: ResponseWatch) -> None:
        path = scope.get("path", "")
        headers = scope.get("headers", ())
        limit = self.limit_for(path)
        declared = _declared_length(headers)
        if declared is not None and declared > limit:
            await _send_json(send, 413, {"detail": BodyTooLarge(limit).detail})
            return
        if self.key is not None and not is_open(path) and not self._given(headers):
            challenge = [(b"www-authenticate", b"Bearer")]
            await _send_json(send, 401, {"detail": UNAUTHORISED}, challenge)
            return
        if declared is not None and declared >= 0:  # the server reads exactly that many bytes
            await self.app(scope, receive, send)
            return
        try:  # a streamed body: counted as it arrives
            await self.app(scope, _counted(receive, limit), send)
        except BodyTooLarge as exc:
            if send.status:  # the answer had begun: too late for a 413
                raise
            await _send_json(send, 413, {"detail": exc.detail})

    def _given(self, headers: Any) -> bool:
        """``X-API-Key`` when it is set (not empty), else the bearer token, compared as text:
        the header as latin-1, the key as UTF-8 (what a client sends for it)."""
        assert self.key is not None
        key = bearer = b""
        for name, value in headers:
            if name == b"x-api-key" and not key:
                key = value.strip()
            elif name == b"authorization" and value[:7].lower() == b"bearer " and not bearer:
                bearer = value[7:].strip()
        given = key or bearer
        return bool(given) and hmac.compare_digest(given.decode("latin-1").encode(), self.key)
