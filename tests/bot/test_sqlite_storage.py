"""botbuilder's Storage contract on the SQLite store: round trips, eTags, restarts, concurrent writers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import ANY

import pytest
from botbuilder.core import StoreItem

from bot.sqlite_storage import EtagConflict, SqliteStorage
from rag.errors import ConfigError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(tmp_path / "state" / "state.sqlite")
    yield storage
    await storage.close()


async def test_round_trip_and_missing_keys(store: SqliteStorage) -> None:
    await store.write({"a": {"n": 1, "text": "é"}, "b": StoreItem(n=2)})
    found = await store.read(["a", "b", "missing"])
    assert set(found) == {"a", "b"}
    assert found["a"]["n"] == 1 and found["a"]["text"] == "é" and found["a"]["e_tag"]
    assert found["b"]["n"] == 2
    assert await store.read([]) == {}


async def test_etag_guards_concurrent_updates(store: SqliteStorage) -> None:
    await store.write({"k": {"v": 1}})
    first = (await store.read(["k"]))["k"]
    second = dict(first)
    await store.write({"k": {**first, "v": 2}})
    with pytest.raises(EtagConflict):
        await store.write({"k": {**second, "v": 3}})
    assert (await store.read(["k"]))["k"]["v"] == 2
    await store.write({"k": {**second, "v": 4, "e_tag": "*"}})  # '*' overwrites on purpose
    assert (await store.read(["k"]))["k"]["v"] == 4


async def test_a_conflicting_batch_changes_nothing(store: SqliteStorage) -> None:
    await store.write({"x": {"v": 1}})
    stale = (await store.read(["x"]))["x"]
    await store.write({"x": {"v": 2}})
    with pytest.raises(KeyError):
        await store.write({"y": {"v": 1}, "x": {**stale, "v": 3}})
    assert await store.read(["y"]) == {}


async def test_delete_and_prefix_listing(store: SqliteStorage) -> None:
    await store.write({"feedback|1": {"v": 1}, "feedback|2": {"v": 2}, "feedbackX": {}, "other": {}})
    assert sorted(await store.find("feedback|")) == ["feedback|1", "feedback|2"]
    await store.delete(["feedback|1", "never-there"])
    assert sorted(await store.find("feedback|")) == ["feedback|2"]


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    first = SqliteStorage(path)
    await first.write({"k": {"v": "kept"}})
    await first.close()
    second = SqliteStorage(path)
    assert (await second.read(["k"]))["k"]["v"] == "kept"
    await second.close()


async def test_many_concurrent_writers_lose_nothing(store: SqliteStorage) -> None:
    await asyncio.gather(*(store.write({f"key-{n}": {"n": n}}) for n in range(200)))
    found = await store.find("key-")
    assert sorted(item["n"] for item in found.values()) == list(range(200))


async def test_unserializable_items_are_refused_clearly(store: SqliteStorage) -> None:
    with pytest.raises(TypeError, match="JSON-serializable"):
        await store.write({"k": {"v": object()}})


async def test_one_owner_per_file_and_readers_see_its_writes(tmp_path: Path) -> None:
    path = tmp_path / "owned.sqlite"
    owner = SqliteStorage(path, owner=True)
    with pytest.raises(ConfigError, match="in use by another ragbot server"):
        SqliteStorage(path, owner=True)
    await owner.write({"k": {"v": 1}})
    first = await owner.read(["k", "absent"])  # served from memory
    first["k"]["v"] = "changed by the caller"
    assert (await owner.read(["k"]))["k"]["v"] == 1, "callers get copies"
    reader = SqliteStorage(path)
    assert (await reader.read(["k"]))["k"]["v"] == 1
    stale = (await owner.read(["k"]))["k"]
    await owner.write({"k": {"v": 2}})
    with pytest.raises(EtagConflict):
        await owner.write({"k": {**stale, "v": 3}})
    await owner.delete(["k"])
    assert await owner.read(["k"]) == {} and await reader.read(["k"]) == {}
    await reader.close()
    await owner.close()
    again = SqliteStorage(path, owner=True)  # the lock went with close()
    await again.close()


async def test_a_conflict_fails_only_its_own_write_when_writes_share_a_round(store: SqliteStorage) -> None:
    await store.write({"x": {"v": 1}})
    stale = (await store.read(["x"]))["x"]
    await store.write({"x": {"v": 2}})
    results = await asyncio.gather(
        store.write({"y": {"v": 1}, "x": {**stale, "v": 3}}),
        *(store.write({f"ok-{n}": {"n": n}}) for n in range(20)),
        return_exceptions=True,
    )
    assert isinstance(results[0], EtagConflict) and results[1:] == [None] * 20
    assert await store.read(["y"]) == {} and (await store.read(["x"]))["x"]["v"] == 2
    assert len(await store.find("ok-")) == 20


async def test_what_the_fast_encoder_refuses_is_stored_exactly_or_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "exact.sqlite"
    store = SqliteStorage(path)
    await store.write({"k": {"big": 2**70, "ids": {1: "one"}}})
    with pytest.raises(TypeError, match="JSON-serializable"):
        await store.write({"nan": {"score": float("nan"), "big": 2**70}})
    await store.close()
    reopened = SqliteStorage(path)
    assert (await reopened.read(["k", "nan"])) == {"k": {"big": 2**70, "ids": {"1": "one"}, "e_tag": ANY}}
    await reopened.close()
