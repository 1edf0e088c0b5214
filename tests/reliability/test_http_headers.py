"""Hardening headers, read off real responses: nosniff and a CSP on every response (static files too),
`frame-ancestors` on the page from RAGBOT_FRAME_ANCESTORS, no version in `Server`, and no response that
carries a token may be stored by a cache."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import ClientResponse
from pydantic import ValidationError

from bot.settings import BotSettings
from tests.bot.conftest import Bot, MakeBot
from tests.bot.fakes import activity

pytestmark = pytest.mark.reliability

TOKEN_KEYS = ("token", "streamUrl")


async def every_kind_of_response(bot: Bot) -> list[ClientResponse]:
    """The page, static files, probes, the bot endpoint (accepted and refused), 404/405, and every route
    that hands out a Direct Line token."""
    client = bot.client
    responses = [
        await client.get("/"),
        await client.get("/static/app.js"),
        await client.get("/static/app.css"),
        await client.get("/static/favicon.svg"),
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/no/such/page"),
        await client.delete("/api/messages"),
        await client.post("/api/messages", data="{", headers={"Content-Type": "application/json"}),
        await bot.post(activity(bot.service_url)),
        await client.post("/api/directline/token"),
        await client.post("/v3/directline/tokens/generate"),
    ]
    minted = await responses[-1].json()
    auth = {"Authorization": f"Bearer {minted['token']}"}
    started = await client.post("/v3/directline/conversations", headers=auth)
    auth = {"Authorization": f"Bearer {(await started.json())['token']}"}
    responses += [
        started,
        await client.get(f"/v3/directline/conversations/{minted['conversationId']}", headers=auth),
        await client.post("/v3/directline/tokens/refresh", headers=auth),
        await client.post("/v3/directline/tokens/refresh", headers={"Authorization": "Bearer forged"}),
    ]
    return responses


async def carries_a_token(response: ClientResponse) -> bool:
    if response.content_type != "application/json":
        return False
    body: Any = await response.json()
    return isinstance(body, dict) and any(key in body for key in TOKEN_KEYS)


async def test_every_response_is_hardened(make_bot: MakeBot) -> None:
    bot = await make_bot()
    responses = await every_kind_of_response(bot)
    assert {r.status for r in responses} >= {200, 201, 400, 403, 404, 405}
    with_tokens = 0
    for response in responses:
        where = f"{response.method} {response.url.path} -> {response.status}"
        assert response.headers["X-Content-Type-Options"] == "nosniff", where
        assert response.headers["Server"] == "ragbot", where
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors" in policy, where
        if await carries_a_token(response):
            with_tokens += 1
            assert response.headers["Cache-Control"] == "no-store", where
    assert with_tokens == 5


async def test_static_files_get_a_locked_down_policy(make_bot: MakeBot) -> None:
    bot = await make_bot()
    response = await bot.client.get("/static/favicon.svg")
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("setting", "sites"),
    [
        ({}, "'self'"),
        ({"frame_ancestors": "'self', https://intranet.contoso.com"}, "'self' https://intranet.contoso.com"),
    ],
)
async def test_only_the_configured_sites_may_frame_the_page(
    make_bot: MakeBot, setting: dict[str, str], sites: str
) -> None:
    page = await (await make_bot(**setting)).client.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert policy.endswith(f"; frame-ancestors {sites}")
    assert "script-src 'self'" in policy  # the page's own policy is kept


@pytest.mark.parametrize(
    "value", ["https://a.example.com; script-src *", "'self'\r\nSet-Cookie: x=1", "", "'unsafe-inline'"]
)
def test_a_frame_ancestors_value_that_is_not_csp_sources_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="Content-Security-Policy sources"):
        BotSettings(_env_file=None, frame_ancestors=value)
