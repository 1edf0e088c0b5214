"""A test bot on `/api/messages` next to the web chat routes, all on one real loopback server.

The bot answers a message the way the real one streams in Web Chat: a typing update posted to
`serviceUrl` (the local Direct Line), then the final message under the id the update got back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient

from bot.settings import BotSettings
from bot.web import add_webchat_routes

Activity = dict[str, Any]


class RecordingBot:
    """Remembers what it receives; replies to messages through the connector API on serviceUrl."""

    def __init__(self) -> None:
        self.received: list[Activity] = []
        self.reply_ids: list[str] = []
        self.release = asyncio.Event()
        """Messages saying "hold" wait for this, keeping their turns open."""

    async def messages(self, request: web.Request) -> web.Response:
        activity = await request.json()
        self.received.append(activity)
        if activity["type"] != "message":
            return web.Response(status=201)
        if activity.get("text") == "fail":
            return web.Response(status=500, text="boom")
        if activity.get("text") == "hold":
            await self.release.wait()
        base = activity["serviceUrl"].rstrip("/")
        conversation_id = activity["conversation"]["id"]
        reply_url = f"{base}/v3/conversations/{conversation_id}/activities/{activity['id']}"
        async with ClientSession() as session:
            update = {
                "type": "typing",
                "text": "Looking",
                "replyToId": activity["id"],
                "channelData": {"streamType": "streaming", "streamSequence": 1},
            }
            async with session.post(reply_url, json=update) as response:
                stream_id = (await response.json())["id"]
            final = {
                "type": "message",
                "id": stream_id,
                "text": f"You said: {activity['text']}",
                "replyToId": activity["id"],
                "channelData": {"streamType": "final", "streamId": stream_id},
            }
            async with session.post(reply_url, json=final) as response:
                self.reply_ids.append((await response.json())["id"])
        return web.Response(status=201)

    async def wait_for(self, predicate: Callable[[Activity], bool]) -> Activity:
        async with asyncio.timeout(10):
            while True:
                for activity in self.received:
                    if predicate(activity):
                        return activity
                await asyncio.sleep(0.02)


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(aiohttp_client: Any, bot: RecordingBot) -> MakeClient:
    async def make(**settings: Any) -> TestClient:
        app = web.Application()
        app.router.add_post("/api/messages", bot.messages)
        add_webchat_routes(app, BotSettings(_env_file=None, **settings))
        client: TestClient = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()
