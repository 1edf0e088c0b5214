"""Crash safety: `kill -9` the server in the middle of 1,000 turns over 100 threads, restart it, check the
history store.

"Acknowledged" means `/api/messages` answered 200: the bot answers only after the reply went out and
the turn was written to its SQLite store (see bot/memory.py), so an acknowledged turn must survive
the kill. A turn cut off by the kill may or may not have been stored; when the client sends it again
after the restart (same activity id, as a channel redelivers), the bot must not store it twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.activity import thread_key
from bot.memory import ThreadMemory
from bot.state import STATE_FILE
from bot.state.sqlite import SqliteStore
from tests.bot.fakes import FakeConnector
from tests.reliability.activities import thread_turn
from tests.reliability.processes import BotProcess

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
THREADS = 100
TURNS = 10
KILL_AFTER_ACKS = 400
LOAD_S = 60.0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[BotProcess]:
    process = BotProcess(tmp_path)
    yield process
    if process.process is not None:
        await process.kill()


async def load(
    session: aiohttp.ClientSession, server: BotProcess, service_url: str, acked: dict[int, list[int]]
) -> None:
    """100 threads, each posting its 10 turns in order; the server is killed after KILL_AFTER_ACKS."""
    killed = asyncio.Event()

    async def one_thread(thread: int) -> None:
        for index in range(TURNS):
            try:
                async with session.post(
                    f"{server.url}/api/messages", json=thread_turn(service_url, thread, index)
                ) as r:
                    if r.status != 200:
                        raise AssertionError(f"turn {thread}/{index} answered {r.status}: {await r.text()}")
            except aiohttp.ClientError:
                assert killed.is_set(), "the server failed before it was killed"
                return
            acked[thread].append(index)
            if sum(map(len, acked.values())) >= KILL_AFTER_ACKS and not killed.is_set():
                killed.set()
                await server.kill()

    async with asyncio.timeout(LOAD_S):
        await asyncio.gather(*(one_thread(thread) for thread in range(THREADS)))


async def histories(data_dir: Path, service_url: str) -> dict[int, list[tuple[str, str]]]:
    """Each thread's stored turns as (role, content), read through the bot's own Storage and memory."""
    storage = SqliteStore(data_dir / STATE_FILE)
    memory = ThreadMemory(storage, history_tokens=100_000)
    try:
        found = {}
        for thread in range(THREADS):
            state = (await memory.load(thread_key(thread_turn(service_url, thread, 0)))).state
            found[thread] = [(t.role, t.content) for t in state.history()]
        return found
    finally:
        await storage.aclose()


def questions(history: list[tuple[str, str]]) -> list[str]:
    """The thread's questions, checking each is followed by the answer to it."""
    asked = []
    for position in range(0, len(history), 2):
        (role, question), (answer_role, answer) = history[position], history[position + 1]
        assert (role, answer_role) == ("user", "assistant")
        assert question in answer  # the scripted answerer repeats the question
        asked.append(question)
    return asked


async def test_kill_9_mid_load_loses_no_acknowledged_turn_and_stores_none_twice(
    server: BotProcess, tmp_path: Path, aiohttp_server: Any
) -> None:
    connector = FakeConnector()
    service_url = str((await aiohttp_server(connector.app)).make_url("")).rstrip("/") + "/"
    acked: dict[int, list[int]] = {thread: [] for thread in range(THREADS)}
    await server.start()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=THREADS)) as session:
        await load(session, server, service_url, acked)
        total = sum(map(len, acked.values()))
        assert KILL_AFTER_ACKS <= total < THREADS * TURNS, "the kill did not land mid-load"

        await server.start()  # the same data dir
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        after_kill = await histories(tmp_path, service_url)
        for thread, history in after_kill.items():
            asked = questions(history)
            expected_prefix = [f"thread {thread} question {i}" for i in acked[thread]]
            assert asked[: len(expected_prefix)] == expected_prefix, thread
            assert len(asked) <= len(expected_prefix) + 1, (
                "only the turn in flight may be there unacknowledged"
            )

        # The client sends every turn it has no acknowledgement for again, as a channel redelivers.
        async def resend(thread: int) -> None:
            for index in range(len(acked[thread]), TURNS):
                async with session.post(
                    f"{server.url}/api/messages", json=thread_turn(service_url, thread, index)
                ) as r:
                    assert r.status == 200, await r.text()

        async with asyncio.timeout(LOAD_S):
            await asyncio.gather(*(resend(thread) for thread in range(THREADS)))

    await server.kill()
    for thread, history in (await histories(tmp_path, service_url)).items():
        assert questions(history) == [f"thread {thread} question {i}" for i in range(TURNS)], thread
