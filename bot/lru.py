"""Least recently used entries bounded in count AND bytes, for the caches that hold what users send.

The caller says what an entry weighs. One entry over a quarter of the byte budget is not kept: a single
huge value (a long history, a user in thousands of groups) must not flush everyone else's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """Least recently used first."""
        return iter(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __getitem__(self, key: K) -> V:
        """The value (KeyError when absent), now the most recently used."""
        value, _ = self._entries[key]
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` as `size` bytes (replacing the key's old value), evicting the least recently used
        until both bounds hold; a value over a quarter of max_bytes only removes the old one."""
        self.drop(key)
        if size > self.max_bytes // 4:
            return
        self._entries[key] = (value, size)
        self._bytes += size
        while len(self._entries) > self.max_items or self._bytes > self.max_bytes:
            _, (_, old_size) = self._entries.popitem(last=False)
            self._bytes -= old_size

    def drop(self, key: K) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= found[1]

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
