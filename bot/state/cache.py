"""A read cache around any store, bounded in count and bytes.

Right only where this process is the store's one writer (SQLite opened as owner, memory): it answers
reads of keys it has seen from memory, and learns every change because every change goes through it.
Replicas sharing a store must not use it (a stale read would answer from an old history), so
`bot.state.choice` wraps only the SQLite store. A conflict drops the key, so a retry reads the store.
"""

from __future__ import annotations

from collections import OrderedDict

from bot.state.store import Conflict, StateStore, Stored

CACHED_ITEMS = 2000
CACHED_BYTES = 64 * 1024 * 1024


class CachedStore:
    def __init__(
        self, inner: StateStore, *, items: int = CACHED_ITEMS, max_bytes: int = CACHED_BYTES
    ) -> None:
        self.inner = inner
        self.max_items = items
        self.max_bytes = max_bytes
        self._cache: OrderedDict[str, Stored | None] = OrderedDict()
        self._bytes = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def _size(self, key: str, stored: Stored | None) -> int:
        return len(key) + (len(stored.doc) + len(stored.etag) if stored else 0)

    def _put(self, key: str, stored: Stored | None) -> None:
        self._drop(key)
        size = self._size(key, stored)
        if size > self.max_bytes // 4:
            return  # one huge document must not flush everyone else's
        self._cache[key] = stored
        self._bytes += size
        while len(self._cache) > self.max_items or self._bytes > self.max_bytes:
            old_key, old = self._cache.popitem(last=False)
            self._bytes -= self._size(old_key, old)

    def _drop(self, key: str) -> None:
        if key in self._cache:
            self._bytes -= self._size(key, self._cache.pop(key))

    async def open(self) -> None:
        await self.inner.open()

    async def read(self, key: str) -> Stored | None:
        if key in self._cache:
            self._cache.move_to_end(key)
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
        self._bytes = 0
        await self.inner.aclose()
