"""Where chunks go: the contract both index writers meet, and the local (SQLite) writer.

A target remembers one content hash per source file; the pipeline compares it with the file on disk to
skip unchanged files. Writes are per file: after `write`, the file's chunks in the index are exactly the
given ones (stale chunks of a shrunk file are gone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.documents import Chunk
from rag.local.store import FileChange, LocalStore

Tick = Callable[[int], None]


@dataclass
class FileWrite:
    filepath: str
    content_hash: str
    chunks: list[Chunk]
    vectors: np.ndarray | None  # one row per chunk; None when the index stores no vectors


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

    async def file_hashes(self) -> dict[str, str]: ...

    async def write(self, files: Sequence[FileWrite], tick: Tick) -> WriteOutcome:
        """Make each file's chunks in the index exactly `chunks`; `tick(n)` counts chunks written."""
        ...

    async def delete(self, filepaths: Sequence[str]) -> WriteOutcome: ...

    async def aclose(self) -> None: ...


class LocalTarget:
    """The embedded SQLite store (`rag.local.store`), written in-process."""

    name = "local"

    def __init__(self, path: Path, *, dimensions: int, embedder_name: str) -> None:
        self.path = path
        self.dimensions: int | None = dimensions
        self._size = dimensions
        self.embedder_name = embedder_name
        self._store: LocalStore | None = None

    async def prepare(self, *, recreate: bool, dry_run: bool) -> None:
        await asyncio.to_thread(self._open, recreate, dry_run)

    def _open(self, recreate: bool, dry_run: bool) -> None:
        if recreate and not dry_run:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        if recreate and dry_run:
            return  # everything would be new: nothing to read
        if self.path.exists() or not dry_run:
            self._store = LocalStore(self.path, dimensions=self._size, embedder_name=self.embedder_name)

    async def file_hashes(self) -> dict[str, str]:
        return self._store.file_hashes() if self._store else {}

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
                    item.filepath, item.chunks, vectors, content_hash=item.content_hash
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

    async def aclose(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
