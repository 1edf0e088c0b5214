"""Thread memory on every store, as two replicas use it: two `ThreadMemory` (two processes' worth of
caches) on one store, writing the same thread at once."""

from __future__ import annotations

import asyncio

from bot.memory import ThreadMemory
from bot.state import StateStore
from rag.contract import Turn

KEY = "msteams|tenant|19:thread"


def exchange(n: int) -> list[Turn]:
    return [Turn(role="user", content=f"q{n}"), Turn(role="assistant", content=f"a{n}")]


async def test_first_turns_written_at_once_by_two_replicas_are_both_kept(store: StateStore) -> None:
    one, two = ThreadMemory(store, 100_000), ThreadMemory(store, 100_000)
    first, second = await asyncio.gather(one.load(KEY), two.load(KEY))
    assert first.etag is None and second.etag is None  # both start the thread
    await asyncio.gather(
        one.record_turn(KEY, first, "act-1", exchange(1)), two.record_turn(KEY, second, "act-2", exchange(2))
    )
    state = (await one.load(KEY)).state
    assert sorted(t.content for t in state.history()) == ["a1", "a2", "q1", "q2"]
    assert sorted(state.seen) == ["act-1", "act-2"]


async def test_a_redelivered_activity_recorded_by_the_other_replica_is_not_stored_twice(
    store: StateStore,
) -> None:
    one, two = ThreadMemory(store, 100_000), ThreadMemory(store, 100_000)
    await one.record_turn(KEY, await one.load(KEY), "act-0", exchange(0))
    stale_one, stale_two = await asyncio.gather(one.load(KEY), two.load(KEY))
    # The same activity, delivered to both replicas, answered by both from the same snapshot.
    await asyncio.gather(
        one.record_turn(KEY, stale_one, "act-1", exchange(1)),
        two.record_turn(KEY, stale_two, "act-1", exchange(1)),
    )
    history = (await two.load(KEY)).state.history()
    assert [t.content for t in history] == ["q0", "a0", "q1", "a1"]
