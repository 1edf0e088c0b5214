"""botbuilder's `Storage` over one SQLite file: the default store, survives restarts.

WAL with `synchronous=NORMAL`: a committed write survives the process being killed (the WAL is in
the OS page cache once the commit returns); only a power cut could lose the last commits.

All SQLite work runs on one dedicated thread, so the event loop never blocks. The thread takes every
request queued since its last round in one go: the writes of a round share one transaction (group
commit; with several writes, each in its own savepoint so an eTag conflict fails only that write),
and results go back to the event loop in one wake-up, after the commit. A caller is answered only
once its write is committed. Every write gets a fresh eTag; a write carrying an older eTag fails with
`KeyError` (as botbuilder's MemoryStorage does) and changes nothing.

The server opens the file as its `owner`: it holds an exclusive lock on `<file>.lock` (a second server
on the same data dir fails at start-up instead of breaking the per-thread turn order), so it knows
every change and answers reads of items it has seen from memory. Other readers (`ragbot feedback`,
tests) open it without `owner` and read the file. Returned items are shallow copies.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import json
import queue
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botbuilder.core import Storage

from bot import json_text
from rag.errors import ConfigError

_SCHEMA = "CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, etag TEXT NOT NULL, doc TEXT NOT NULL)"

Work = Callable[[sqlite3.Connection], Any]
CACHED_ITEMS = 2000


class EtagConflict(KeyError):
    """The stored item changed since it was read."""


class _Job:
    __slots__ = ("error", "future", "loop", "result", "work", "writes")

    def __init__(self, work: Work, writes: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.writes = writes
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.result: Any = None
        self.error: BaseException | None = None


def _run(job: _Job, db: sqlite3.Connection) -> bool:
    """Do the job's work; its error is kept for its caller. True when it succeeded."""
    try:
        job.result = job.work(db)
    except Exception as exc:
        job.error = exc
        return False
    return True


def _deliver(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.cancelled():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


class SqliteStorage(Storage):
    def __init__(self, path: Path | str, *, owner: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._etags = itertools.count(1)
        self._etag_prefix = uuid.uuid4().hex[:12]  # unique per opening: eTags never repeat across restarts
        self._lock_file: Any = None
        self._cache: OrderedDict[str, dict[str, Any] | None] | None = None
        if owner:
            self._lock_file = self._lock()
            self._cache = OrderedDict()

    def _lock(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = self.path.with_name(self.path.name + ".lock").open("a")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise ConfigError(
                f"{self.path} is in use by another ragbot server: give each server its own RAGBOT_DATA_DIR "
                "(several replicas share state through RAGBOT_STORAGE=cosmos or blob)"
            ) from None
        return lock_file

    def _cache_put(self, key: str, item: dict[str, Any] | None) -> None:
        assert self._cache is not None
        self._cache[key] = item
        self._cache.move_to_end(key)
        while len(self._cache) > CACHED_ITEMS:
            self._cache.popitem(last=False)

    # --- the SQLite thread -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        return db

    def _serve(self) -> None:
        db: sqlite3.Connection | None = None
        running = True
        while running:
            batch: list[_Job] = []
            job = self._jobs.get()
            while job is not None:
                batch.append(job)
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
            else:
                running = False
            if batch:
                try:
                    db = db or self._connect()
                    self._round(db, batch)
                except BaseException as exc:  # cannot open or commit: every job of the round fails
                    for failed in batch:
                        failed.error = exc
                loops = {job.loop for job in batch}
                for loop in loops:
                    mine = [job for job in batch if job.loop is loop]
                    if not loop.is_closed():
                        loop.call_soon_threadsafe(_deliver, mine)
        if db is not None:
            db.close()

    @staticmethod
    def _round(db: sqlite3.Connection, batch: list[_Job]) -> None:
        writers = [job for job in batch if job.writes]
        if not writers:
            for job in batch:
                _run(job, db)
            return
        # Several writers: each in its own savepoint, so a failed one leaves the others' changes.
        # A lone writer needs none: if it fails, the whole transaction is rolled back instead.
        savepoints = len(writers) > 1
        db.execute("BEGIN IMMEDIATE")
        try:
            for job in batch:
                if savepoints and job.writes:
                    db.execute("SAVEPOINT job")
                if not _run(job, db) and savepoints and job.writes:
                    db.execute("ROLLBACK TO job")
                if savepoints and job.writes:
                    db.execute("RELEASE job")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("ROLLBACK" if not savepoints and writers[0].error is not None else "COMMIT")

    async def _submit(self, work: Work, *, writes: bool = False) -> Any:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="ragbot-sqlite", daemon=True)
            self._thread.start()
        job = _Job(work, writes, asyncio.get_running_loop())
        self._jobs.put(job)
        return await job.future

    # --- botbuilder's Storage ----------------------------------------------------------------

    async def read(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        cache = self._cache
        if cache is not None and all(key in cache for key in keys):
            return {key: dict(item) for key in keys if (item := cache[key]) is not None}

        def read(db: sqlite3.Connection) -> dict[str, Any]:
            marks = ",".join("?" * len(keys))
            rows = db.execute(f"SELECT key, etag, doc FROM items WHERE key IN ({marks})", list(keys))
            return {key: {**json.loads(doc), "e_tag": etag} for key, etag, doc in rows}

        result: dict[str, Any] = await self._submit(read)
        if cache is not None:
            for key in keys:
                self._cache_put(key, result.get(key))
            return {key: dict(item) for key, item in result.items()}
        return result

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise ValueError("changes are required when writing")
        if not changes:
            return
        encoded = {key: _encode(value) for key, value in changes.items()}

        def write(db: sqlite3.Connection) -> dict[str, str]:
            etags = {}
            for key, (expected, doc) in encoded.items():
                if expected not in (None, "*"):
                    row = db.execute("SELECT etag FROM items WHERE key = ?", (key,)).fetchone()
                    if row is None or row[0] != expected:
                        raise EtagConflict(f"eTag conflict on {key!r}: stored item changed")
                etags[key] = f"{self._etag_prefix}-{next(self._etags)}"
                db.execute(
                    "INSERT INTO items (key, etag, doc) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET etag = excluded.etag, doc = excluded.doc",
                    (key, etags[key], doc),
                )
            return etags

        etags = await self._submit(write, writes=True)
        if self._cache is not None:
            for key, value in changes.items():
                item = dict(value) if isinstance(value, dict) else dict(vars(value))
                self._cache_put(key, {**item, "e_tag": etags[key]})

    async def delete(self, keys: list[str]) -> None:
        if not keys:
            return

        def delete(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM items WHERE key = ?", [(key,) for key in keys])

        await self._submit(delete, writes=True)
        if self._cache is not None:
            for key in keys:
                self._cache_put(key, None)

    async def find(self, prefix: str) -> dict[str, Any]:
        """Every item whose key starts with `prefix` (not part of botbuilder's interface)."""

        def find(db: sqlite3.Connection) -> dict[str, Any]:
            rows = db.execute(
                "SELECT key, etag, doc FROM items WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            )
            return {key: {**json.loads(doc), "e_tag": etag} for key, etag, doc in rows}

        result: dict[str, Any] = await self._submit(find)
        return result

    async def close(self) -> None:
        """Finish queued work and close the file."""
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None


def _encode(value: Any) -> tuple[str | None, str]:
    """(expected eTag, JSON without the eTag) for a dict or a botbuilder `StoreItem`."""
    data = dict(value) if isinstance(value, dict) else dict(vars(value))
    expected = data.pop("e_tag", None)
    try:
        return expected, json_text.dumps(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"SqliteStorage stores JSON-serializable items only: {exc}") from None
