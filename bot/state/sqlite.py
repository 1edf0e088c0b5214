"""The default store: one SQLite file under the data directory, for one server on one machine.

WAL with `synchronous=NORMAL`: a committed write survives the process being killed (the WAL is in
the OS page cache once the commit returns); only a power cut could lose the last commits.

All SQLite work runs on one dedicated thread, so the event loop never blocks. The thread takes every
request queued since its last round in one go: the writes of a round share one transaction (group
commit; with several writes, each in its own savepoint so a conflict fails only that write), and
results go back to the event loop in one wake-up, after the commit. A caller is answered only once
its write is committed. Every write gets a fresh eTag.

The server opens the file as its `owner`: it holds an exclusive lock on `<file>.lock`, so a second
server on the same data dir fails at start-up instead of breaking the per-thread turn order; being the
only writer, it may cache (`bot.state.cache`) and count rate limits in memory. Other readers
(`ragbot feedback`, tests) open it without `owner`.

A write the disk refuses (full, read-only, I/O error) raises `StoreUnavailable` and changes nothing;
until a write succeeds again, `problem()` names the fault, probing with a real write so the server
notices by itself when space returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.state.rates import LocalRates
from bot.state.store import Conflict, Stored, StoreUnavailable

_SCHEMA = "CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, etag TEXT NOT NULL, doc TEXT NOT NULL)"
_PROBE = "CREATE TABLE IF NOT EXISTS probe (filler BLOB)"
PROBE_BYTES = 64 * 1024
"""A readiness probe writes (then deletes) this much: room for a few more turns, not just one row."""
_FORMAT = 1
"""`PRAGMA user_version`: 1 stores a thread's document as the item's JSON; 0 (botbuilder's Storage
era) wrapped it as `{"state": "<json text>"}` and is migrated on open."""

Work = Callable[[sqlite3.Connection], Any]


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


class SqliteStore:
    def __init__(self, path: Path | str, *, owner: bool = False) -> None:
        self.path = Path(path)
        self.owner = owner
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._etags = itertools.count(1)
        self._etag_prefix = uuid.uuid4().hex[:12]  # unique per opening: eTags never repeat across restarts
        self._lock_file: Any = None
        self._rates = LocalRates()
        self._problem: str | None = None

    @property
    def name(self) -> str:
        return f"sqlite ({self.path})"

    async def open(self) -> None:
        """Create the directory and file, take the owner's lock, and write once: a read-only or full
        directory fails here, at start-up, with the reason."""
        if self.owner and self._lock_file is None:
            self._lock_file = await asyncio.to_thread(self._lock)
        await self._submit(self._probe, writes=True)

    def _lock(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = self.path.with_name(self.path.name + ".lock").open("a")
        except OSError as exc:
            raise StoreUnavailable(f"{self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise StoreUnavailable(
                f"{self.path} is in use by another ragbot server: give each server its own RAGBOT_DATA_DIR "
                "(several replicas share state through RAGBOT_STORAGE=redis, blob or cosmos)"
            ) from None
        return lock_file

    # --- the SQLite thread -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] < _FORMAT:
                db.execute("BEGIN IMMEDIATE")
                db.execute(_SCHEMA)
                db.execute(
                    "UPDATE items SET doc = json_extract(doc, '$.state') "
                    "WHERE json_type(doc, '$.state') = 'text'"
                )
                db.execute(f"PRAGMA user_version = {_FORMAT}")
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
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
                    if db is not None and db.in_transaction:
                        try:
                            db.execute("ROLLBACK")
                        except sqlite3.Error:
                            db.close()  # a fresh connection for the next round
                            db = None
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
        for job in batch:
            if savepoints and job.writes:
                db.execute("SAVEPOINT job")
            if not _run(job, db) and savepoints and job.writes:
                db.execute("ROLLBACK TO job")
            if savepoints and job.writes:
                db.execute("RELEASE job")
        db.execute("ROLLBACK" if not savepoints and writers[0].error is not None else "COMMIT")

    async def _submit(self, work: Work, *, writes: bool = False) -> Any:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="ragbot-sqlite", daemon=True)
            self._thread.start()
        job = _Job(work, writes, asyncio.get_running_loop())
        self._jobs.put(job)
        try:
            result = await job.future
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            reason = f"{self.path}: {exc}"
            if writes:
                self._problem = reason
            raise StoreUnavailable(reason) from exc
        if writes:
            self._problem = None
        return result

    def _next_etag(self) -> str:
        return f"{self._etag_prefix}-{next(self._etags)}"

    @staticmethod
    def _probe(db: sqlite3.Connection) -> None:
        db.execute(_PROBE)
        db.execute("INSERT INTO probe VALUES (zeroblob(?))", (PROBE_BYTES,))
        db.execute("DELETE FROM probe")

    # --- the store ---------------------------------------------------------------------------

    async def read(self, key: str) -> Stored | None:
        def read(db: sqlite3.Connection) -> Stored | None:
            row = db.execute("SELECT doc, etag FROM items WHERE key = ?", (key,)).fetchone()
            return Stored(*row) if row else None

        result: Stored | None = await self._submit(read)
        return result

    async def create(self, key: str, doc: str) -> str:
        etag = self._next_etag()

        def create(db: sqlite3.Connection) -> None:
            try:
                db.execute("INSERT INTO items (key, etag, doc) VALUES (?, ?, ?)", (key, etag, doc))
            except sqlite3.IntegrityError:
                raise Conflict(f"{key!r} exists already") from None

        await self._submit(create, writes=True)
        return etag

    async def replace(self, key: str, doc: str, etag: str) -> str:
        new = self._next_etag()

        def replace(db: sqlite3.Connection) -> None:
            changed = db.execute(
                "UPDATE items SET etag = ?, doc = ? WHERE key = ? AND etag = ?", (new, doc, key, etag)
            ).rowcount
            if not changed:
                raise Conflict(f"{key!r} changed since it was read")

        await self._submit(replace, writes=True)
        return new

    async def put(self, key: str, doc: str) -> str:
        etag = self._next_etag()

        def put(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO items (key, etag, doc) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET etag = excluded.etag, doc = excluded.doc",
                (key, etag, doc),
            )

        await self._submit(put, writes=True)
        return etag

    async def delete(self, key: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM items WHERE key = ?", (key,))

        await self._submit(delete, writes=True)

    async def scan(self, prefix: str) -> list[tuple[str, str]]:
        def scan(db: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = db.execute(
                "SELECT key, doc FROM items WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
            )
            return list(rows)

        result: list[tuple[str, str]] = await self._submit(scan)
        return result

    async def take(self, key: str, limit: int, window_s: float) -> float:
        """Counted in memory: the owner is the file's only server."""
        return self._rates.take(key, limit, window_s)

    async def problem(self) -> str | None:
        if self._problem is not None:
            with contextlib.suppress(StoreUnavailable):  # the probe records the problem, or clears it
                await self._submit(self._probe, writes=True)
        return self._problem

    async def aclose(self) -> None:
        """Finish queued work and close the file."""
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None
