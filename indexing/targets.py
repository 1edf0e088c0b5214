"""Where chunks go: the contract both index writers meet, and the local (SQLite) writer.

A target remembers one content hash per source file, and the absolute folder its filepath is relative
to (its root); the pipeline compares the hash with the file on disk to skip unchanged files, and uses
the root to know which indexed files lie under the folders of a run. Writes are per file: after
`write`, the file's chunks in the index are exactly the given ones (stale chunks of a shrunk file are
gone).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.documents import Chunk
from rag.local.store import FileChange, LocalStore

Tick = Callable[[int], None]

log = logging.getLogger(__name__)


@dataclass
class FileWrite:
    filepath: str
    content_hash: str
    chunks: list[Chunk]
    vectors: np.ndarray | None  # one row per chunk; None when the index stores no vectors
    root: str | None = None  # absolute folder `filepath` is relative to


@dataclass(frozen=True)
class Indexed:
    """What the index remembers of a file."""

    content_hash: str
    root: str | None  # None: indexed before roots were kept


@dataclass
class WriteOutcome:
    """Per file: what changed, or why it failed (the rest of the run goes on)."""

    changes: dict[str, FileChange] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def merge(self, other: WriteOutcome) -> None:
        self.changes.update(other.changes)
        self.errors.update(other.errors)


class Target(Protocol):
    name: str
    dimensions: int | None  # vector size the index expects; None = keyword-only, nothing to embed

    async def prepare(self, *, recreate: bool, dry_run: bool) -> None:
        """Create (or, with `recreate`, drop and create) the index; a dry run only reads."""
        ...

    async def indexed(self) -> dict[str, Indexed]:
        """Every file in the index (empty when there is no index yet)."""
        ...

    async def set_roots(self, roots: dict[str, str]) -> None:
        """Record the root of files indexed before roots were kept (filepath -> absolute folder)."""
        ...

    async def write(self, files: Sequence[FileWrite], tick: Tick) -> WriteOutcome:
        """Make each file's chunks in the index exactly `chunks`; `tick(n)` counts chunks written."""
        ...

    async def delete(self, filepaths: Sequence[str]) -> WriteOutcome: ...

    async def finish(self) -> None:
        """The run went through: make its writes the index (a rebuild replaces the old index now)."""
        ...

    async def aclose(self) -> None:
        """Release the target; a rebuild that did not `finish` is discarded and the old index stays."""
        ...


class LocalTarget:
    """The embedded SQLite store (`rag.local.store`), written in-process.

    `--recreate` builds into `index.sqlite.rebuild-PID` next to the index and renames it over the index
    only when the run finishes: a server keeps answering from the old index meanwhile, and a rebuild that
    fails or is killed leaves the old index as it was (its file is removed by the next rebuild).
    """

    name = "local"

    def __init__(self, path: Path, *, dimensions: int, embedder_name: str) -> None:
        self.path = path
        self.dimensions: int | None = dimensions
        self._size = dimensions
        self.embedder_name = embedder_name
        self._store: LocalStore | None = None
        self._rebuilding = False

    async def prepare(self, *, recreate: bool, dry_run: bool) -> None:
        await asyncio.to_thread(self._open, recreate, dry_run)

    def _open(self, recreate: bool, dry_run: bool) -> None:
        if recreate and dry_run:
            return  # everything would be new: nothing to read
        path = self.path
        if recreate:
            self._remove_abandoned_rebuilds()
            path = self.path.with_name(f"{self.path.name}.rebuild-{os.getpid()}")
            _remove_database(path)
            self._rebuilding = True
        if path.exists() or not dry_run:  # a dry run writes nothing, not even a schema upgrade
            self._store = LocalStore(
                path, dimensions=self._size, embedder_name=self.embedder_name, read_only=dry_run
            )

    def _remove_abandoned_rebuilds(self) -> None:
        """Files of rebuilds whose process is gone (killed or crashed before renaming)."""
        for built in self.path.parent.glob(f"{self.path.name}.rebuild-*"):
            pid = built.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                log.info("removing %s, left by an interrupted rebuild", built)
                _remove_database(built)

    async def indexed(self) -> dict[str, Indexed]:
        if self._store is None:
            return {}
        roots = self._store.file_roots()
        return {path: Indexed(hash, roots.get(path)) for path, hash in self._store.file_hashes().items()}

    async def set_roots(self, roots: dict[str, str]) -> None:
        self._opened().set_roots(roots)

    def _opened(self) -> LocalStore:
        if self._store is None:
            raise RuntimeError("LocalTarget.prepare() was not called")
        return self._store

    async def write(self, files: Sequence[FileWrite], tick: Tick) -> WriteOutcome:
        store, outcome = self._opened(), WriteOutcome()
        for item in files:
            vectors = item.vectors if item.vectors is not None else np.zeros((0, store.dimensions))
            try:
                outcome.changes[item.filepath] = store.replace_file(
                    item.filepath, item.chunks, vectors, content_hash=item.content_hash, root=item.root
                )
            except ValueError as exc:
                outcome.errors[item.filepath] = str(exc)
            tick(len(item.chunks))
        return outcome

    async def delete(self, filepaths: Sequence[str]) -> WriteOutcome:
        store, outcome = self._opened(), WriteOutcome()
        for filepath in filepaths:
            outcome.changes[filepath] = FileChange(deleted=store.delete_file(filepath))
        return outcome

    async def finish(self) -> None:
        if self._rebuilding and self._store is not None:
            store, self._store, self._rebuilding = self._store, None, False
            await asyncio.to_thread(store.move_to, self.path)
            log.info("the rebuilt index replaced %s", self.path)

    async def aclose(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            store.close()
            if self._rebuilding:
                log.warning("the rebuild did not finish: %s is unchanged", self.path)
                _remove_database(store.path)
                self._rebuilding = False


def _remove_database(path: Path) -> None:
    """Remove a database file and its `-wal`/`-shm`/`-journal` companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
