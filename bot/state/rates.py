"""Rate limits over a store: an exact sliding log in one process, a sliding-window counter when shared.

One process that owns its store (SQLite, memory) counts in memory: nobody else can count. Replicas
sharing a store keep one small document per key, `{"start", "previous", "current"}`, the counts of
the current fixed window and the one before it; the rate is estimated as `previous` weighted by the
part of the sliding window it still covers, plus `current` (the usual sliding-window counter: bounded
size whatever the limit, at most a few percent off the exact count).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from bot.state.store import Conflict, Stored

ATTEMPTS = 8
"""Conditional writes of one counter before giving up (each loser re-reads; replicas are few)."""


class LocalRates:
    """The exact count of events per key in a sliding window; memory freed as keys go idle."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._next_sweep = clock()
        self._longest = 0.0

    def take(self, key: str, limit: int, window_s: float) -> float:
        now = self._clock()
        self._longest = max(self._longest, window_s)
        if now >= self._next_sweep:
            self._events = {k: e for k, e in self._events.items() if e and e[-1] > now - self._longest}
            self._next_sweep = now + self._longest
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - window_s:
            events.popleft()
        if len(events) >= limit:
            return events[0] + window_s - now
        events.append(now)
        return 0.0

    def __len__(self) -> int:
        return len(self._events)


class _Cas(Protocol):
    async def read(self, key: str) -> Stored | None: ...
    async def create(self, key: str, doc: str) -> str: ...
    async def replace(self, key: str, doc: str, etag: str) -> str: ...


def window_take(
    counts: dict[str, float], limit: int, window_s: float, now: float
) -> tuple[float, dict[str, float]]:
    """(seconds to wait or 0, the counts after this event) for the sliding-window counter."""
    start = counts.get("start", now)
    previous, current = counts.get("previous", 0.0), counts.get("current", 0.0)
    if now >= start + 2 * window_s:
        start, previous, current = now - (now - start) % window_s, 0.0, 0.0
    elif now >= start + window_s:
        start, previous, current = start + window_s, current, 0.0
    elapsed = now - start
    estimate = previous * (1 - elapsed / window_s) + current
    if estimate + 1 > limit:
        # The estimate falls as the previous window slides out; with none left, wait for the next.
        if previous > 0 and current + 1 <= limit:
            wait = (1 - (limit - 1 - current) / previous) * window_s - elapsed
        else:
            wait = window_s - elapsed
        return max(wait, math.ulp(1.0)), counts
    return 0.0, {"start": start, "previous": previous, "current": current + 1}


async def shared_take(
    store: _Cas, key: str, limit: int, window_s: float, *, clock: Callable[[], float] = time.time
) -> float:
    """`StateStore.take` for a store with only conditional writes (Blob storage, Cosmos DB)."""
    for _ in range(ATTEMPTS):
        stored = await store.read(key)
        counts = json.loads(stored.doc) if stored else {}
        wait, after = window_take(counts, limit, window_s, clock())
        if wait:
            return wait
        doc = json.dumps(after)
        try:
            if stored is None:
                await store.create(key, doc)
            else:
                await store.replace(key, doc, stored.etag)
            return 0.0
        except Conflict:
            continue
    return 0.0  # this many writers at once on one user's counter: let the turn through rather than fail it
