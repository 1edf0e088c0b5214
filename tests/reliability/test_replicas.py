"""Two bot replicas on one shared store (Redis, and Azure Blob storage on Azurite), real processes.

Each thread's turns alternate between the replicas, as a load balancer without affinity sends them;
nothing but the store's conditional writes (create-if-absent, compare-and-swap on eTags) orders them.
A channel that gets no 200 sends the activity again, to the other replica; a turn answered with the
bot's polite "can't save / can't reach my memory" reply is asked again by its user.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.activity import thread_key
from bot.memory import ThreadMemory
from bot.state import StateStore
from bot.state.blob import BlobStore
from bot.state.redis import RedisStore
from bot.turns import MEMORY_DOWN, NOT_SAVED
from tests.bot.fakes import FakeConnector
from tests.reliability.activities import thread_turn
from tests.reliability.processes import BotProcess
from tests.servers import Azurite, RedisServer, Server

pytestmark = pytest.mark.reliability

THREADS = 100
TURNS = 10
RESTART_THREADS = 30
"""The restart case needs turns in flight while the store is down, not a thousand of them."""
LOAD_S = 120.0
POLITE = (MEMORY_DOWN, NOT_SAVED)


@dataclass
class Shared:
    """The store's server, the settings that point a replica at it, and a store to read it back."""

    server: Server
    env: dict[str, str]
    open_store: Callable[[], StateStore]


@pytest.fixture(params=["redis", "blob"])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shared]:
    if request.param == "redis":
        redis = RedisServer(tmp_path / "redis")
        await asyncio.to_thread(redis.start)
        env = {"RAGBOT_STORAGE": "redis", "RAGBOT_REDIS_URL": redis.url}
        yield Shared(redis, env, lambda: RedisStore(redis.url))
        await asyncio.to_thread(redis.kill)
    else:
        azurite = Azurite(tmp_path / "azurite")
        await asyncio.to_thread(azurite.start)
        env = {"RAGBOT_STORAGE": "blob", "RAGBOT_BLOB_CONNECTION_STRING": azurite.connection_string}
        yield Shared(
            azurite, env, lambda: BlobStore.from_connection_string(azurite.connection_string, "ragbot-state")
        )
        await asyncio.to_thread(azurite.kill)


@dataclass
class Cluster:
    replicas: list[BotProcess]
    connector: FakeConnector
    service_url: str
    session: aiohttp.ClientSession
    acked: dict[int, list[int]] = field(default_factory=dict)

    def turn(self, thread: int, index: int) -> dict[str, Any]:
        return thread_turn(self.service_url, thread, index)

    async def post(self, replica: BotProcess, thread: int, index: int) -> int:
        async with self.session.post(f"{replica.url}/api/messages", json=self.turn(thread, index)) as r:
            assert r.status == 200, f"turn {thread}/{index} answered {r.status}: {await r.text()}"
            return r.status

    def replies(self, thread: int, index: int) -> list[str]:
        return [m.text for m in self.connector.received if m.reply_to_id == f"t{thread}-q{index}"]


@pytest.fixture
async def cluster(shared: Shared, tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Cluster]:
    connector = FakeConnector()
    service_url = str((await aiohttp_server(connector.app)).make_url("")).rstrip("/") + "/"
    replicas = [BotProcess(tmp_path / f"replica-{n}", shared.env) for n in range(2)]
    await asyncio.gather(*(replica.start() for replica in replicas))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=THREADS)) as session:
        yield Cluster(replicas, connector, service_url, session)
    await asyncio.gather(*(replica.kill() for replica in replicas))


async def histories(shared: Shared, cluster: Cluster, threads: int = THREADS) -> dict[int, list[str]]:
    """Each thread's stored questions, checking each is followed by the answer to it."""
    store = shared.open_store()
    memory = ThreadMemory(store, history_tokens=100_000)
    found: dict[int, list[str]] = {}
    try:
        for thread in range(threads):
            turns = (await memory.load(thread_key(cluster.turn(thread, 0)))).state.history()
            asked = []
            for question, answer in zip(turns[::2], turns[1::2], strict=True):
                assert (question.role, answer.role) == ("user", "assistant")
                assert question.content in answer.content  # the scripted answerer repeats the question
                asked.append(question.content)
            found[thread] = asked
    finally:
        await store.aclose()
    return found


