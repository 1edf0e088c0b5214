"""GroundedAnswerer: one turn of On Your Data, run on the client with any retriever and generator.

1. intent: the rewriter turns history + question into standalone queries (the Answer's intent), whose
   typos a retriever that knows its vocabulary (a :class:`Speller`) corrects;
2. every query is searched with the retriever's query type, trimmed to what the asker may see (the rule:
   :class:`~rag.contract.Asker`), and the lists are fused by rank;
3. strictness drops weak documents, top_n caps the rest, in_scope refuses when nothing is left;
4. the generator writes from the documents numbered [doc1]..[docN]; citations are those documents, in
   retrieval order, whether or not the text cites them (as On Your Data returns them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from opentelemetry.trace import Span
from pydantic import BaseModel, Field

from rag import telemetry
from rag.contract import (
    REFUSAL,
    Answer,
    AnswerBuilder,
    AnswerDelta,
    Asker,
    Citation,
    Library,
    RetrievedDocument,
    Turn,
)
from rag.documents import ScoredChunk
from rag.grounded.fusion import fuse
from rag.grounded.intent import FollowUpRewriter
from rag.grounded.protocols import Generator, QueryRewriter, Retriever, Speller
from rag.grounded.strictness import Selection, select


class GroundingOptions(BaseModel):
    """On Your Data's retrieval knobs, with its defaults."""

    strictness: int = Field(default=3, ge=1, le=5)
    top_n_documents: int = Field(default=5, ge=1, le=50)
    in_scope: bool = True
    max_search_queries: int = Field(default=3, ge=1, le=20)
    search_depth: int = Field(default=20, ge=1, le=200, description="hits fetched per query before the cuts")
    include_all_retrieved: bool = Field(default=False, description="fill Answer.all_retrieved_documents")


@dataclass
class Retrieval:
    queries: list[str]
    selection: Selection

    @property
    def citations(self) -> list[Citation]:
        return [to_citation(hit) for hit in self.selection.kept]

    def all_documents(self) -> list[RetrievedDocument]:
        """Every fused hit with On Your Data's filter_reason: None kept, "score" or "rerank" dropped."""
        groups: list[tuple[list[ScoredChunk], Literal["score", "rerank"] | None]] = [
            (self.selection.kept, None),
            (self.selection.below_strictness, "score"),
            (self.selection.beyond_top_n, "rerank"),
        ]
        documents = []
        for hits, reason in groups:
            for hit in hits:
                documents.append(
                    RetrievedDocument(
                        **to_citation(hit).model_dump(),
                        search_queries=[hit.query] if hit.query else list(self.queries),
                        original_search_score=hit.score,
                        filter_reason=reason,
                    )
                )
        return documents


def _observe_delta(span: Span, delta: AnswerDelta) -> None:
    if delta.finish_reason:
        span.set_attribute("ragbot.finish_reason", delta.finish_reason)


def to_citation(hit: ScoredChunk) -> Citation:
    chunk = hit.chunk
    return Citation(
        content=chunk.content,
        title=chunk.title,
        url=chunk.url,
        filepath=chunk.filepath,
        chunk_id=chunk.chunk_id or None,
        page=chunk.page,
        score=hit.rerank_score if hit.rerank_score is not None else hit.score,
    )


