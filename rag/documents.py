"""A chunk of a source document: the unit both indexes store and the retrievers return."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

_GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def canonical_id(value: str) -> str:
    """A group or user id as security trimming compares it: an Entra id (a GUID, whose case carries no
    meaning) in lower case, as Microsoft Graph writes it; any other id exactly as given."""
    return value.lower() if _GUID.match(value) else value


class Chunk(BaseModel):
    """One searchable passage with everything a citation needs.

    `id` is stable (same file, same position, same text -> same id) so re-indexing an unchanged
    file rewrites nothing.
    """

    id: str
    content: str
    title: str | None = None
    url: str | None = None
    filepath: str
    chunk_id: str = Field(description="position of the chunk in its file, as a string ('0', '1', ...)")
    page: int | None = None
    last_modified: str | None = None
    content_hash: str = Field(description="hash of the whole source file the chunk came from")
    heading_path: list[str] = Field(default_factory=list)
    group_ids: list[str] = Field(default_factory=list, description="groups that may see it (trimming)")
    user_ids: list[str] = Field(default_factory=list, description="users (Entra object ids) that may see it")

    @field_validator("group_ids", "user_ids")
    @classmethod
    def _canonical(cls, ids: list[str]) -> list[str]:
        return [canonical_id(i) for i in ids]

    @property
    def restricted(self) -> bool:
        """Names groups or users (see :class:`rag.contract.Asker` for who sees it); else everyone's."""
        return bool(self.group_ids or self.user_ids)


class ScoredChunk(BaseModel):
    """A retrieval hit: the chunk, its fused score and the query that found it."""

    chunk: Chunk
    score: float
    query: str = ""
    rerank_score: float | None = None
