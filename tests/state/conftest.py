"""Fixtures of the state suite: every store behind the seam, each on a real server where one exists."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bot.state import StateStore
from bot.state.blob import BlobStore
from bot.state.cache import CachedStore
from bot.state.cosmos import CosmosStore
from bot.state.memory import MemoryStore
from bot.state.redis import RedisStore
from bot.state.sqlite import SqliteStore
from tests.loopback import serve
from tests.servers import Azurite, RedisServer
from tests.state.cosmos_fake import CosmosFake

FAKE_KEY = "ZmFrZS1rZXk="
"""Any base64 text: the fake checks no signature."""
KINDS = ["memory", "sqlite", "cached-sqlite", "redis", "blob", "cosmos"]


async def make_store(kind: str, tmp_path: Path) -> StateStore:
    """The store of `kind`; a server it needs must be running (see the `store` fixture)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SqliteStore(tmp_path / "state.sqlite", owner=True)
    if kind == "cached-sqlite":
        return CachedStore(SqliteStore(tmp_path / "state.sqlite", owner=True))
    raise AssertionError(kind)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with Azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """Each test gets a store of its own: a fresh file, Redis key prefix or blob container."""
    kind = request.param
    made: StateStore
    servers = AsyncExitStack()
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        made = RedisStore(server.url, prefix=f"test-{uuid.uuid4().hex}:")
    elif kind == "blob":
        server = request.getfixturevalue("azurite")
        made = BlobStore.from_connection_string(server.connection_string, f"t{uuid.uuid4().hex}")
    elif kind == "cosmos":
        fake = CosmosFake()
        url = await servers.enter_async_context(serve(fake.handle))
        made = CosmosStore(url + "/", FAKE_KEY, fake.database, fake.container)
    else:
        made = await make_store(kind, tmp_path)
    await made.open()
    yield made
    await made.aclose()
    await servers.aclose()
