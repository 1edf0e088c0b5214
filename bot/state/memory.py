"""A store in this process's memory: state is gone when it stops (tests, demos, benchmarks)."""

from __future__ import annotations

import itertools

from bot.state.rates import LocalRates
from bot.state.store import Conflict, Stored


class MemoryStore:
    def __init__(self) -> None:
        self._items: dict[str, Stored] = {}
        self._etags = itertools.count(1)
        self._rates = LocalRates()

    @property
    def name(self) -> str:
        return "memory (lost on restart)"

    async def open(self) -> None:
        return None

    async def read(self, key: str) -> Stored | None:
        return self._items.get(key)

    def _store(self, key: str, doc: str) -> str:
        etag = str(next(self._etags))
        self._items[key] = Stored(doc, etag)
        return etag

    async def create(self, key: str, doc: str) -> str:
        if key in self._items:
            raise Conflict(f"{key!r} exists already")
        return self._store(key, doc)

    async def replace(self, key: str, doc: str, etag: str) -> str:
        current = self._items.get(key)
        if current is None or current.etag != etag:
            raise Conflict(f"{key!r} changed since it was read")
        return self._store(key, doc)

    async def put(self, key: str, doc: str) -> str:
        return self._store(key, doc)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def scan(self, prefix: str) -> list[tuple[str, str]]:
        return sorted((k, s.doc) for k, s in self._items.items() if k.startswith(prefix))

    async def take(self, key: str, limit: int, window_s: float) -> float:
        return self._rates.take(key, limit, window_s)

    async def problem(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None
