"""A cheap HTTP/1.1 load generator for the service benchmark: raw asyncio streams.

The load generator shares the machine's cores with the servers it measures, so every
microsecond it spends per request is taken from them. This one does as little as possible:
requests are encoded once before the clock starts, each of ``concurrency`` workers keeps one
keep-alive connection, and a response is read as its status line, its headers (for
``Content-Length`` or chunked framing) and its body bytes, which are never parsed. It runs on
uvloop when uvloop is installed. The same client loads both servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np


def encode(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One complete HTTP/1.1 POST request (keep-alive)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


async def _load(host: str, port: int, requests: list[bytes], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(requests))

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        try:
            while queue:
                raw = queue.pop()
                t0 = time.perf_counter()
                writer.write(raw)
                status, close = await _response(reader)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(requests),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(requests) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
    }


def _run(coro_factory: Callable[[], Coroutine[Any, Any, dict[str, float]]]) -> dict[str, float]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(coro_factory())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro_factory())


def load(host: str, port: int, requests: list[bytes], concurrency: int) -> dict[str, float]:
    """Send every pre-encoded request once, ``concurrency`` in flight; latency percentiles,
    requests per second and the number of non-200 answers."""
    return _run(lambda: _load(host, port, requests, concurrency))
