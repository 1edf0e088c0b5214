"""botbuilder's `Storage` over one SQLite file: the default store, survives restarts.

WAL with `synchronous=NORMAL`: a committed write survives the process being killed (the WAL is in
the OS page cache once `write` returns); only a power cut could lose the last commits. All SQLite
calls run on one dedicated thread, so the event loop never blocks and writes never contend.
Every write gets a fresh eTag; a write carrying an older eTag fails with `KeyError` (as botbuilder's
MemoryStorage does) and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from botbuilder.core import Storage

_T = TypeVar("_T")

_SCHEMA = "CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, etag TEXT NOT NULL, doc TEXT NOT NULL)"


class EtagConflict(KeyError):
    """The stored item changed since it was read."""


class SqliteStorage(Storage):
    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragbot-sqlite")
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connect()))

    async def read(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}

        def read(db: sqlite3.Connection) -> dict[str, Any]:
            marks = ",".join("?" * len(keys))
            rows = db.execute(f"SELECT key, etag, doc FROM items WHERE key IN ({marks})", list(keys))
            return {key: {**json.loads(doc), "e_tag": etag} for key, etag, doc in rows}

        return await self._run(read)

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise ValueError("changes are required when writing")
        if not changes:
            return
        encoded = {key: _encode(value) for key, value in changes.items()}

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for key, (expected, doc) in encoded.items():
                    if expected not in (None, "*"):
                        row = db.execute("SELECT etag FROM items WHERE key = ?", (key,)).fetchone()
                        if row is None or row[0] != expected:
                            raise EtagConflict(f"eTag conflict on {key!r}: stored item changed")
                    db.execute(
                        "INSERT INTO items (key, etag, doc) VALUES (?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET etag = excluded.etag, doc = excluded.doc",
                        (key, uuid.uuid4().hex, doc),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._run(write)

    async def delete(self, keys: list[str]) -> None:
        if not keys:
            return

        def delete(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM items WHERE key = ?", [(key,) for key in keys])

        await self._run(delete)

    async def find(self, prefix: str) -> dict[str, Any]:
        """Every item whose key starts with `prefix` (not part of botbuilder's interface)."""

        def find(db: sqlite3.Connection) -> dict[str, Any]:
            rows = db.execute(
                "SELECT key, etag, doc FROM items WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            )
            return {key: {**json.loads(doc), "e_tag": etag} for key, etag, doc in rows}

        return await self._run(find)

    async def close(self) -> None:
        def close(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(close)
        self._executor.shutdown(wait=True)


def _encode(value: Any) -> tuple[str | None, str]:
    """(expected eTag, JSON without the eTag) for a dict or a botbuilder `StoreItem`."""
    data = dict(value) if isinstance(value, dict) else dict(vars(value))
    expected = data.pop("e_tag", None)
    try:
        return expected, json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    except TypeError as exc:
        raise TypeError(f"SqliteStorage stores JSON-serializable items only: {exc}") from None
