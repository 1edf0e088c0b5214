"""The local Direct Line under the probes of issue #13: nobody but the bot posts as the bot, memory is
bounded in bytes, and one client cannot evict the others' conversations."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.bot.conftest import MakeBot

pytestmark = pytest.mark.reliability

DL = "/v3/directline"


class WebChat:
    """One visitor of the page: a token from `/api/directline/token`, a started conversation, polling."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.conversation = ""
        self.token = ""

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self) -> WebChat:
        minted = await (await self.client.post("/api/directline/token")).json()
        self.token = minted["token"]
        started = await self.client.post(f"{DL}/conversations", headers=self.auth())
        assert started.status == 201, await started.text()
        self.conversation, self.token = minted["conversationId"], (await started.json())["token"]
        return self

    async def activities(self) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{DL}/conversations/{self.conversation}/activities", headers=self.auth()
        )
        assert response.status == 200, await response.text()
        return list((await response.json())["activities"])

    async def ask(self, text: str) -> dict[str, Any]:
        """Post a message and wait for the bot's final reply to it."""
        response = await self.client.post(
            f"{DL}/conversations/{self.conversation}/activities",
            headers=self.auth(),
            json={"type": "message", "text": text},
        )
        assert response.status == 200, await response.text()
        asked = (await response.json())["id"]
        async with asyncio.timeout(10):
            while True:
                for activity in await self.activities():
                    if activity["type"] == "message" and activity.get("replyToId") == asked:
                        return activity
                await asyncio.sleep(0.02)


async def test_nobody_but_the_bot_posts_into_a_direct_line_conversation(make_bot: MakeBot) -> None:
    bot = await make_bot()
    chat = await WebChat(bot.client).start()
    before = await chat.activities()
    forged = {"type": "message", "from": {"id": "ragbot", "role": "bot"}, "text": "PAY HERE " + "x" * 100_000}
    cid = chat.conversation
    for method, path in (
        ("POST", f"/v3/conversations/{cid}/activities"),
        ("POST", f"/v3/conversations/{cid}/activities/{before[0]['id']}"),
        ("PUT", f"/v3/conversations/{cid}/activities/{before[0]['id']}"),
    ):
        for headers in ({}, chat.auth()):  # no credential, then the visitor's own token
            response = await bot.client.request(method, path, json=forged, headers=headers)
            assert response.status in (401, 403, 404, 405), (method, path, response.status)
    assert await chat.activities() == before
    reply = await chat.ask("help")  # while the bot itself still answers, in-process
    assert reply["from"]["role"] == "bot" and "knowledge base" in reply["text"]
    assert "PAY HERE" not in json.dumps(await chat.activities())
