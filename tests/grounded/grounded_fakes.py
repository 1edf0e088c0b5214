"""In-test stand-ins for the grounded pipeline's seams: a retriever answering from a dict, a generator
that cites every document, and a rewriter with a fixed answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.contract import AnswerDelta, Asker, Citation, Turn
from rag.documents import Chunk, ScoredChunk


def chunk(key: str, content: str, *, filepath: str | None = None, title: str | None = None) -> Chunk:
    return Chunk(
        id=key,
        content=content,
        title=title or key,
        url=f"https://kb.example/{key}",
        filepath=filepath or f"{key}.md",
        chunk_id="0",
        content_hash="h",
    )


def hit(key: str, relevance: float | None, content: str = "", *, score: float = 1.0) -> ScoredChunk:
    return ScoredChunk(chunk=chunk(key, content or f"About {key}."), score=score, rerank_score=relevance)


class DictRetriever:
    """Returns the hits listed for a query (best first), recording every call."""

    name = "dict"

    def __init__(self, results: dict[str, list[ScoredChunk]]) -> None:
        self.results = results
        self.calls: list[tuple[str, int, Asker | None]] = []
        self.closed = False

    async def retrieve(self, query: str, *, top: int, asker: Asker | None = None) -> list[ScoredChunk]:
        self.calls.append((query, top, asker))
        return self.results.get(query, [])[:top]

    async def ready(self) -> str | None:
        return None

    async def aclose(self) -> None:
        self.closed = True


class CitingGenerator:
    """Writes one sentence per document, citing it, in two deltas per sentence."""

    name = "citing"

    def __init__(self) -> None:
        self.seen: list[list[Citation]] = []

    async def stream(
        self, history: Sequence[Turn], question: str, documents: Sequence[Citation], queries: Sequence[str]
    ) -> AsyncIterator[AnswerDelta]:
        self.seen.append(list(documents))
        for number, doc in enumerate(documents, start=1):
            yield AnswerDelta(content=f"{doc.title} says so ")
            yield AnswerDelta(content=f"[doc{number}]. ")
        yield AnswerDelta(finish_reason="stop")

    async def aclose(self) -> None:
        return None


class FixedRewriter:
    def __init__(self, queries: list[str]) -> None:
        self.queries = queries

    async def rewrite(self, history: Sequence[Turn], question: str) -> list[str]:
        return list(self.queries)


def completion(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content}}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def stream_events(*pieces: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return events


@dataclass
class Retrieved:
    """One knowledge base retrieve answer of the fake cloud: JSON body, status and headers."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
