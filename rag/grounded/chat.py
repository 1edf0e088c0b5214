"""The chat-model generator: any Azure OpenAI deployment (including ones On Your Data refuses) or any
OpenAI-compatible endpoint writes the answer from the numbered documents.

It talks through the shared :class:`~rag.azure.client.AzureOpenAIClient` (same auth, retries, rate limit
and SSE parsing as On Your Data) and reuses On Your Data's response parsing, so a `[docN]` marker is never
split across deltas. The documents go into the system message as `[doc1]`..`[docN]`; markers pointing
past the last document are removed, since they would cite nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from rag.azure.chat_request import ChatParams, history_messages
from rag.azure.client import AzureOpenAIClient
from rag.azure.dialects import Dialect
from rag.azure.responses import StreamDecoder, parse_completion
from rag.contract import DOC_MARKER, REFUSAL, AnswerDelta, Citation, Turn

GROUNDING_RULES = (
    "Answer the user's question using only the numbered documents below. After each statement, cite the "
    "document it comes from with its marker, for example [doc1] or [doc2][doc3]. Do not cite documents "
    "that are not listed. Answer in the language of the question, concisely."
)
IN_SCOPE_RULE = "If the documents do not contain the answer, reply exactly: " + REFUSAL
OPEN_SCOPE_RULE = (
    "If the documents do not contain the answer, you may answer from general knowledge, and say that "
    "the answer is not from the documents."
)


def documents_block(documents: Sequence[Citation]) -> str:
    """The documents as the model sees them: `[docN]`, title and source, then the text."""
    parts = []
    for number, doc in enumerate(documents, start=1):
        source = doc.url or doc.filepath
        header = f"[doc{number}] {doc.title or doc.filepath or 'untitled'}" + (
            f" ({source})" if source else ""
        )
        parts.append(f"{header}\n{doc.content.strip()}")
    return "\n\n".join(parts) if parts else "(no documents were found)"


def system_prompt(role_information: str, documents: Sequence[Citation], *, in_scope: bool) -> str:
    rules = f"{GROUNDING_RULES} {IN_SCOPE_RULE if in_scope else OPEN_SCOPE_RULE}"
    return f"{role_information.strip()}\n\n{rules}\n\nDocuments:\n\n{documents_block(documents)}"


def keep_known_markers(text: str, count: int) -> str:
    """`text` without the `[docN]` markers whose N is not a document number (1..count)."""
    return DOC_MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= count else "", text)


class ChatGenerator:
    """A grounded answer from a chat model, which also serves the query rewrite (`complete`)."""

    def __init__(
        self,
        client: AzureOpenAIClient,
        *,
        name: str,
        params: ChatParams,
        role_information: str,
        in_scope: bool = True,
        history_tokens: int = 2000,
        streaming: bool = True,
        deployment: str | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.params = params.model_copy(update={"n": None})  # one answer: the pipeline has no alternatives
        self.role_information = role_information
        self.in_scope = in_scope
        self.history_tokens = history_tokens
        self.streaming = streaming
        self.deployment = deployment

    def request(
        self, history: Sequence[Turn], question: str, documents: Sequence[Citation]
    ) -> dict[str, Any]:
        """The chat body: grounded system message, the history that fits the budget, the question."""
        earlier = history_messages(history, _PLAIN, self.history_tokens)
        messages = [
            {
                "role": "system",
                "content": system_prompt(self.role_information, documents, in_scope=self.in_scope),
            },
            *({"role": m["role"], "content": m["content"]} for m in earlier),
            {"role": "user", "content": question},
        ]
        return {"messages": messages, **self.params.wire()}

    async def stream(
        self, history: Sequence[Turn], question: str, documents: Sequence[Citation], queries: Sequence[str]
    ) -> AsyncIterator[AnswerDelta]:
        body = self.request(history, question, documents)
        count = len(documents)
        if not self.streaming:
            answer = parse_completion(await self.client.chat(body, deployment=self.deployment))
            yield AnswerDelta(
                content=keep_known_markers(answer.content, count),
                finish_reason=answer.finish_reason or "stop",
                usage=answer.usage,
                content_filter=answer.content_filter or None,
            )
            return
        decoder = StreamDecoder()
        async for chunk in self.client.chat_stream(body, deployment=self.deployment):
            for delta in decoder.feed(chunk):
                yield delta.model_copy(update={"content": keep_known_markers(delta.content, count)})
        for delta in decoder.finish():
            yield delta.model_copy(update={"content": keep_known_markers(delta.content, count)})

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """One short non-streamed reply (the query rewrite)."""
        body = {"messages": messages, "temperature": 0, "max_tokens": 200}
        return parse_completion(await self.client.chat(body, deployment=self.deployment)).content

    async def aclose(self) -> None:
        await self.client.aclose()


# History for a plain chat model: the modern dialect's turn messages, from which only role and content are
# sent (the `context` On Your Data reads back is unknown to other endpoints).
_PLAIN = Dialect(version="plain-chat", legacy=False)
