"""A test bot next to the web chat routes, all on one real loopback server.

The local Direct Line hands it each activity in-process, with an outbox; it answers a message the way
the real one streams in Web Chat: a typing update, then the final message under the id the update got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.identity import Principal
from bot.outbox import Outbox
from bot.settings import BotSettings
from bot.web import add_webchat_routes

Activity = dict[str, Any]


class BotFailed(Exception):
    """What the test bot raises for "fail"."""


class RecordingBot:
    """Remembers what it receives; replies to messages through the outbox it is given."""

    def __init__(self) -> None:
        self.received: list[Activity] = []
        self.reply_ids: list[str | None] = []
        self.principals: list[Principal | None] = []
        """What the Direct Line vouched for, per activity received."""
        self.release = asyncio.Event()
        """Messages saying "hold" wait for this, keeping their turns open."""

    async def handle(self, activity: Activity, outbox: Outbox, *, principal: Principal | None = None) -> None:
        self.received.append(activity)
        self.principals.append(principal)
        if activity["type"] != "message":
            return
        if activity.get("text") == "fail":
            raise BotFailed("boom")
        if activity.get("text") == "hold":
            await self.release.wait()
        update = {
            "type": "typing",
            "text": "Looking",
            "channelData": {"streamType": "streaming", "streamSequence": 1},
        }
        stream_id = await outbox.send(update)
        final = {
            "type": "message",
            "id": stream_id,
            "text": f"You said: {activity['text']}",
            "channelData": {"streamType": "final", "streamId": stream_id},
        }
        self.reply_ids.append(await outbox.send(final))

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
        add_webchat_routes(app, BotSettings(_env_file=None, **settings), bot)
        client: TestClient = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()
