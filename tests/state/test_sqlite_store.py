"""The SQLite store's own promises: group commit, one owner per file, restarts, the old format, and a
full or read-only disk (real tmpfs mounts)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.settings import BotSettings
from bot.state import Conflict, StoreUnavailable, open_store
from bot.state.sqlite import SqliteStore
from rag.errors import ConfigError
from tests.mounts import fill, remount_read_only, tmpfs


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state" / "state.sqlite")
    yield opened
    await opened.aclose()


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    first = SqliteStore(path)
    await first.create("k", '{"v":"kept"}')
    await first.aclose()
    second = SqliteStore(path)
    stored = await second.read("k")
    assert stored is not None and stored.doc == '{"v":"kept"}'
    await second.aclose()


async def test_many_concurrent_writers_lose_nothing(store: SqliteStore) -> None:
    await asyncio.gather(*(store.create(f"key-{n}", json.dumps({"n": n})) for n in range(200)))
    found = await store.scan("key-")
    assert sorted(json.loads(doc)["n"] for _, doc in found) == list(range(200))


async def test_a_conflict_fails_only_its_own_write_when_writes_share_a_round(store: SqliteStore) -> None:
    stale = await store.create("x", '{"v":1}')
    await store.replace("x", '{"v":2}', stale)
    results = await asyncio.gather(
        store.replace("x", '{"v":3}', stale),
        *(store.create(f"ok-{n}", "{}") for n in range(20)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Conflict) and all(isinstance(r, str) for r in results[1:])
    stored = await store.read("x")
    assert stored is not None and stored.doc == '{"v":2}'
    assert len(await store.scan("ok-")) == 20


async def test_one_owner_per_file_and_readers_see_its_writes(tmp_path: Path) -> None:
    path = tmp_path / "owned.sqlite"
    owner = SqliteStore(path, owner=True)
    await owner.open()
    with pytest.raises(StoreUnavailable, match="in use by another ragbot server"):
        await SqliteStore(path, owner=True).open()
    await owner.put("k", '{"v":1}')
    reader = SqliteStore(path)
    assert (await reader.read("k")) == await owner.read("k")
    await owner.delete("k")
    assert await reader.read("k") is None
    await reader.aclose()
    await owner.aclose()
    again = SqliteStore(path, owner=True)  # the lock went with aclose()
    await again.open()
    await again.aclose()


async def test_a_file_of_the_botbuilder_storage_era_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    thread = '{"turns":[],"seen":["a1"],"answers":[]}'
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (key TEXT PRIMARY KEY, etag TEXT NOT NULL, doc TEXT NOT NULL)")
        db.execute("INSERT INTO items VALUES ('webchat|-|c', 'e1', ?)", (json.dumps({"state": thread}),))
        db.execute("INSERT INTO items VALUES ('feedback|x', 'e2', '{\"reaction\": \"like\"}')")
    store = SqliteStore(path, owner=True)
    await store.open()
    migrated = await store.read("webchat|-|c")
    assert migrated is not None and json.loads(migrated.doc) == json.loads(thread)
    assert await store.scan("feedback|") == [("feedback|x", '{"reaction": "like"}')]
    await store.aclose()


async def test_a_full_disk_refuses_writes_keeps_data_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        store = SqliteStore(disk / "state.sqlite", owner=True)
        await store.open()
        etag = await store.create("thread", json.dumps({"turns": ["first"]}))
        filler = fill(disk)
        big = json.dumps({"turns": ["first", "x" * 300_000]})
        with pytest.raises(StoreUnavailable, match="full"):
            await store.replace("thread", big, etag)
        problem = await store.problem()
        assert problem is not None and "full" in problem and str(disk) in problem
        stored = await store.read("thread")
        assert stored is not None and stored.etag == etag and json.loads(stored.doc) == {"turns": ["first"]}
        filler.unlink()
        assert await store.problem() is None, "the probe notices the space came back"
        await store.replace("thread", big, etag)
        await store.aclose()


async def test_a_read_only_data_dir_is_a_start_up_error_naming_it(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as disk:
        remount_read_only(disk)
        settings = BotSettings(_env_file=None, data_dir=disk)  # type: ignore[call-arg]
        store = SqliteStore(disk / "state.sqlite", owner=True)
        with pytest.raises(ConfigError, match=f"cannot be kept in {disk}.*Read-only file system"):
            await open_store(store, settings)
        await store.aclose()
