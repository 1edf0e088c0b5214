"""The async OpenID key cache: refresh ahead of expiry, keys kept when a refresh fails."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bot.hosts.errors import AuthUnavailable
from bot.hosts.openid import OpenIdKeys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Metadata:
    """OpenID metadata + JWKS on loopback that can be made to fail (500)."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = {
            **json.loads(RSAAlgorithm.to_jwk(key.public_key())),
            "kid": "k1",
            "endorsements": ["msteams"],
        }
        self.failing = False
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_get("/openid", self.openid)
        self.app.router.add_get("/keys", self.keys)

    async def openid(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.failing:
            return web.json_response({}, status=500)
        return web.json_response({"jwks_uri": str(request.url.with_path("/keys"))})

    async def keys(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.jwk, {"kty": "oct", "kid": "ignored"}]})


@pytest.fixture
async def served(aiohttp_server: Any) -> Any:
    metadata = Metadata()
    server = await aiohttp_server(metadata.app)
    async with aiohttp.ClientSession() as session:
        yield metadata, str(server.make_url("/openid")), session


async def test_keys_refresh_ahead_and_survive_a_failed_refresh(served: Any) -> None:
    metadata, url, session = served
    clock = Clock()
    keys = OpenIdKeys(lambda: session, url, refresh_after=100, max_age=1000, clock=clock)
    first = await keys.key("k1")
    assert first is not None and first.endorsements == ("msteams",)
    assert await keys.key("ignored") is None  # not an RSA key: never used
    metadata.failing = True
    clock.now += 150  # due for a refresh: served from the cache while it runs in the background
    assert await keys.key("k1") is first
    await asyncio.sleep(0.2)
    assert metadata.requests == 2
    assert await keys.key("k1") is first, "a failed refresh keeps the keys"
    clock.now += 1000  # past max_age and the metadata still fails: the token cannot be checked
    with pytest.raises(AuthUnavailable):
        await keys.key("k1")
    metadata.failing = False
    clock.now += 10  # after retry_after, the next request fetches again
    assert await keys.key("k1") is not None


async def test_concurrent_first_requests_share_one_fetch(served: Any) -> None:
    metadata, url, session = served
    keys = OpenIdKeys(lambda: session, url)
    found = await asyncio.gather(*(keys.key("k1") for _ in range(30)))
    assert all(f is found[0] for f in found) and metadata.requests == 1 and keys.fetches == 1
