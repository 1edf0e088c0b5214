"""The one HTTP session factory: every outbound peer sees the ragbot User-Agent, and trace hooks
registered once reach every session made afterwards."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from rag import http_sessions
from rag.azure.client import AzureOpenAIClient
from rag.http_sessions import USER_AGENT, add_trace_config, client_session
from tests.loopback import serve


async def test_azure_openai_calls_name_ragbot_and_its_version() -> None:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers["User-Agent"])
        return web.json_response({"choices": []})

    async with serve(handle) as url:
        client = AzureOpenAIClient(base_url=url, api_version="2024-10-21", api_key=SecretStr("k"))
        try:
            await client.chat({"messages": []}, deployment="gpt-4o")
        finally:
            await client.aclose()
    assert seen == [USER_AGENT] and USER_AGENT.startswith("ragbot/")


async def test_registered_trace_hooks_see_each_request(monkeypatch: Any) -> None:
    monkeypatch.setattr(http_sessions, "_trace_configs", [])
    started: list[str] = []

    def tracing() -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def on_start(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
            started.append(params.url.path)

        config.on_request_start.append(on_start)
        return config

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    add_trace_config(tracing)
    async with serve(handle) as url, client_session() as session, session.get(url + "/ping") as response:
        assert response.status == 200
    assert started == ["/ping"]
