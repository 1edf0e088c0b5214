"""The answer contract every backend fulfils and everything downstream consumes.

No backend's wire format leaks past these models: the bot renders an :class:`Answer`, stores
:class:`Turn` objects, and streams :class:`AnswerDelta` values, whichever backend produced them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, field_validator

from rag.documents import Chunk, canonical_id

DOC_MARKER = re.compile(r"\[doc(\d+)\]")

REFUSAL = (
    "The requested information is not available in the retrieved data. Please try another query or topic."
)
"""On Your Data's wording when `in_scope` is true and nothing relevant was retrieved."""


class Citation(BaseModel):
    """One retrieved document as the answer cites it; `[docN]` in the content is `citations[N-1]`."""

    content: str
    title: str | None = None
    url: str | None = None
    filepath: str | None = None
    chunk_id: str | None = None
    page: int | None = Field(default=None, description="1-based PDF page, for `#page=N` links")
    score: float | None = Field(default=None, description="rerank or retrieval score, when known")


class RetrievedDocument(Citation):
    """A document the search returned, kept or not (On Your Data's `all_retrieved_documents`)."""

    search_queries: list[str] = Field(default_factory=list)
    data_source_index: int = 0
    original_search_score: float | None = None
    filter_reason: Literal["score", "rerank"] | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ContentFilterResult(BaseModel):
    """One content-filter category for the prompt or the completion."""

    source: Literal["prompt", "completion"]
    category: str
    filtered: bool = False
    severity: str | None = None
    detected: bool | None = None


class Answer(BaseModel):
    """A grounded answer: content with `[docN]` markers, the documents they point at, and the intent."""

    content: str
    citations: list[Citation] = Field(default_factory=list)
    intent: list[str] = Field(default_factory=list, description="the search queries the turn ran")
    finish_reason: str | None = "stop"
    usage: Usage | None = None
    content_filter: list[ContentFilterResult] = Field(default_factory=list)
    all_retrieved_documents: list[RetrievedDocument] = Field(default_factory=list)
    alternatives: list[Answer] = Field(default_factory=list, description="choices 2..n when n > 1")

    @property
    def refused(self) -> bool:
        """True for the in-scope refusal (nothing relevant was retrieved)."""
        return self.content.strip() == REFUSAL

    def cited_numbers(self) -> list[int]:
        """The 1-based document numbers the content cites, in order of first use."""
        seen: list[int] = []
        for match in DOC_MARKER.finditer(self.content):
            number = int(match.group(1))
            if number not in seen:
                seen.append(number)
        return seen


class AnswerDelta(BaseModel):
    """One streamed piece of an answer.

    `content` is text to append and never holds half a `[docN]` marker. Citations and intent arrive
    once, usually before the first text; usage and finish_reason usually at the end.
    """

    content: str = ""
    citations: list[Citation] | None = None
    intent: list[str] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    content_filter: list[ContentFilterResult] | None = None


class AnswerBuilder:
    """Folds a stream of deltas into the :class:`Answer` a non-streaming call would have returned."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.answer = Answer(content="", finish_reason=None)

    def add(self, delta: AnswerDelta) -> None:
        self._parts.append(delta.content)
        answer = self.answer
        if delta.citations is not None:
            answer.citations = delta.citations
        if delta.intent is not None:
            answer.intent = delta.intent
        if delta.finish_reason is not None:
            answer.finish_reason = delta.finish_reason
        if delta.usage is not None:
            answer.usage = delta.usage
        if delta.content_filter:
            answer.content_filter.extend(delta.content_filter)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def build(self) -> Answer:
        return self.answer.model_copy(update={"content": self.text})


class Turn(BaseModel):
    """One stored message of a thread's history."""

    role: Literal["user", "assistant"]
    content: str
    citations: list[Citation] = Field(default_factory=list)
    intent: list[str] = Field(default_factory=list)


class Asker(BaseModel):
    """Who asks: the `user` field sent upstream and security trimming.

    Trimming, the same on every retriever: a document that names no groups and no users is everyone's,
    anonymous askers (None, or no object id and no groups) included; a restricted document is the
    asker's when one of its groups is among `groups` or its users name `aad_object_id` (the Entra object
    id, as in the `oids` field of Microsoft's samples). Ids compare exactly, except that GUIDs (Entra ids)
    compare without regard to case (:func:`rag.documents.canonical_id`). The bot fills `groups` and
    `aad_object_id` from a validated identity only, never from anything the user typed or sent.
    """

    user_id: str | None = None
    tenant_id: str | None = None
    aad_object_id: str | None = None
    groups: list[str] = Field(default_factory=list)

    @field_validator("groups")
    @classmethod
    def _canonical_groups(cls, groups: list[str]) -> list[str]:
        return [canonical_id(g) for g in groups]

    @field_validator("aad_object_id")
    @classmethod
    def _canonical_user(cls, value: str | None) -> str | None:
        return canonical_id(value) if value else value

    def may_see(self, group_ids: Sequence[str], user_ids: Sequence[str]) -> bool:
        """Whether a document restricted to `group_ids` and `user_ids` (both empty: public) is shown."""
        if not group_ids and not user_ids:
            return True
        shares_group = not {g for g in self.groups if g}.isdisjoint(map(canonical_id, group_ids))
        return shares_group or (
            bool(self.aad_object_id) and self.aad_object_id in {canonical_id(u) for u in user_ids}
        )

    @property
    def principals(self) -> list[tuple[str, str]]:
        """What a restricted document may name to let this asker in: ("group", id) and ("user", id)."""
        found = [("group", g) for g in dict.fromkeys(self.groups) if g]
        return found + ([("user", self.aad_object_id)] if self.aad_object_id else [])


@runtime_checkable
class Answerer(Protocol):
    """One contract, three backends: On Your Data, grounded (client-side, on an index or a knowledge
    base), local (embedded)."""

    name: str

    async def answer(self, history: Sequence[Turn], question: str, user: Asker | None = None) -> Answer:
        """Answer `question` given the thread's earlier turns."""
        ...

    def stream(
        self, history: Sequence[Turn], question: str, user: Asker | None = None
    ) -> AsyncIterator[AnswerDelta]:
        """Stream the answer; folding the deltas with :class:`AnswerBuilder` gives `answer()`'s result."""
        ...

    async def ready(self) -> str | None:
        """None when the backend can answer, else the reason it cannot (shown by `/readyz`)."""
        ...

    async def aclose(self) -> None:
        """Release sessions and files."""
        ...


@runtime_checkable
class Library(Protocol):
    """What a backend over the local index also offers the channel layer: the indexed documents themselves.

    The bot serves a document without a url of its own from it (`/sources/...`) and greets with the titles
    that best represent the knowledge base. Azure-backed answerers have no such thing.
    """

    async def document(self, filepath: str) -> list[Chunk]:
        """The public chunks of one indexed file, in document order ([] when none, or when any chunk is
        restricted to groups: a document is shown whole or not at all)."""
        ...

    async def central_titles(self, count: int) -> list[str]:
        """Up to `count` distinct titles of the documents nearest the centre of the knowledge base."""
        ...
