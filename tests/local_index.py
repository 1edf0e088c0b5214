"""A small local index written straight into the store: one chunk per passage, embedded with the real
local model, for suites that need a few known documents rather than the whole sample set."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rag.documents import Chunk
from rag.local.embedder import LocalEmbedder
from rag.local.store import LocalStore


def write_passages(data_dir: Path, passages: Iterable[tuple[str, str, str, Sequence[str]]]) -> Path:
    """Index `(filepath, title, text, group ids)` passages into `data_dir/index.sqlite`; returns data_dir."""
    embedder = LocalEmbedder()
    with LocalStore(data_dir / "index.sqlite") as store:
        for filepath, title, text, groups in passages:
            chunk = Chunk(
                id=f"{filepath}#0",
                content=text,
                title=title,
                filepath=filepath,
                chunk_id="0",
                content_hash=filepath,
                group_ids=list(groups),
            )
            store.replace_file(filepath, [chunk], embedder.embed_sync([f"{title}\n{text}"]))
    return data_dir
