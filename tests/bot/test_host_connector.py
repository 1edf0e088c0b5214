"""The outbound connector: token cache until near expiry, one retry on 401, errors typed."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from bot.hosts.connector import ChannelConnector, TokenCache
from bot.hosts.errors import OutboxError


def make_token(exp: float) -> str:
    return jwt.encode({"exp": int(exp), "aud": "https://api.botframework.com"}, "k" * 32, algorithm="HS256")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_token_is_reused_until_close_to_expiry() -> None:
    clock = Clock()
    fetched: list[str] = []

    async def fetch() -> str:
        fetched.append(make_token(clock.now + 3600))
        return fetched[-1]

    cache = TokenCache(fetch, margin=300, clock=clock)
    first = await cache.get()
    clock.now += 3000
    assert await cache.get() == first and len(fetched) == 1
    clock.now += 400  # now within 5 minutes of expiry
    second = await cache.get()
    assert len(fetched) == 2 and second == fetched[1]


async def test_opaque_tokens_are_refreshed_after_a_while() -> None:
    clock = Clock()
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        return f"opaque-{calls}"

    cache = TokenCache(fetch, margin=0, clock=clock)
    assert await cache.get() == "opaque-1"
    assert await cache.get() == "opaque-1"
    clock.now += 601
    assert await cache.get() == "opaque-2"


async def test_connector_sends_bearer_and_refreshes_once_on_401(aiohttp_server: Any) -> None:
    seen: list[str | None] = []

    async def post(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if len(seen) == 1:
            return web.json_response({}, status=401)
        return web.json_response({"id": "m-1"}, status=201)

    app = web.Application()
    app.router.add_post("/v3/conversations/{c}/activities/{r}", post)
    server = await aiohttp_server(app)
    tokens = iter(["tok-1", "tok-2"])

    async def fetch() -> str:
        return next(tokens)

    cache = TokenCache(fetch, clock=time.time)
    async with aiohttp.ClientSession() as session:
        connector = ChannelConnector(session, str(server.make_url("/")), cache)
        reply = {"type": "message", "conversation": {"id": "19:x;messageid=1"}, "replyToId": "1"}
        assert await connector.send(reply) == "m-1"
    assert seen == ["Bearer tok-1", "Bearer tok-2"]


async def test_connector_errors_are_typed(aiohttp_server: Any) -> None:
    async def post(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "ContentStreamNotAllowed"}}, status=403)

    app = web.Application()
    app.router.add_post("/v3/conversations/{c}/activities", post)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(OutboxError) as refused:
            await ChannelConnector(session, str(server.make_url("/"))).send({"conversation": {"id": "c"}})
        assert refused.value.status == 403
        with pytest.raises(OutboxError) as unreachable:
            await ChannelConnector(session, "http://127.0.0.1:9/").send({"conversation": {"id": "c"}})
        assert unreachable.value.status == 0
