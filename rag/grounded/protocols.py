"""The two seams of the grounded pipeline: where documents come from and who writes the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from rag.contract import AnswerDelta, Asker, Citation, Turn
from rag.documents import ScoredChunk


@runtime_checkable
class Retriever(Protocol):
    """Runs one search query with the configured query type.

    Hits come best first. `ScoredChunk.score` is the retriever's ranking score (only its order matters);
    `ScoredChunk.rerank_score` is an absolute relevance on a 0-1 scale (1 = a perfect match) when the query
    type yields one, else None. Strictness cuts on that relevance (see `rag.grounded.strictness`).
    """

    name: str

    async def retrieve(self, query: str, *, top: int, asker: Asker | None = None) -> list[ScoredChunk]:
        """The best `top` chunks for `query` that `asker` may see (None: anonymous), by `Asker`'s rule.

        A retriever whose index holds access lists always trims; a hit's chunk carries the access list when
        the index returns it (the answerer checks it again)."""
        ...

    async def ready(self) -> str | None:
        """None when searchable, else why not (for `/readyz` and `ragbot ask`)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Generator(Protocol):
    """Writes the answer from the numbered documents ([doc1] is `documents[0]`), citing them as `[docN]`."""

    name: str

    def stream(
        self, history: Sequence[Turn], question: str, documents: Sequence[Citation], queries: Sequence[str]
    ) -> AsyncIterator[AnswerDelta]:
        """Text deltas (never half a `[docN]` marker), then finish_reason/usage; no citations or intent.

        `queries` is the turn's intent (the standalone form of a follow-up), for generators without history.
        """
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class QueryRewriter(Protocol):
    """Turns the thread and the new question into standalone search queries (the Answer's intent)."""

    async def rewrite(self, history: Sequence[Turn], question: str) -> list[str]: ...


@runtime_checkable
class Speller(Protocol):
    """A retriever that knows its vocabulary corrects typos in a query before it is searched and shown."""

    async def spell(self, query: str) -> str: ...
