"""The local Direct Line under the probes of issue #13: nobody but the bot posts as the bot, memory is
bounded in bytes, and one client cannot evict the others' conversations."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.web import LOCAL_DIRECT_LINE
from tests.bot.conftest import Bot, MakeBot
from tests.reliability.processes import HOST, free_port, wait_healthy

pytestmark = pytest.mark.reliability

DL = "/v3/directline"
EVENT = {"type": "event", "name": "probe", "value": "x" * (32 * 1024 - 400)}
"""Just under the 32 kB the Direct Line takes in one activity."""


@asynccontextmanager
async def ragbot_serve(tmp_path: Path, **env: str) -> AsyncIterator[str]:
    """A real `ragbot serve` (On Your Data at an address that does not resolve: no answers needed)."""
    port = free_port()
    env = {
        **os.environ,
        "RAGBOT_DATA_DIR": str(tmp_path),
        "RAGBOT_STORAGE": "memory",
        "RAGBOT_BACKEND": "on_your_data",
        "AZURE_OPENAI_ENDPOINT": "https://openai.invalid",
        "AZURE_OPENAI_KEY": "k",
        "AZURE_OPENAI_MODEL": "gpt",
        "AZURE_SEARCH_ENDPOINT": "https://search.invalid",
        "AZURE_SEARCH_INDEX": "kb",
        "AZURE_SEARCH_KEY": "k",
        **env,
    }
    with (tmp_path / "serve.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "ragbot", "serve", "--host", HOST, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        url = f"http://{HOST}:{port}"
        await wait_healthy(process, url)
        yield url
    finally:
        process.kill()
        await process.wait()


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


async def test_direct_line_memory_is_bounded_in_bytes_and_watermarks_stay_valid(tmp_path: Path) -> None:
    budgets = {"RAGBOT_DIRECTLINE_CONVERSATION_BYTES": "256KiB", "RAGBOT_DIRECTLINE_TOTAL_BYTES": "1MiB"}
    async with ragbot_serve(tmp_path, **budgets) as url, aiohttp.ClientSession(url) as session:

        async def chat() -> tuple[dict[str, str], str]:
            minted = await (await session.post("/api/directline/token")).json()
            started = await session.post(f"{DL}/conversations", headers=bearer(minted["token"]))
            return bearer((await started.json())["token"]), minted["conversationId"]

        async def fill(auth: dict[str, str], cid: str, events: int) -> None:
            sent = 0
            while sent < events:
                async with session.post(
                    f"{DL}/conversations/{cid}/activities", json=EVENT, headers=auth
                ) as posted:
                    if posted.status == 429:  # deliveries queued: the server says wait
                        await asyncio.sleep(0.02)
                        continue
                    assert posted.status == 200, await posted.text()
                    sent += 1

        async def page(auth: dict[str, str], cid: str, watermark: str = "") -> tuple[str, dict[str, Any]]:
            query = f"?watermark={watermark}" if watermark else ""
            async with session.get(f"{DL}/conversations/{cid}/activities{query}", headers=auth) as response:
                text = await response.text()
                return text, json.loads(text)

        chats = [await chat() for _ in range(6)]
        first_auth, first = chats[0]
        await fill(first_auth, first, 2)
        _, early = await page(first_auth, first)  # a client that saw the join and two events
        await asyncio.gather(*(fill(auth, cid, 30) for auth, cid in chats))  # 5.9 MB in all

        held = 0
        for auth, cid in chats:
            text, body = await page(auth, cid)
            held += len(text)
            assert len(text) <= 256 * 1024, "one conversation holds more than its budget"
            assert body["activities"][-1]["name"] == "probe"  # the newest stays
        assert held <= 1024**2, f"{held} bytes held over a 1 MiB budget"
        # From a watermark whose activities were dropped: what remains after it, consistently.
        _, now = await page(first_auth, first)
        _, resumed = await page(first_auth, first, early["watermark"])
        assert resumed == now and now["watermark"] == str(int(early["watermark"]) + 30)
        assert (await page(first_auth, first, now["watermark"]))[1]["activities"] == []


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Visitor:
    """A web chat client on its own loopback address (all of 127.0.0.0/8 is this machine), so the
    server sees a different client than the test client's 127.0.0.1."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def start(self) -> tuple[int, dict[str, str], str]:
        """(status of the first refused step or 201, the conversation's auth header, its id)."""
        async with self.session.post("/api/directline/token") as minted:
            if minted.status != 200:
                assert minted.headers["Retry-After"].isdigit()
                return minted.status, {}, ""
            token = await minted.json()
        async with self.session.post(f"{DL}/conversations", headers=bearer(token["token"])) as started:
            if started.status != 201:
                assert started.headers["Retry-After"].isdigit()
                return started.status, {}, ""
            return 201, bearer((await started.json())["token"]), token["conversationId"]


