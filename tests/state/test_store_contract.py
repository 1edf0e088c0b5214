"""The state seam's contract, the same on every store: create-if-absent, compare-and-swap on eTags,
unconditional put, delete, prefix scan and the shared rate limit."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.state import Conflict, StateStore

AWKWARD_KEYS = ["msteams|t|19:abc@thread.tacv2;messageid=1", "webchat|-|a/b?c#d%20e *f", "emoji|é|☃"]


async def test_create_then_replace_on_the_etag_read(store: StateStore) -> None:
    assert await store.read("k") is None
    etag = await store.create("k", '{"v":1}')
    stored = await store.read("k")
    assert stored is not None and stored.doc == '{"v":1}' and stored.etag == etag
    with pytest.raises(Conflict):
        await store.create("k", '{"v":"second creator"}')
    newer = await store.replace("k", '{"v":2}', etag)
    assert newer != etag
    with pytest.raises(Conflict):
        await store.replace("k", '{"v":"stale writer"}', etag)
    stored = await store.read("k")
    assert stored is not None and stored.doc == '{"v":2}' and stored.etag == newer


async def test_replace_of_a_missing_key_conflicts(store: StateStore) -> None:
    with pytest.raises(Conflict):
        await store.replace("absent", "{}", "some-etag")
    assert await store.read("absent") is None


async def test_racing_creators_one_wins(store: StateStore) -> None:
    results = await asyncio.gather(
        *(store.create("race", json.dumps({"n": n})) for n in range(8)), return_exceptions=True
    )
    winners = [n for n, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1 and all(isinstance(r, Conflict) for r in results if not isinstance(r, str))
    stored = await store.read("race")
    assert stored is not None and json.loads(stored.doc) == {"n": winners[0]}


async def test_put_delete_and_prefix_scan(store: StateStore) -> None:
    for key in ["feedback|1", "feedback|2", "feedbackX", "other", *AWKWARD_KEYS]:
        await store.put(key, json.dumps({"key": key}))
    await store.put("feedback|2", '{"key":"feedback|2","again":true}')
    assert await store.scan("feedback|") == [
        ("feedback|1", '{"key": "feedback|1"}'),
        ("feedback|2", '{"key":"feedback|2","again":true}'),
    ]
    await store.delete("feedback|1")
    await store.delete("never-there")
    assert [k for k, _ in await store.scan("feedback|")] == ["feedback|2"]
    for key in AWKWARD_KEYS:
        stored = await store.read(key)
        assert stored is not None and json.loads(stored.doc) == {"key": key}
        assert [k for k, _ in await store.scan(key)] == [key]


async def test_documents_round_trip_exactly(store: StateStore) -> None:
    doc = json.dumps({"text": "é ☃ \u2028 \\n", "big": 2**70, "nested": [{"a": None}]}, ensure_ascii=False)
    await store.create("exact", doc)
    stored = await store.read("exact")
    assert stored is not None and stored.doc == doc


async def test_rate_limit_counts_per_key_and_window(store: StateStore) -> None:
    assert [await store.take("rate|alice", 3, 60.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await store.take("rate|alice", 3, 60.0)
    assert 0 < wait <= 60.0
    assert await store.take("rate|bob", 3, 60.0) == 0.0, "another user has a count of their own"
    assert await store.take("rate|short", 1, 0.2) == 0.0
    assert await store.take("rate|short", 1, 0.2) > 0
    await asyncio.sleep(0.45)
    assert await store.take("rate|short", 1, 0.2) == 0.0, "the window slid past"


async def test_a_healthy_store_has_no_problem(store: StateStore) -> None:
    assert await store.problem() is None
    assert store.name
