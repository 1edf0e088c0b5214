"""The read cache's bounds (count and bytes) and the shared stores' sliding-window counter."""

from __future__ import annotations

import pytest

from bot.state import Conflict
from bot.state.cache import CachedStore
from bot.state.memory import MemoryStore
from bot.state.rates import window_take


async def test_the_cache_is_bounded_in_count_and_bytes_and_forgets_a_conflict() -> None:
    inner = MemoryStore()
    cache = CachedStore(inner, items=3, max_bytes=4000)
    for n in range(5):
        await cache.put(f"k{n}", "x" * 100)
    assert len(cache._cache) == 3 and cache._cache.bytes <= 4000
    await cache.put("big", "y" * 1500)  # more than a quarter of the budget: not cached at all
    assert "big" not in cache._cache and (await cache.read("big")) is not None
    await cache.put("a", "x" * 900)
    await cache.put("b", "x" * 900)
    await cache.put("c", "x" * 900)
    await cache.put("d", "x" * 900)
    assert cache._cache.bytes <= 4000 and list(cache._cache) == ["b", "c", "d"]

    stale = await cache.create("t", "v1")
    await inner.replace("t", "v2 by another writer", stale)  # behind the cache's back
    with pytest.raises(Conflict):
        await cache.replace("t", "v3", stale)
    fresh = await cache.read("t")
    assert fresh is not None and fresh.doc == "v2 by another writer", "the conflict dropped the stale entry"


def test_the_sliding_window_counter_weighs_the_previous_window() -> None:
    counts: dict[str, float] = {}
    for second in range(10):  # 10 events in the first minute, limit 10
        wait, counts = window_take(counts, 10, 60.0, 1000.0 + second)
        assert wait == 0
    wait, _ = window_take(counts, 10, 60.0, 1030.0)
    assert wait == pytest.approx(30.0), "a full window waits for the next one"
    # 15 s into the next window, 3/4 of the previous window's 10 events still count: 7.5 + 1 <= 10
    wait, counts = window_take(counts, 10, 60.0, 1075.0)
    assert wait == 0 and counts["previous"] == 10 and counts["current"] == 1
    wait, _ = window_take(counts, 10, 60.0, 1075.0)
    assert wait == 0
    wait, counts = window_take(counts, 10, 60.0, 1300.0)  # long idle: both windows are empty
    assert wait == 0 and counts["previous"] == 0 and counts["current"] == 1
