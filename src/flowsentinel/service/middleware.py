"""Pure ASGI middleware: the API key and the request body size limit (bytes counted as they
arrive). Both run before any routing, once per request, for every route they guard."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    """Base of the pure ASGI middleware of the service: other scopes (lifespan, websocket)
    pass through; HTTP requests go to :meth:`http`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ResponseWatch:
    """Wraps ``send`` to see the response status as it starts (0 until then)."""

    def __init__(self, send: Send) -> None:
        self.status = 0
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes")


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


class BodyLimit(HttpMiddleware):
    """413 for a body beyond the limit of its path: at once from ``Content-Length``, otherwise
    as soon as the counted bytes of a streamed (chunked) body pass it."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        super().__init__(app)
        self.limit_for = limit_for

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_json(send, 413, {"detail": BodyTooLarge(limit).detail})
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        watch = ResponseWatch(send)
        try:
            await self.app(scope, limited_receive, watch)
        except BodyTooLarge as exc:
            if watch.status:  # the answer had begun: too late for a 413
                raise
            await _send_json(send, 413, {"detail": exc.detail})


#: routes anyone may call (the page, health, metrics, the API's documentation)
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json")


def is_open(path: str) -> bool:
    return (
        path == "/"
        or path.startswith("/static/")
        or path in OPEN_PATHS
        or (path.startswith("/docs/"))
    )


class ApiKeyGuard(HttpMiddleware):
    """When a key is configured, every route but the open ones (:data:`OPEN_PATHS`, the page)
    needs it in ``X-API-Key`` or ``Authorization: Bearer``; otherwise 401 at once."""

    UNAUTHORISED = "a valid API key is required (header X-API-Key or Authorization: Bearer)"

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        super().__init__(app)
        self.key = key.encode() if key else None

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or is_open(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self._given(scope.get("headers", ())):
            await self.app(scope, receive, send)
            return
        await _send_json(
            send, 401, {"detail": self.UNAUTHORISED}, [(b"www-authenticate", b"Bearer")]
        )

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
