"""Group memberships kept for a while, per user: bounded in users and bytes, one lookup in flight per user.

A turn asks for its user's groups; the first ask starts the lookup and every ask for the same user meanwhile
waits for that one (a burst of questions is one Graph call). The lookup runs as its own task, so a turn
that gives up (or waits past `deadline`, queued behind other users' lookups included) does not cancel it
for the others. Failures are not kept: the next turn asks again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.identity.errors import GroupsUnavailable
from bot.lru import BoundedLRU

ENTRY_OVERHEAD = 100
"""Bytes counted per cached user besides the ids (key, list, timestamps)."""


class GroupSource(Protocol):
    async def groups(self, object_id: str) -> list[str]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class _Entry:
    groups: tuple[str, ...]
    expires: float


class CachedGroups:
    def __init__(
        self,
        source: GroupSource,
        *,
        ttl: float,
        max_users: int,
        max_bytes: int,
        deadline: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.deadline = deadline
        self.ttl = ttl
        self.clock = clock
        self._entries: BoundedLRU[str, _Entry] = BoundedLRU(max_items=max_users, max_bytes=max_bytes)
        self._pending: dict[str, asyncio.Task[tuple[str, ...]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._entries.bytes

    async def groups(self, object_id: str) -> list[str]:
        if object_id in self._entries:
            entry = self._entries[object_id]
            if entry.expires > self.clock():
                return list(entry.groups)
            self._entries.drop(object_id)
        task = self._pending.get(object_id)
        if task is None:
            task = asyncio.create_task(self._lookup(object_id))
            self._pending[object_id] = task
            task.add_done_callback(lambda done: self._finished(object_id, done))
        try:
            async with asyncio.timeout(self.deadline):
                return list(await asyncio.shield(task))
        except TimeoutError:
            raise GroupsUnavailable(f"the group lookup took longer than {self.deadline:g} s") from None

    async def _lookup(self, object_id: str) -> tuple[str, ...]:
        groups = tuple(dict.fromkeys(await self.source.groups(object_id)))
        self._put(object_id, groups)
        return groups

    def _finished(self, object_id: str, task: asyncio.Task[tuple[str, ...]]) -> None:
        if self._pending.get(object_id) is task:
            del self._pending[object_id]
        if not task.cancelled():
            task.exception()  # retrieved here, so a lookup nobody awaited any more is not reported as lost

    def _put(self, object_id: str, groups: tuple[str, ...]) -> None:
        if self.ttl <= 0:
            return
        size = ENTRY_OVERHEAD + len(object_id) + sum(len(g) + 8 for g in groups)
        self._entries.put(object_id, _Entry(groups, self.clock() + self.ttl), size)

    async def aclose(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        self._entries.clear()
        await self.source.aclose()
