"""The state seam: what conversation memory, feedback and rate limits need from a store.

Framework-neutral (no botbuilder type): documents are JSON text under string keys, each stored with an
eTag the store changes on every write. Replicas share a store safely because every write is
conditional: the first write of a key is create-if-absent (If-None-Match: *), every later one a
compare-and-swap on the eTag the writer read. A write that loses the race raises `Conflict` and the
caller re-reads; nothing is overwritten blindly except a document with one natural writer (feedback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol


class StateError(Exception):
    """Base of the store's typed errors."""


class Conflict(StateError):
    """The conditional write lost: the key exists (create) or changed since it was read (replace)."""


class StoreUnavailable(StateError):
    """The store cannot be reached or cannot take writes now (down, disk full, read-only)."""


class Stored(NamedTuple):
    doc: str
    """JSON text, as written"""
    etag: str


class StateStore(Protocol):
    """Conversation state behind one interface; every method is async and raises only `StateError`s
    for store faults (a bug may still raise anything)."""

    @property
    def name(self) -> str:
        """What `ragbot config` and the logs call it, e.g. `redis (127.0.0.1:6379)`."""
        ...

    async def open(self) -> None:
        """Connect and verify the store can be used (start-up check); raises `StoreUnavailable`."""

    async def read(self, key: str) -> Stored | None: ...

    async def create(self, key: str, doc: str) -> str:
        """Store `doc` if `key` does not exist yet, else raise `Conflict`; returns the new eTag."""
        ...

    async def replace(self, key: str, doc: str, etag: str) -> str:
        """Store `doc` if `key` still has `etag`, else raise `Conflict`; returns the new eTag."""
        ...

    async def put(self, key: str, doc: str) -> str:
        """Store `doc` unconditionally (documents with one writer, such as a user's rating)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` if present."""

    async def scan(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, doc) whose key starts with `prefix`, sorted by key."""
        ...

    async def take(self, key: str, limit: int, window_s: float) -> float:
        """Rate limit shared by every process on this store: count one event for `key` and return 0
        when fewer than `limit` happened in the last `window_s` seconds, else (counting nothing) the
        seconds until one would be allowed."""
        ...

    async def problem(self) -> str | None:
        """Why the store cannot take writes now (readiness), or None; probes the store when a write
        failed recently, so it recovers on its own once space or the server is back."""
        ...

    async def aclose(self) -> None: ...


async def open_problem(open_store: Callable[[], Awaitable[None]]) -> str | None:
    """`StateStore.problem` for a store whose start-up check (`open`) is also its readiness probe."""
    try:
        await open_store()
    except StoreUnavailable as exc:
        return str(exc)
    return None
