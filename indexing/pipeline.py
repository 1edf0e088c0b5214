"""One indexing run: find files, skip the unchanged ones, load, chunk, embed, write, remove the deleted.

Files are processed in groups of a few hundred chunks so embeddings are computed in large batches (one
model call per group) while memory stays bounded however big the folder is.

Which indexed file a file on disk is: the index keeps each file's `filepath` (relative, what citations
show and chunk ids derive from) and its root (the absolute folder that filepath is relative to), so the
file at root/filepath keeps its name and ids whichever folder a run is given: indexing `docs/it` after
`docs` updates `it/vpn.md`, it does not add a `vpn.md`. A new file under the root of files already
indexed is named relative to that root. Removal is scoped: a run removes only indexed files whose
root/filepath lies under the folders it was given and that are gone, and more than half of the index
only with `prune` (else `PruneRefused`, before anything is written).

An index built before roots were kept: each of its files is recognised by the file on disk whose path
ends with its filepath (the longest such), keeps its name and ids and learns its root (no re-embedding);
one the run did not find is removed only when it would lie under the run's folders, placed at a root
learnt in the same run. So a run over the original folder adopts the whole index as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from pydantic import BaseModel, Field

from indexing.chunking import Chunker
from indexing.documents import Document, LoadError
from indexing.loaders import iso_utc, load
from indexing.progress import Bar, Progress
from indexing.sources import Discovery, SourceFile, content_hash, discover
from indexing.targets import FileWrite, Indexed, Target, WriteOutcome
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


class PruneRefused(RagError):
    """The run would remove more than half of the index, and `prune` was not given."""


@dataclass
class _Plan:
    changed: list[SourceFile]  # named as in the index, with their root
    gone: list[str]  # filepaths to remove
    adopted: dict[str, str]  # unchanged files indexed before roots were kept -> their root


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
            user_ids=document.user_ids,
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
        self, roots: Sequence[Path], *, recreate: bool = False, dry_run: bool = False, prune: bool = False
    ) -> IndexSummary:
        started = time.monotonic()
        summary = IndexSummary(target=self.target.name, dry_run=dry_run)
        await self.target.prepare(recreate=recreate, dry_run=dry_run)
        known = await self.target.indexed()
        plan = self._plan(roots, known, summary)
        if len(plan.gone) * 2 > len(known) and not prune:
            refusal = (
                f"this run would remove {len(plan.gone)} of the {len(known)} files in the index "
                f"(e.g. {', '.join(plan.gone[:3])}): pass --prune to remove them, or index the folder they "
                "came from"
            )
            if not dry_run:
                raise PruneRefused(refusal)
            log.warning("%s", refusal)
        await self._index(plan.changed, known, summary, dry_run)
        summary.files_deleted = len(plan.gone)
        if not dry_run:
            if plan.adopted:
                await self.target.set_roots(plan.adopted)
            if plan.gone:
                self._tally(await self.target.delete(plan.gone), summary, count_files=False)
            await self.target.finish()
        summary.files_skipped = summary.files_unchanged + summary.files_unsupported
        summary.files_failed = len(summary.errors)
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    def _plan(self, roots: Sequence[Path], known: dict[str, Indexed], summary: IndexSummary) -> _Plan:
        """Files to index, files to remove, roots to record, comparing each file's hash with the index's."""
        found = discover(list(roots))
        summary.files_seen = len(found.files) + len(found.skipped)
        summary.files_unsupported = len(found.skipped)
        summary.skipped = [str(path) for path in found.skipped]
        summary.errors += [FileError(path=p, reason=r) for p, r in found.errors]
        sources, learnt = self._identify(found, known, summary)
        plan = _Plan([], [], {})
        for source in sources:
            try:
                entry = known.get(source.filepath)
                unchanged = entry is not None and entry.content_hash == content_hash(source.path.read_bytes())
            except OSError as exc:
                summary.errors.append(FileError(path=str(source.path), reason=exc.strerror or str(exc)))
                continue
            if unchanged:
                summary.files_unchanged += 1
                if source.filepath in learnt:
                    plan.adopted[source.filepath] = learnt[source.filepath]
            else:
                plan.changed.append(source)
        plan.gone = _gone(roots, known, {s.filepath for s in sources}, set(learnt.values()))
        if plan.gone and not found.complete:
            log.warning(
                "not removing %d files from the index: some folders could not be read", len(plan.gone)
            )
            plan.gone = []
        log.info(
            "%d files: %d new or changed, %d unchanged, %d not documents, %d to remove",
            summary.files_seen,
            len(plan.changed),
            summary.files_unchanged,
            summary.files_unsupported,
            len(plan.gone),
        )
        return plan

    @staticmethod
    def _identify(
        found: Discovery, known: dict[str, Indexed], summary: IndexSummary
    ) -> tuple[list[SourceFile], dict[str, str]]:
        """Each found file named as the index names it (see the module's docstring), and the roots learnt
        for files indexed before roots were kept (filepath -> root)."""
        by_source = {str(Path(entry.root, path)): path for path, entry in known.items() if entry.root}
        legacy = {path for path, entry in known.items() if entry.root is None}
        known_roots = sorted(
            {Path(entry.root) for entry in known.values() if entry.root}, key=lambda r: -len(r.parts)
        )
        sources: list[SourceFile] = []
        learnt: dict[str, str] = {}
        claimed: dict[str, Path] = {}
        for source in found.files:
            assert source.root is not None
            where = source.root.resolve() / source.filepath
            if str(where) in by_source:
                filepath = by_source[str(where)]
                root = Path(known[filepath].root or "")
            else:
                parts = where.parts
                suffixes = ("/".join(parts[-n:]) for n in range(len(parts) - 1, 0, -1))
                match = next((suffix for suffix in suffixes if suffix in legacy), None)
                if match is not None:
                    filepath, root = match, Path(*parts[: -len(match.split("/"))])
                    learnt[filepath] = str(root)
                else:
                    root = next((r for r in known_roots if r in where.parents), source.root.resolve())
                    filepath = where.relative_to(root).as_posix()
                    if filepath in known:
                        summary.errors.append(
                            FileError(
                                path=str(source.path),
                                reason=f"{filepath} is indexed already, from {known[filepath].root}: "
                                "give the two folders different layouts or index them into separate indexes",
                            )
                        )
                        continue
            if filepath in claimed:
                summary.errors.append(
                    FileError(path=str(source.path), reason=f"same name in the index as {claimed[filepath]}")
                )
                continue
            claimed[filepath] = source.path
            sources.append(replace(source, filepath=filepath, root=root))
        return sources, learnt

    async def _index(
        self, changed: list[SourceFile], known: dict[str, Indexed], summary: IndexSummary, dry_run: bool
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

    def _count_dry(self, pending: _Pending, known: dict[str, Indexed], summary: IndexSummary) -> None:
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
            FileWrite(p.source.filepath, p.content_hash, p.chunks, v, str(p.source.root))
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


def _gone(roots: Sequence[Path], known: dict[str, Indexed], seen: set[str], learnt: set[str]) -> list[str]:
    """Indexed files not seen whose place (root/filepath) lies under the folders given. A file indexed
    before roots were kept is placed at each root learnt in this run (none learnt: it is left alone)."""
    given = [root.resolve() for root in roots]

    def under(place: Path) -> bool:
        return any(place == folder or folder in place.parents for folder in given)

    gone = []
    for filepath, entry in known.items():
        if filepath in seen:
            continue
        places = [Path(entry.root, filepath)] if entry.root else [Path(root, filepath) for root in learnt]
        if any(under(place) for place in places):
            gone.append(filepath)
    return sorted(gone)
