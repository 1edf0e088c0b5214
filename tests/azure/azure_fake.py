"""The loopback fake of Azure OpenAI used by tests/azure: it records every request and answers from a
script (JSON bodies, SSE streams, slow or cut-off replies, error statuses with retry headers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.loopback import Recorded, record

CliRunner = Callable[..., Awaitable[tuple[int, str, str]]]  # `run_cli`: (exit code, stdout, stderr)


@dataclass
class Reply:
    """One scripted answer: a JSON body (bytes are sent as they are), or with `events` an SSE stream
    (bytes events are written raw); `done=False` leaves out `[DONE]`;
    `abort=True` drops the connection after the events; `delay` waits before the status line."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Any] | None = None
    done: bool = True
    abort: bool = False
    delay: float = 0.0
    pause: float = 0.0  # between stream events
    content_type: str = "application/json"  # of a bytes body


class FakeAzure:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: list[Reply] = []
        self.respond: Callable[[Any], Reply] | None = None  # answers from the request body when no script
        self.url = ""

    def reply(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = await record(request)
        self.requests.append(seen)
        body = seen.body
        reply = self.script.pop(0) if self.script else self.respond(body) if self.respond else None
        if reply is None:
            return web.json_response({"error": {"message": "no scripted reply"}}, status=599)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if isinstance(reply.body, bytes):
            return web.Response(
                body=reply.body, status=reply.status, content_type=reply.content_type, headers=reply.headers
            )
        if reply.events is None:
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        response = web.StreamResponse(status=reply.status, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in reply.events:
            if isinstance(event, bytes):  # raw bytes, written as they are
                await response.write(event)
                continue
            data = event if isinstance(event, str) else json.dumps(event)
            await response.write(f"data: {data}\n\n".encode())
            if reply.pause:
                await asyncio.sleep(reply.pause)
        if reply.abort:
            assert request.transport is not None
            request.transport.close()
            return response
        if reply.done:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