@asynccontextmanager
async def visitors(bot: Bot, *addresses: str) -> AsyncIterator[list[Visitor]]:
    base = str(bot.client.make_url(""))
    sessions = [
        aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(local_addr=(address, 0)))
        for address in addresses
    ]
    try:
        yield [Visitor(session) for session in sessions]
    finally:
        for session in sessions:
            await session.close()


async def answered(visitor: Visitor, auth: dict[str, str], cid: str) -> bool:
    """The visitor asks `help`; True when the bot's reply arrives (False: the conversation is gone)."""
    async with visitor.session.post(
        f"{DL}/conversations/{cid}/activities", json={"type": "message", "text": "help"}, headers=auth
    ) as posted:
        if posted.status != 200:
            return False
        asked = (await posted.json())["id"]
    async with asyncio.timeout(10):
        while True:
            async with visitor.session.get(f"{DL}/conversations/{cid}/activities", headers=auth) as page:
                if page.status != 200:
                    return False
                if any(a.get("replyToId") == asked for a in (await page.json())["activities"]):
                    return True
            await asyncio.sleep(0.02)


async def test_a_flood_of_conversation_starts_gets_429_and_the_victim_keeps_talking(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    async with visitors(bot, "127.0.0.2", "127.0.0.1") as (victim, flood):
        status, auth, cid = await victim.start()
        assert status == 201
        statuses = await asyncio.gather(*(flood.start() for _ in range(1000)))
        opened = [s for s, _, _ in statuses].count(201)
        assert opened == bot.settings.directline_starts_per_minute
        assert [s for s, _, _ in statuses].count(429) == 1000 - opened
        assert await answered(victim, auth, cid)
        # `tokens/generate` is limited too, under the same count as the page's token route.
        async with flood.session.post(f"{DL}/tokens/generate") as generated:
            assert generated.status == 429


async def test_one_client_cannot_evict_another(make_bot: MakeBot) -> None:
    bot = await make_bot(directline_starts_per_minute=10_000)
    store = bot.client.app[LOCAL_DIRECT_LINE].store
    store.max_conversations = 6
    async with visitors(bot, "127.0.0.2", "127.0.0.3", "127.0.0.1") as (victim, other, flood):
        status, auth, cid = await victim.start()
        assert status == 201
        flooded = [await flood.start() for _ in range(40)]  # within the rate, far over the store's cap
        assert all(status == 201 for status, _, _ in flooded)
        newest = [c for _, _, c in flooded[-5:]]
        assert cid in store and len(store) == 6 and all(c in store for c in newest)  # at its own expense
        assert await answered(victim, auth, cid)
        assert (await other.start())[0] == 201  # room made by the heaviest client: the flood
        assert cid in store and sum(c in store for c in newest) == 4


async def test_a_full_store_of_conversations_in_use_refuses_a_start_rather_than_evict(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    bot.client.app[LOCAL_DIRECT_LINE].store.max_conversations = 2
    async with visitors(bot, "127.0.0.2", "127.0.0.3", "127.0.0.1") as (first, second, late):
        chats = [await first.start(), await second.start()]
        assert [status for status, _, _ in chats] == [201, 201]
        assert (await late.start())[0] == 503
        assert await answered(first, *chats[0][1:]) and await answered(second, *chats[1][1:])
