"""One indexing run: find files, skip the unchanged ones, load, chunk, embed, write, remove the deleted.

Files are processed in groups of a few hundred chunks so embeddings are computed in large batches (one
model call per group) while memory stays bounded however big the folder is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from pydantic import BaseModel, Field

from indexing.chunking import Chunker
from indexing.documents import Document, LoadError
from indexing.loaders import iso_utc, load
from indexing.progress import Bar, Progress
from indexing.sources import SourceFile, content_hash, discover
from indexing.targets import FileWrite, Target, WriteOutcome
from rag.documents import Chunk
from rag.embedding import Embedder
from rag.errors import AuthError, ConfigError, DataSourceError, RagError

log = logging.getLogger("indexing")

GROUP_CHUNKS = 256  # chunks embedded and written together
EMBED_SLICE = 64  # texts per embedder call (progress granularity)


class FileError(BaseModel):
    path: str
    reason: str


class IndexSummary(BaseModel):
    """What a run did. `files_skipped` = unchanged files + files that are not documents."""

    files_seen: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    chunks_added: int = 0
    chunks_updated: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0
    errors: list[FileError] = Field(default_factory=list)
    target: str = ""
    dry_run: bool = False
    files_indexed: int = 0
    files_unchanged: int = 0
    files_unsupported: int = 0
    files_deleted: int = 0
    skipped: list[str] = Field(default_factory=list, description="paths of the files that are not documents")
    warnings: list[str] = Field(default_factory=list, description="what was repaired to read a file")


@dataclass
class _Pending:
    source: SourceFile
    content_hash: str
    chunks: list[Chunk]


def chunk_id(filepath: str, position: int, content: str) -> str:
    """Stable key: same file, same position, same text -> same id (and valid as an Azure document key)."""
    return hashlib.sha256(f"{filepath}\x00{position}\x00{content}".encode()).hexdigest()[:32]


def embedding_text(chunk: Chunk) -> str:
    """What is embedded: the title and the section's headings give a passage the context it lacks alone."""
    lines = [chunk.title] if chunk.title else []
    path = [h for h in chunk.heading_path if h != chunk.title]
    if path:
        lines.append(" > ".join(path))
    lines.append(chunk.content)
    return "\n".join(lines)


def make_chunks(
    document: Document, source: SourceFile, file_hash: str, chunker: Chunker, base_url: str | None = None
) -> list[Chunk]:
    """The file's chunks with everything a citation needs; missing metadata falls back to the file."""
    title = document.title or source.path.stem.replace("-", " ").replace("_", " ")
    url = document.url or (f"{base_url.rstrip('/')}/{quote(source.filepath)}" if base_url else None)
    modified = document.last_modified or iso_utc(datetime.fromtimestamp(source.path.stat().st_mtime, UTC))
    return [
        Chunk(
            id=chunk_id(source.filepath, position, passage.text),
            content=passage.text,
            title=title,
            url=url,
            filepath=source.filepath,
            chunk_id=str(position),
            page=passage.page,
            last_modified=modified,
            content_hash=file_hash,
            heading_path=list(passage.heading_path),
            group_ids=document.group_ids,
        )
        for position, passage in enumerate(chunker.split(document.sections))
    ]


