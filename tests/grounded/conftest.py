"""Fixtures of tests/grounded: a loopback fake of Azure OpenAI, Azure AI Search and an OpenAI-compatible
server in one aiohttp app (settings from a clean environment: `make_settings` in tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from grounded_fakes import Retrieved

from tests.loopback import Recorded, record, serve


@dataclass
class FakeCloud:
    """Answers chat calls from `chat` (a function of the request body returning a JSON body or a list of
    SSE events), search calls with `search_hits` (or `search_status`), and knowledge base retrieves with the
    queued `retrieved` answers (the last one repeats)."""

    url: str = ""
    seen: list[Recorded] = field(default_factory=list)
    chat: Callable[[dict[str, Any]], Any] = lambda body: {}
    search_hits: list[dict[str, Any]] = field(default_factory=list)
    search_status: int = 200
    retrieved: list[Retrieved] = field(default_factory=list)

    def requests(self, fragment: str) -> list[Recorded]:
        return [s for s in self.seen if fragment in s.path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = await record(request)
        self.seen.append(seen)
        body = seen.body
        if request.path.startswith("/knowledgebases(") and request.path.endswith("/retrieve"):
            answer = self.retrieved.pop(0) if len(self.retrieved) > 1 else self.retrieved[0]
            return web.json_response(answer.body, status=answer.status, headers=answer.headers)
        if "/docs/" in request.path:
            if request.path.endswith("$count"):
                return web.Response(text=str(len(self.search_hits)), content_type="text/plain")
            if self.search_status != 200:
                error = {"error": {"code": "Denied", "message": f"status {self.search_status}"}}
                return web.json_response(error, status=self.search_status)
            return web.json_response({"value": self.search_hits})
        reply = self.chat(body)
        if not isinstance(reply, list):
            return web.json_response(reply)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in reply:
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def cloud() -> AsyncIterator[FakeCloud]:
    fake = FakeCloud()
    async with serve(fake.handle, method="*") as fake.url:
        yield fake
