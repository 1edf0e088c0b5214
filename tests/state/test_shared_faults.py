"""Shared stores that cannot be reached: a typed `StoreUnavailable` with the reason (never a hang or a
raw SDK error), readiness that says why, and `ragbot serve` refusing to start on one (exit 2); and the
per-user rate limit counted once for all replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.state import StateStore, StoreUnavailable
from bot.state.blob import BlobStore
from bot.state.cosmos import CosmosStore
from bot.state.redis import RedisStore
from tests.commandline import run_ragbot
from tests.loopback import serve
from tests.reliability.processes import free_port
from tests.servers import AZURITE_KEY, Azurite, RedisServer
from tests.state.conftest import FAKE_KEY
from tests.state.cosmos_fake import CosmosFake


def unreachable(kind: str) -> StateStore:
    port = free_port()  # nothing listens there
    if kind == "redis":
        return RedisStore(f"redis://127.0.0.1:{port}/0")
    if kind == "blob":
        return BlobStore.from_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
            "state",
        )
    return CosmosStore(f"http://127.0.0.1:{port}/", FAKE_KEY, "ragbot", "conversations")


@pytest.mark.parametrize("kind", ["redis", "blob", "cosmos"])
async def test_an_unreachable_store_is_a_typed_error_with_the_reason(kind: str) -> None:
    store = unreachable(kind)
    try:
        with pytest.raises(StoreUnavailable):
            await store.open()
        with pytest.raises(StoreUnavailable):
            await store.read("k")
        with pytest.raises(StoreUnavailable):
            await store.create("k", "{}")
        problem = await store.problem()
        assert problem and kind in store.name
    finally:
        await store.aclose()


async def test_cosmos_answering_503_is_unavailable_and_recovers() -> None:
    fake = CosmosFake()
    async with serve(fake.handle) as url:
        store = CosmosStore(url + "/", FAKE_KEY, fake.database, fake.container)
        await store.open()
        etag = await store.create("k", "{}")
        fake.down = True
        with pytest.raises(StoreUnavailable, match=r"ServiceUnavailable|503"):
            await store.replace("k", '{"v":1}', etag)
        assert await store.problem()
        fake.down = False
        assert await store.problem() is None
        await store.replace("k", '{"v":1}', etag)
        await store.aclose()


async def test_a_missing_cosmos_container_is_named_at_start_up() -> None:
    fake = CosmosFake()
    async with serve(fake.handle) as url:
        store = CosmosStore(url + "/", FAKE_KEY, fake.database, "nope")
        with pytest.raises(StoreUnavailable, match=r"colls/nope does not exist.*partition key /id"):
            await store.open()
        await store.aclose()


def test_ragbot_serve_on_an_unreachable_store_exits_2_saying_which(tmp_path: Path) -> None:
    port = free_port()
    env = {"RAGBOT_STORAGE": "redis", "RAGBOT_REDIS_URL": f"redis://:secret@127.0.0.1:{port}/0"}
    result = run_ragbot("serve", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert f"RAGBOT_STORAGE=redis: cannot use redis (127.0.0.1:{port}/0)" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["redis", "blob"])
async def test_two_replicas_share_one_users_rate_limit(
    kind: str, request: pytest.FixtureRequest, redis_server: RedisServer
) -> None:
    if kind == "redis":
        replicas: list[StateStore] = [RedisStore(redis_server.url, prefix="rate-test:") for _ in range(2)]
    else:
        azurite: Azurite = request.getfixturevalue("azurite")
        replicas = [
            BlobStore.from_connection_string(azurite.connection_string, "rate-test") for _ in range(2)
        ]
    for replica in replicas:
        await replica.open()
    try:
        waits = [await replicas[n % 2].take("rate|teams|ann", 4, 60.0) for n in range(6)]
        assert waits[:4] == [0.0] * 4 and all(w > 0 for w in waits[4:]), waits
    finally:
        for replica in replicas:
            await replica.aclose()
