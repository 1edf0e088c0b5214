"""One way to stand up a fake service (Azure OpenAI, Azure AI Search, a model endpoint) on loopback, and
to record what reached it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler, *, method: str = "*", max_body: int = 1024**2) -> AsyncIterator[str]:
    """Route every path to `handler` on 127.0.0.1 and yield the base URL (no trailing slash)."""
    app = web.Application(client_max_size=max_body)
    app.router.add_route(method, "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@dataclass
class Recorded:
    """One request as the client under test put it on the wire."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # the JSON body, or None when empty or not JSON (form data, a file: see `raw`)
    raw: bytes = b""
    at: float = field(default_factory=time.monotonic)


async def record(request: web.Request) -> Recorded:
    """Read `request` (its body as JSON when it is JSON) into a :class:`Recorded`."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return Recorded(request.method, request.path, dict(request.query), dict(request.headers), body, raw)
