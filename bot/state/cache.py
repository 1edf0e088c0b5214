"""A read cache around any store, bounded in count and bytes.

Right only where this process is the store's one writer (SQLite opened as owner, memory): it answers
reads of keys it has seen from memory, and learns every change because every change goes through it.
Replicas sharing a store must not use it (a stale read would answer from an old history), so
`bot.state.choice` wraps only the SQLite store. A conflict drops the key, so a retry reads the store.
"""

from __future__ import annotations

from bot.lru import BoundedLRU
from bot.state.store import Conflict, StateStore, Stored

CACHED_ITEMS = 2000
CACHED_BYTES = 64 * 1024 * 1024


class CachedStore:
    def __init__(
        self, inner: StateStore, *, items: int = CACHED_ITEMS, max_bytes: int = CACHED_BYTES
    ) -> None:
        self.inner = inner
        self._cache: BoundedLRU[str, Stored | None] = BoundedLRU(max_items=items, max_bytes=max_bytes)

    @property
    def name(self) -> str:
        return self.inner.name

    def _size(self, key: str, stored: Stored | None) -> int:
        return len(key) + (len(stored.doc) + len(stored.etag) if stored else 0)

    def _put(self, key: str, stored: Stored | None) -> None:
        self._cache.put(key, stored, self._size(key, stored))

    def _drop(self, key: str) -> None:
        self._cache.drop(key)

    async def open(self) -> None:
        await self.inner.open()

    async def read(self, key: str) -> Stored | None:
        if key in self._cache:
            return self._cache[key]
        stored = await self.inner.read(key)
        self._put(key, stored)
        return stored

    async def create(self, key: str, doc: str) -> str:
        try:
            etag = await self.inner.create(key, doc)
        except Conflict:
            self._drop(key)
            raise
        self._put(key, Stored(doc, etag))
        return etag

    async def replace(self, key: str, doc: str, etag: str) -> str:
        try:
            new = await self.inner.replace(key, doc, etag)
        except Conflict:
            self._drop(key)
            raise
        self._put(key, Stored(doc, new))
        return new

    async def put(self, key: str, doc: str) -> str:
        etag = await self.inner.put(key, doc)
        self._put(key, Stored(doc, etag))
        return etag

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)
        self._put(key, None)

    async def scan(self, prefix: str) -> list[tuple[str, str]]:
        return await self.inner.scan(prefix)

    async def take(self, key: str, limit: int, window_s: float) -> float:
        return await self.inner.take(key, limit, window_s)

    async def problem(self) -> str | None:
        return await self.inner.problem()

    async def aclose(self) -> None:
        self._cache.clear()
        await self.inner.aclose()
