"""A shortcut for the two single-flow seed routes: valid requests skip FastAPI's routing and
dependency machinery, everything else is served by the app exactly as before.

A single flow costs the model ~50 µs; FastAPI's route matching, dependency solving (the API key
schemes, the models, the metrics) and handler wrapping cost several times that. This ASGI layer
sits inside the body limit and the metrics middleware and answers ``POST /reports/`` and
``POST /classify`` itself when the request is the ordinary case: models loaded, a JSON content
type, the API key (when one is set) in ``X-API-Key``, a ``Content-Length`` body (the body limit
has checked it) that parses and validates. The
answer is built by the same functions the routes use (:mod:`.routes.seeds`). Anything else —
a wrong or missing key, another content type, a bad field, a model error, an unexpected
exception — is handed to the app with the body it already read, so status codes, error bodies
and logs are the app's own.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowsentinel.service.inputs import parse_json
from flowsentinel.service.routes import seeds

_ANSWERS = {"/reports/": seeds.reports_answer, "/classify": seeds.classify_answer}


class SeedShortcut:
    def __init__(self, app: ASGIApp, service: Any) -> None:
        self.app = app
        self.service = service  # the FastAPI app: its state holds models, config, metrics
        self._routes: dict[str, Any] | None = None

    def _route(self, path: str) -> Any:
        if self._routes is None:
            self._routes = {
                r.path: r
                for r in seeds.router.routes
                if getattr(r, "path", None) in _ANSWERS and "POST" in getattr(r, "methods", ())
            }
        return self._routes.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path not in _ANSWERS or scope.get("method") != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        state = self.service.state
        if state.models is None or not self._acceptable(scope, state.config.key):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:  # the body (the body limit counts it in ``receive``)
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                await self.app(scope, _replay(messages, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        route = self._route(path)
        try:
            record = parse_json(b"".join(chunks))
            if type(record) is not dict or route is None:
                raise ValueError("not the ordinary case")
            answer = _ANSWERS[path](state.models, state.metrics, record)
            response = JSONResponse(answer)
        except Exception:  # the app answers (and names the bad field, or logs the error)
            await self.app(scope, _replay(messages, receive), send)
            return
        scope["route"] = route  # the route template the metrics label requests with
        await response(scope, receive, send)

    @staticmethod
    def _acceptable(scope: Scope, key: str | None) -> bool:
        content_type: bytes | None = None
        api_key: bytes | None = None
        length = False
        for name, value in scope.get("headers", ()):
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"x-api-key" and api_key is None:
                api_key = value
            elif name == b"content-length":
                length = True
        if not length:  # a streamed body: the app reads it (and its limit answers as usual)
            return False
        kind = (content_type or b"").decode("latin-1").split(";", 1)[0].strip().lower()
        if kind != "application/json" and not (
            kind.startswith("application/") and kind.endswith("+json")
        ):
            return False
        if not key:
            return True
        # as the route compares it: the header as latin-1 text, both sides as UTF-8
        given = api_key.decode("latin-1").encode() if api_key else None
        return given is not None and hmac.compare_digest(given, key.encode())


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
