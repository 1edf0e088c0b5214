"""A fake Azure OpenAI for the reliability suite: tests/azure's FakeAzure (scripted replies, SSE, delays,
retry headers) plus the faults it cannot express: a TCP reset, a body that is not JSON, SSE bytes that
are not UTF-8. And On Your Data settings with short timeouts so every fault resolves quickly."""

from __future__ import annotations

import socket
import struct
from enum import Enum
from typing import Any

from aiohttp import web

from rag.settings import AzureOpenAISettings, AzureSearchSettings, RagSettings, Settings
from tests.azure.azure_fake import FakeAzure

OPENAI_KEY = "aoai-key-7f3c9e1d5b2a4f6e8d0c"
SEARCH_KEY = "search-key-2b8e4d6f0a1c3e5g7i9k"
REQUEST_TIMEOUT_S = 0.4
RETRY_BUDGET_S = 1.0
REPLY_BOUND_S = 8.0
"""Every faulty turn must be answered well within this (retry budget + timeouts + the bot's own work)."""


class Fault(Enum):
    NONE = "none"
    RESET = "reset"  # TCP RST right after the request arrived
    NOT_JSON = "not-json"  # 200 with a JSON content type and a body cut in the middle
    NOT_UTF8_SSE = "not-utf8-sse"  # an SSE stream whose bytes are not UTF-8


class Upstream:
    """FakeAzure, unless `fault` says otherwise."""

    def __init__(self) -> None:
        self.fake = FakeAzure()
        self.fault = Fault.NONE
        self.faulted = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.fault is Fault.NONE:
            return await self.fake.handle(request)
        await request.read()
        self.faulted += 1
        if self.fault is Fault.RESET:
            assert request.transport is not None
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()
            raise web.HTTPInternalServerError()  # never sent: the connection is gone
        if self.fault is Fault.NOT_JSON:
            return web.Response(
                text='{"choices": [{"message": {"content": "Use the', content_type="application/json"
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"delta": {"content": "\xff\xfe\xfd"}}]}\n\n')
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def oyd_settings(url: str, **search: Any) -> Settings:
    """On Your Data against `url`, with short timeouts and retry budget so faults resolve quickly."""
    return Settings(
        openai=AzureOpenAISettings(_env_file=None, endpoint=url, key=OPENAI_KEY, model="gpt-4o"),
        search=AzureSearchSettings(
            _env_file=None,
            endpoint="https://search.invalid",
            index="kb",
            key=SEARCH_KEY,
            **search,
        ),
        ragbot=RagSettings(
            _env_file=None,
            backend="on_your_data",
            request_timeout=REQUEST_TIMEOUT_S,
            retry_budget=RETRY_BUDGET_S,
        ),
    )