class Indexer:
    def __init__(
        self,
        target: Target,
        embedder: Embedder | None,
        chunker: Chunker,
        *,
        progress: Progress | None = None,
        base_url: str | None = None,
        group_chunks: int = GROUP_CHUNKS,
        embed_concurrency: int = 1,
    ) -> None:
        if target.dimensions is not None and embedder is None:
            raise ConfigError(f"the {target.name} index stores vectors but no embedding model is configured")
        self.target, self.embedder, self.chunker = target, embedder, chunker
        self.progress = progress or Progress(live=False)
        self.base_url = base_url
        self.group_chunks = group_chunks
        # >1 for a remote model; a local one already keeps every core busy
        self.embed_concurrency = embed_concurrency

    async def run(
        self, roots: Sequence[Path], *, recreate: bool = False, dry_run: bool = False
    ) -> IndexSummary:
        started = time.monotonic()
        summary = IndexSummary(target=self.target.name, dry_run=dry_run)
        await self.target.prepare(recreate=recreate, dry_run=dry_run)
        known = await self.target.file_hashes()
        changed, gone = self._plan(roots, known, summary)
        await self._index(changed, known, summary, dry_run)
        summary.files_deleted = len(gone)
        if gone and not dry_run:
            self._tally(await self.target.delete(gone), summary, count_files=False)
        if not dry_run:
            await self.target.finish()
        summary.files_skipped = summary.files_unchanged + summary.files_unsupported
        summary.files_failed = len(summary.errors)
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    def _plan(
        self, roots: Sequence[Path], known: dict[str, str], summary: IndexSummary
    ) -> tuple[list[SourceFile], list[str]]:
        """(files to index, filepaths to remove), comparing each file's hash with the index's."""
        found = discover(list(roots))
        summary.files_seen = len(found.files) + len(found.skipped)
        summary.files_unsupported = len(found.skipped)
        summary.skipped = [str(path) for path in found.skipped]
        summary.errors += [FileError(path=p, reason=r) for p, r in found.errors]
        changed: list[SourceFile] = []
        for source in found.files:
            try:
                unchanged = known.get(source.filepath) == content_hash(source.path.read_bytes())
            except OSError as exc:
                summary.errors.append(FileError(path=str(source.path), reason=exc.strerror or str(exc)))
                continue
            if unchanged:
                summary.files_unchanged += 1
            else:
                changed.append(source)
        seen = {s.filepath for s in found.files}
        gone = sorted(path for path in known if path not in seen)
        if gone and not found.complete:
            log.warning("not removing %d files from the index: some folders could not be read", len(gone))
            gone = []
        log.info(
            "%d files: %d new or changed, %d unchanged, %d not documents, %d to remove",
            summary.files_seen,
            len(changed),
            summary.files_unchanged,
            summary.files_unsupported,
            len(gone),
        )
        return changed, gone

    async def _index(
        self, changed: list[SourceFile], known: dict[str, str], summary: IndexSummary, dry_run: bool
    ) -> None:
        """Load and chunk `changed`, then embed and write them a group at a time (a dry run only counts)."""
        bars = {
            "files": self.progress.bar("files", "files", len(changed)),
            "chunks": self.progress.bar("chunks", "chunks"),
        }
        if not dry_run:
            if self.embedder is not None:
                bars["embeddings"] = self.progress.bar("embeddings", "chunks")
            label = "uploads" if self.target.name == "azure" else "writes"
            bars["uploads"] = self.progress.bar(label, "chunks")
        try:
            group: list[_Pending] = []
            for source in changed:
                pending = await self._chunk(source, summary, bars)
                if pending is not None:
                    if dry_run:
                        self._count_dry(pending, known, summary)
                    else:
                        group.append(pending)
                if sum(len(p.chunks) for p in group) >= self.group_chunks:
                    await self._write(group, summary, bars)
                    group = []
            if group:
                await self._write(group, summary, bars)
        finally:
            for bar in bars.values():
                bar.close()

    async def _chunk(
        self, source: SourceFile, summary: IndexSummary, bars: dict[str, Bar]
    ) -> _Pending | None:
        try:
            data = source.path.read_bytes()
            file_hash = content_hash(data)  # of the bytes loaded, in case the file changed since listing
            document = await asyncio.to_thread(load, data, source.path)
            chunks = make_chunks(document, source, file_hash, self.chunker, self.base_url)
        except (LoadError, OSError) as exc:
            reason = str(exc) if isinstance(exc, LoadError) else exc.strerror or str(exc)
            log.warning("cannot index %s: %s", source.path, reason)
            summary.errors.append(FileError(path=str(source.path), reason=reason))
            return None
        finally:
            bars["files"].update(1)
        for warning in document.warnings:
            log.warning("%s", warning)
        summary.warnings += document.warnings
        if not chunks:
            log.info("%s has no text to index", source.path)
        bars["chunks"].update(len(chunks))
        for name in ("embeddings", "uploads"):
            if name in bars:
                bars[name].grow(len(chunks))
        return _Pending(source, file_hash, chunks)

    def _count_dry(self, pending: _Pending, known: dict[str, str], summary: IndexSummary) -> None:
        summary.files_indexed += 1
        if pending.source.filepath in known:
            summary.chunks_updated += len(pending.chunks)
        else:
            summary.chunks_added += len(pending.chunks)

    async def _write(self, group: list[_Pending], summary: IndexSummary, bars: dict[str, Bar]) -> None:
        vectors: list[np.ndarray | None] = [None] * len(group)
        if self.embedder is not None:
            try:
                vectors = await self._embed(group, bars["embeddings"])
            except (AuthError, ConfigError, DataSourceError):
                raise
            except RagError as exc:
                for pending in group:
                    summary.errors.append(
                        FileError(path=str(pending.source.path), reason=f"embedding: {exc}")
                    )
                return
        writes = [
            FileWrite(p.source.filepath, p.content_hash, p.chunks, v)
            for p, v in zip(group, vectors, strict=True)
        ]
        outcome = await self.target.write(writes, bars["uploads"].update)
        paths = {p.source.filepath: str(p.source.path) for p in group}
        self._tally(outcome, summary, count_files=True, paths=paths)

    async def _embed(self, group: list[_Pending], bar: Bar) -> list[np.ndarray | None]:
        assert self.embedder is not None
        texts = [embedding_text(chunk) for pending in group for chunk in pending.chunks]
        # Slices of similar length waste little compute on padding; rows are put back in order below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        gate = asyncio.Semaphore(self.embed_concurrency)
        embedder = self.embedder

        async def one(start: int) -> np.ndarray:
            async with gate:
                part = np.asarray(
                    await embedder.embed([texts[i] for i in order[start : start + EMBED_SLICE]]), np.float32
                )
            bar.update(len(part))
            return part

        parts = await asyncio.gather(*(one(start) for start in range(0, len(order), EMBED_SLICE)))
        matrix = np.concatenate(parts) if parts else np.zeros((0, self.target.dimensions or 0), np.float32)
        if matrix.shape[0] == len(texts):
            matrix[order] = matrix.copy()
        if matrix.shape[0] != len(texts) or (
            texts and self.target.dimensions and matrix.shape[1] != self.target.dimensions
        ):
            raise ConfigError(
                f"the embedding model returned vectors of shape {matrix.shape}, but the {self.target.name} "
                f"index expects {self.target.dimensions} dimensions (set AZURE_OPENAI_EMBEDDING_DIMENSIONS "
                "to match, or rebuild with --recreate)"
            )
        out: list[np.ndarray | None] = []
        offset = 0
        for pending in group:
            out.append(matrix[offset : offset + len(pending.chunks)])
            offset += len(pending.chunks)
        return out

    @staticmethod
    def _tally(
        outcome: WriteOutcome,
        summary: IndexSummary,
        *,
        count_files: bool,
        paths: dict[str, str] | None = None,
    ) -> None:
        for change in outcome.changes.values():
            summary.chunks_added += change.added
            summary.chunks_updated += change.updated
            summary.chunks_deleted += change.deleted
        if count_files:
            summary.files_indexed += len(outcome.changes)
        for filepath, reason in outcome.errors.items():
            log.warning("cannot write %s: %s", filepath, reason)
            summary.errors.append(FileError(path=(paths or {}).get(filepath, filepath), reason=reason))
