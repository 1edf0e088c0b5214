"""The web chat's token endpoint binds the user App Service authentication signed in, and only that one:
into the local Direct Line's signed token (the bot is told who asks), or into the Azure Direct Line
token's user id (`dl_<object id>.<mac>`, which the bot verifies)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.identity import Identities, Principal
from bot.identity.principal import UserBinding
from bot.settings import BotSettings
from bot.web import add_webchat_routes
from tests.bot.graph_fake import TENANT
from tests.bot.test_identity_graph import ANN, BOB, easy_auth

from .conftest import RecordingBot
from .test_page import SECRET, FakeAzureDirectLine

ANN_SIGNED_IN = easy_auth(ANN)


async def chat(aiohttp_client: Any, bot: RecordingBot, identities: Identities, **settings: Any) -> TestClient:
    app = web.Application()
    add_webchat_routes(app, BotSettings(_env_file=None, **settings), bot, identities)
    client: TestClient = await aiohttp_client(app)
    return client


async def say(client: TestClient, bot: RecordingBot, token: str, text: str, **fields: Any) -> Any:
    auth = {"Authorization": f"Bearer {token}"}
    started = await client.post("/v3/directline/conversations", headers=auth)
    conversation = (await started.json())["conversationId"]
    activity = {"type": "message", "text": text, **fields}
    posted = await client.post(
        f"/v3/directline/conversations/{conversation}/activities", json=activity, headers=auth
    )
    assert posted.status == 200
    received = await bot.wait_for(lambda a: a.get("text") == text)
    return bot.principals[bot.received.index(received)]


async def test_the_local_token_carries_the_signed_in_user_to_the_bot(aiohttp_client: Any) -> None:
    bot = RecordingBot()
    client = await chat(aiohttp_client, bot, Identities(trust_principal_headers=True, tenant_id=TENANT))
    token = (await (await client.post("/api/directline/token", headers=ANN_SIGNED_IN)).json())["token"]
    assert await say(client, bot, token, "as ann") == Principal(ANN, TENANT)
    # a refreshed token keeps the user
    refreshed = await client.post(
        "/v3/directline/tokens/refresh", headers={"Authorization": f"Bearer {token}"}
    )
    assert await say(client, bot, (await refreshed.json())["token"], "as ann again") == Principal(ANN, TENANT)

    anonymous = (await (await client.post("/api/directline/token")).json())["token"]
    assert await say(client, bot, anonymous, "as nobody", **{"from": {"id": "x", "aadObjectId": ANN}}) is None
    # the Direct Line's own token route takes a user from the body, never an identity from headers
    generated = await client.post(
        "/v3/directline/tokens/generate", json={"user": {"id": f"dl_{ANN}"}}, headers=ANN_SIGNED_IN
    )
    assert await say(client, bot, (await generated.json())["token"], "generated") is None
    other_tenant = easy_auth(BOB, tid="99999999-2222-3333-4444-555555555555")
    foreign = (await (await client.post("/api/directline/token", headers=other_tenant)).json())["token"]
    assert await say(client, bot, foreign, "from elsewhere") is None


async def test_without_trust_the_headers_name_nobody(aiohttp_client: Any) -> None:
    bot = RecordingBot()
    client = await chat(aiohttp_client, bot, Identities(tenant_id=TENANT))
    token = (await (await client.post("/api/directline/token", headers=ANN_SIGNED_IN)).json())["token"]
    assert await say(client, bot, token, "hello") is None


async def test_azure_mode_binds_the_signed_in_user_into_the_direct_line_user_id(aiohttp_client: Any) -> None:
    fake = FakeAzureDirectLine()
    azure_app = web.Application()
    azure_app.router.add_post("/v3/directline/tokens/generate", fake.generate)
    server = TestServer(azure_app, host="127.0.0.1")
    await server.start_server()
    try:
        binding = UserBinding(SECRET)
        identities = Identities(trust_principal_headers=True, tenant_id=TENANT, binding=binding)
        client = await chat(
            aiohttp_client,
            RecordingBot(),
            identities,
            direct_line_secret=SECRET,
            direct_line_endpoint=str(server.make_url("/v3/directline")),
        )
        signed_in = await (await client.post("/api/directline/token", headers=ANN_SIGNED_IN)).json()
        anonymous = await (await client.post("/api/directline/token")).json()
    finally:
        await server.close()
    sent = [request["body"]["user"]["id"] for request in fake.requests]
    assert sent == [signed_in["userId"], anonymous["userId"]]
    assert binding.verify(signed_in["userId"]) == ANN
    assert binding.verify(anonymous["userId"]) is None
