"""One way to stand up a fake service (Azure OpenAI, Azure AI Search, a model endpoint) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

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