class GroundedAnswerer:
    """The :class:`~rag.contract.Answerer` of the grounded and local backends."""

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        *,
        rewriter: QueryRewriter | None = None,
        options: GroundingOptions | None = None,
        name: str = "grounded",
    ) -> None:
        self.name = name
        self.retriever = retriever
        self.generator = generator
        self.rewriter: QueryRewriter = rewriter or FollowUpRewriter()
        self.options = options or GroundingOptions()

    @property
    def library(self) -> Library | None:
        """The indexed documents, when the retriever searches the local index (see `Library`)."""
        return self.retriever if isinstance(self.retriever, Library) else None

    async def retrieve(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Retrieval:
        """Steps 1-3: intent, search and fusion, strictness and top_n (one span: what was cut where)."""
        with telemetry.span("ragbot.retrieve", {"ragbot.retriever": self.retriever.name}) as span:
            retrieval = await self._retrieve(history, question, user)
            if span.is_recording():
                selection = retrieval.selection
                span.set_attributes(
                    {
                        "ragbot.retrieval.queries": len(retrieval.queries),
                        "ragbot.retrieval.hits": len(selection.kept)
                        + len(selection.below_strictness)
                        + len(selection.beyond_top_n),
                        "ragbot.retrieval.kept": len(selection.kept),
                        "ragbot.retrieval.below_strictness": len(selection.below_strictness),
                        "ragbot.retrieval.beyond_top_n": len(selection.beyond_top_n),
                        "ragbot.retrieval.strictness": self.options.strictness,
                        "ragbot.retrieval.top_n": self.options.top_n_documents,
                    }
                )
                if telemetry.content_enabled():
                    span.set_attribute("ragbot.retrieval.query_texts", retrieval.queries)
        return retrieval

    async def _retrieve(self, history: Sequence[Turn], question: str, user: Asker | None) -> Retrieval:
        options = self.options
        queries = (await self.rewriter.rewrite(history, question))[: options.max_search_queries]
        if isinstance(self.retriever, Speller):
            queries = list(dict.fromkeys([await self.retriever.spell(q) for q in queries]))
        asker = user or Asker()
        lists = await asyncio.gather(
            *(self.retriever.retrieve(q, top=options.search_depth, asker=asker) for q in queries)
        )
        # the retriever trimmed already; a hit whose access list came back is checked again, so a filter
        # the search service did not apply cannot show a restricted document
        tagged = [
            [
                h if h.query else h.model_copy(update={"query": q})
                for h in found
                if asker.may_see(h.chunk.group_ids, h.chunk.user_ids)
            ]
            for q, found in zip(queries, lists, strict=True)
        ]
        # the intent is what was searched: a retriever whose service rewrites queries reports them per hit
        ran = [
            list(dict.fromkeys(h.query for h in found)) or [q]
            for q, found in zip(queries, tagged, strict=True)
        ]
        hits = tagged[0] if len(tagged) == 1 else fuse([(found, 1.0) for found in tagged])
        selection = select(hits, strictness=options.strictness, top_n=options.top_n_documents)
        return Retrieval(queries=list(dict.fromkeys(q for run in ran for q in run)), selection=selection)

    async def _deltas(
        self, retrieval: Retrieval, history: Sequence[Turn], question: str
    ) -> AsyncIterator[AnswerDelta]:
        citations = retrieval.citations
        yield AnswerDelta(citations=citations, intent=retrieval.queries)
        if not citations and self.options.in_scope:
            yield AnswerDelta(content=REFUSAL, finish_reason="stop")
            return
        finished = False
        deltas = telemetry.traced(
            "ragbot.generate",
            self.generator.stream(history, question, citations, retrieval.queries),
            {"ragbot.generator": self.generator.name, "ragbot.documents": len(citations)},
            observe=_observe_delta,
        )
        async for delta in deltas:
            finished = finished or delta.finish_reason is not None
            yield delta.model_copy(update={"citations": None, "intent": None})
        if not finished:
            yield AnswerDelta(finish_reason="stop")

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        retrieval = await self.retrieve(history, question, user)
        builder = AnswerBuilder()
        async for delta in self._deltas(retrieval, history, question):
            builder.add(delta)
        answer = builder.build()
        if self.options.include_all_retrieved:
            answer.all_retrieved_documents = retrieval.all_documents()
        return answer

    async def stream(
        self, history: Sequence[Turn], question: str, user: Asker | None = None
    ) -> AsyncIterator[AnswerDelta]:
        retrieval = await self.retrieve(history, question, user)
        async for delta in self._deltas(retrieval, history, question):
            yield delta

    async def ready(self) -> str | None:
        return await self.retriever.ready()

    async def aclose(self) -> None:
        await self.generator.aclose()
        await self.retriever.aclose()