def all_questions(thread: int) -> list[str]:
    return [f"thread {thread} question {i}" for i in range(TURNS)]


async def test_turns_alternating_between_replicas_keep_every_history_whole(
    shared: Shared, cluster: Cluster
) -> None:
    async def one_thread(thread: int) -> None:
        for index in range(TURNS):
            await cluster.post(cluster.replicas[(thread + index) % 2], thread, index)

    async with asyncio.timeout(LOAD_S):
        await asyncio.gather(*(one_thread(thread) for thread in range(THREADS)))
    for thread, asked in (await histories(shared, cluster)).items():
        assert asked == all_questions(thread), thread
        for index in range(TURNS):
            (reply,) = cluster.replies(thread, index)
            assert reply not in POLITE


async def test_first_turns_of_one_thread_on_both_replicas_at_once_are_both_kept(
    shared: Shared, cluster: Cluster
) -> None:
    async with asyncio.timeout(LOAD_S):
        await asyncio.gather(
            *(
                cluster.post(cluster.replicas[index], thread, index)
                for thread in range(THREADS)
                for index in (0, 1)
            )
        )
    for thread, asked in (await histories(shared, cluster)).items():
        assert sorted(asked) == all_questions(thread)[:2], thread


async def test_kill_9_of_a_replica_loses_no_acknowledged_turn_and_answers_redeliveries_once(
    shared: Shared, cluster: Cluster
) -> None:
    victim, survivor = cluster.replicas
    acked = 0
    killed = asyncio.Event()
    redelivered: list[tuple[int, int]] = []

    async def one_thread(thread: int) -> None:
        nonlocal acked
        for index in range(TURNS):
            replica = cluster.replicas[(thread + index) % 2] if not killed.is_set() else survivor
            try:
                await cluster.post(replica, thread, index)
            except aiohttp.ClientError:
                assert replica is victim and killed.is_set(), "only the killed replica may fail"
                redelivered.append((thread, index))
                await cluster.post(survivor, thread, index)  # the channel sends it again, elsewhere
            acked += 1
            if acked >= 400 and not killed.is_set():
                killed.set()
                await victim.kill()

    async with asyncio.timeout(LOAD_S):
        await asyncio.gather(*(one_thread(thread) for thread in range(THREADS)))
    assert killed.is_set() and redelivered, "the kill did not land mid-load"
    for thread, asked in (await histories(shared, cluster)).items():
        assert asked == all_questions(thread), thread
    for thread in range(THREADS):
        for index in range(TURNS):
            answers = [r for r in cluster.replies(thread, index) if r not in POLITE]
            # Only a turn cut off between its reply and its save may have been answered twice.
            assert len(answers) == 1 or ((thread, index) in redelivered and len(answers) == 2)


async def test_the_store_restarted_mid_load_fails_turns_politely_and_loses_nothing(
    shared: Shared, cluster: Cluster
) -> None:
    acked = 0
    polite = 0
    restarted = asyncio.Event()

    async def restart() -> None:
        await asyncio.to_thread(shared.server.stop)
        await asyncio.sleep(0.3)  # turns arrive while it is down
        await asyncio.to_thread(shared.server.start)

    async def one_thread(thread: int) -> None:
        nonlocal acked, polite
        for index in range(TURNS):
            for attempt in range(100):
                await cluster.post(cluster.replicas[(thread + index + attempt) % 2], thread, index)
                if not set(cluster.replies(thread, index)) & set(POLITE):
                    break
                polite += 1  # its user asks again
                cluster.connector.received = [
                    m for m in cluster.connector.received if m.reply_to_id != f"t{thread}-q{index}"
                ]
                await asyncio.sleep(0.1)
            acked += 1
            if acked == RESTART_THREADS * TURNS // 3:
                restarted.set()

    async def restart_a_third_in() -> None:
        await restarted.wait()
        await restart()

    async with asyncio.timeout(LOAD_S):
        await asyncio.gather(restart_a_third_in(), *(one_thread(thread) for thread in range(RESTART_THREADS)))
    assert polite, "no turn met the store while it was down"
    for thread, asked in (await histories(shared, cluster, RESTART_THREADS)).items():
        assert asked == all_questions(thread), thread
