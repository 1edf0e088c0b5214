"""Fixtures of tests/grounded: settings from a clean environment and a loopback fake of Azure OpenAI,
Azure AI Search and an OpenAI-compatible server in one aiohttp app."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from grounded_fakes import Retrieved

from rag.settings import Settings, load_settings
from tests.loopback import serve


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeCloud:
    """Answers chat calls from `chat` (a function of the request body returning a JSON body or a list of
    SSE events), search calls with `search_hits` (or `search_status`), and knowledge base retrieves with the
    queued `retrieved` answers (the last one repeats)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    chat: Callable[[dict[str, Any]], Any] = lambda body: {}
    search_hits: list[dict[str, Any]] = field(default_factory=list)
    search_status: int = 200
    retrieved: list[Retrieved] = field(default_factory=list)

    def requests(self, fragment: str) -> list[Seen]:
        return [s for s in self.seen if fragment in s.path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
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


@pytest.fixture
def make_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[Callable[[dict[str, str]], Settings]]:
    """Settings read from exactly the given variables (no outer AZURE_*/RAGBOT_*, no `.env`)."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAGBOT_DATA_DIR", str(tmp_path / "data"))

    def make(env: dict[str, str]) -> Settings:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_settings(env_file=None)

    yield make
