"""Chat-completions responses (whole or streamed) of every api-version, turned into the answer contract.

Shapes are recognised from the payload, not from the configured version:
- 2023-06-01-preview: `choices[].messages[]` (a tool message with citations JSON, then the assistant);
  streamed as `choices[].messages[0].delta`.
- 2023-08/12-preview: `message.context.messages[0]` is that tool message; streamed in
  `delta.context.messages`.
- 2024-02-15-preview and later: `message.context = {citations, intent, all_retrieved_documents}`;
  streamed as `delta.context` in an early chunk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from rag.contract import Answer, AnswerDelta, Citation, ContentFilterResult, RetrievedDocument, Usage
from rag.errors import ContentFiltered, UpstreamUnavailable


def parse_intent(raw: Any) -> list[str]:
    """Intent as a list of queries: a JSON-encoded list, a plain string, or (off-schema) a list."""
    if isinstance(raw, list):
        return [str(q) for q in raw if str(q).strip()]
    if not isinstance(raw, str) or not raw.strip():
        return []
    text = raw.strip()
    if text.startswith("["):
        try:
            decoded = json.loads(text)
        except ValueError:
            return [text]
        if isinstance(decoded, list):
            return [str(q) for q in decoded if str(q).strip()]
    return [text]


def _citation_fields(raw: dict[str, Any]) -> dict[str, Any]:
    score = raw.get("rerank_score")
    return {
        "content": str(raw.get("content") or ""),
        "title": raw.get("title") or None,
        "url": raw.get("url") or None,
        "filepath": raw.get("filepath") or raw.get("file_path") or None,
        "chunk_id": str(raw["chunk_id"]) if raw.get("chunk_id") is not None else None,
        "score": float(score) if isinstance(score, int | float) else None,
    }


def _retrieved(raw: dict[str, Any]) -> RetrievedDocument:
    original = raw.get("original_search_score")
    reason = raw.get("filter_reason")
    return RetrievedDocument(
        **_citation_fields(raw),
        search_queries=[str(q) for q in raw.get("search_queries") or []],
        data_source_index=int(raw.get("data_source_index") or 0),
        original_search_score=float(original) if isinstance(original, int | float) else None,
        filter_reason=reason if reason in ("score", "rerank") else None,
    )


class Context:
    """Citations, intent and retrieved documents of one choice, whatever shape they came in."""

    def __init__(self, raw: Any = None) -> None:
        self.citations: list[Citation] = []
        self.intent: list[str] = []
        self.retrieved: list[RetrievedDocument] = []
        self.seen = False
        if isinstance(raw, dict):
            self.merge(raw)

    def merge(self, raw: dict[str, Any]) -> None:
        """Take a modern `context` object or a legacy `{messages: [tool]}` one."""
        for message in raw.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "tool":
                self.merge_tool(message.get("content"))
        if "citations" in raw:
            self.seen = True
            self.citations = [
                Citation(**_citation_fields(c)) for c in raw["citations"] or [] if isinstance(c, dict)
            ]
        if "intent" in raw or "intents" in raw:
            self.seen = True
            self.intent = parse_intent(raw.get("intent", raw.get("intents")))
        if "all_retrieved_documents" in raw:
            docs = raw["all_retrieved_documents"] or []
            self.retrieved = [_retrieved(d) for d in docs if isinstance(d, dict)]

    def merge_tool(self, content: Any) -> None:
        """A legacy tool message: a JSON string with citations and intent (anything else carries none)."""
        try:
            decoded = json.loads(content) if isinstance(content, str) else None
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            self.merge(decoded)


def filter_results(raw: Any, source: Literal["prompt", "completion"]) -> list[ContentFilterResult]:
    """Content-filter results of the prompt or the completion, one entry per category."""
    results: list[ContentFilterResult] = []
    if not isinstance(raw, dict):
        return results
    for category, value in raw.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, dict) or "filtered" not in item:
                continue
            name = f"{category}:{item['id']}" if isinstance(value, list) and item.get("id") else category
            results.append(
                ContentFilterResult(
                    source=source,
                    category=name,
                    filtered=bool(item.get("filtered")),
                    severity=item.get("severity"),
                    detected=item.get("detected"),
                )
            )
    return results


def prompt_filter_results(body: dict[str, Any]) -> list[ContentFilterResult]:
    entries = body.get("prompt_filter_results") or body.get("prompt_annotations") or []
    return [
        r
        for e in entries
        if isinstance(e, dict)
        for r in filter_results(e.get("content_filter_results"), "prompt")
    ]


def filtered_categories(results: list[ContentFilterResult]) -> dict[str, str | bool]:
    """The categories that blocked: category -> severity, or True when only "detected" is known."""
    return {r.category: r.severity or True for r in results if r.filtered}


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        total_tokens=int(raw.get("total_tokens") or 0),
    )


def _choice_answer(choice: dict[str, Any], usage: Usage | None, prompt: list[ContentFilterResult]) -> Answer:
    context = Context()
    content = ""
    if isinstance(choice.get("messages"), list):  # 2023-06-01-preview
        for message in choice["messages"]:
            if message.get("role") == "tool":
                context.merge_tool(message.get("content"))
            elif message.get("role") == "assistant":
                content = message.get("content") or ""
    else:
        message = choice.get("message") or {}
        content = message.get("content") or ""
        if isinstance(message.get("context"), dict):
            context.merge(message["context"])
    return Answer(
        content=content,
        citations=context.citations,
        intent=context.intent,
        finish_reason=choice.get("finish_reason"),
        usage=usage,
        content_filter=prompt + filter_results(choice.get("content_filter_results"), "completion"),
        all_retrieved_documents=context.retrieved,
    )


@contextmanager
def _unexpected_shape() -> Iterator[None]:
    """A response in a shape no version produces is the upstream's failure, never a crash."""
    try:
        yield
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise UpstreamUnavailable(f"Azure OpenAI's response has an unexpected shape: {exc}") from exc


def parse_completion(body: dict[str, Any]) -> Answer:
    """A whole response as an Answer; choices after the first become `alternatives`.

    A completion stopped by the content filter raises :class:`ContentFiltered` (source "completion");
    a response in an unexpected shape raises :class:`UpstreamUnavailable`.
    """
    with _unexpected_shape():
        return _parse_completion(body)


def _parse_completion(body: dict[str, Any]) -> Answer:
    choices = sorted(body.get("choices") or [], key=lambda c: int(c.get("index") or 0))
    if not choices:
        raise UpstreamUnavailable("Azure OpenAI returned a response without choices")
    usage = _usage(body.get("usage"))
    prompt = prompt_filter_results(body)
    answers = [_choice_answer(c, usage, prompt) for c in choices]
    first = answers[0]
    if first.finish_reason == "content_filter":
        completion = [r for r in first.content_filter if r.source == "completion"]
        raise ContentFiltered("completion", filtered_categories(completion))
    first.alternatives = answers[1:]
    return first


_PARTIAL_MARKER = re.compile(r"\[(?:d(?:o(?:c\d*)?)?)?$")


class MarkerGuard:
    """Holds back the tail of streamed text that could still become a `[docN]` marker."""

    def __init__(self) -> None:
        self._pending = ""

    def push(self, text: str) -> str:
        text = self._pending + text
        match = _PARTIAL_MARKER.search(text)
        cut = match.start() if match else len(text)
        self._pending = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text


class StreamDecoder:
    """Turns parsed SSE chunks (any dialect) into :class:`AnswerDelta` values for choice 0."""

    def __init__(self) -> None:
        self._guard = MarkerGuard()
        self._context = Context()
        self._context_sent = False
        self._tool_text: list[str] | None = None  # 2023-06: tool content being received
        self.finish_reason: str | None = None
        self._completion_filter: list[ContentFilterResult] = []

    def feed(self, chunk: dict[str, Any]) -> list[AnswerDelta]:
        with _unexpected_shape():
            return self._feed(chunk)

    def _feed(self, chunk: dict[str, Any]) -> list[AnswerDelta]:
        out: list[AnswerDelta] = []
        prompt = prompt_filter_results(chunk)
        usage = _usage(chunk.get("usage"))
        if prompt or usage:
            out.append(AnswerDelta(usage=usage, content_filter=prompt or None))
        for choice in chunk.get("choices") or []:
            if int(choice.get("index") or 0) != 0:
                continue
            out += self._choice(choice)
        return out

    def _choice(self, choice: dict[str, Any]) -> list[AnswerDelta]:
        text = ""
        deltas = [m.get("delta") or {} for m in choice.get("messages") or []]  # 2023-06
        if "delta" in choice:
            deltas.append(choice.get("delta") or {})
        for delta in deltas:
            text += self._delta(delta)
        out: list[AnswerDelta] = []
        context_now = self._context.seen and not self._context_sent
        if context_now:
            self._context_sent = True
            out.append(AnswerDelta(citations=self._context.citations, intent=self._context.intent))
        safe = self._guard.push(text) if text else ""
        if safe:
            out.append(AnswerDelta(content=safe))
        filtered = filter_results(choice.get("content_filter_results"), "completion")
        self._completion_filter += filtered
        reason = choice.get("finish_reason") or ("stop" if choice.get("end_turn") is True else None)
        if reason:
            self.finish_reason = reason
            rest = self._guard.flush()
            if reason == "content_filter":
                raise ContentFiltered("completion", filtered_categories(self._completion_filter))
            out.append(AnswerDelta(content=rest, finish_reason=reason, content_filter=filtered or None))
        elif filtered:
            out.append(AnswerDelta(content_filter=filtered))
        return out

    def _delta(self, delta: dict[str, Any]) -> str:
        role = delta.get("role")
        if isinstance(delta.get("context"), dict):
            self._context.merge(delta["context"])
            self._context.seen = True
        if role == "tool":
            self._tool_text = []
        elif role is not None and self._tool_text is not None:
            self._end_tool()
        content = delta.get("content")
        if not isinstance(content, str):
            return ""
        if self._tool_text is not None:
            self._tool_text.append(content)
            return ""
        return content

    def _end_tool(self) -> None:
        if self._tool_text is not None:
            self._context.merge_tool("".join(self._tool_text))
            self._context.seen = True
            self._tool_text = None

    def finish(self) -> list[AnswerDelta]:
        """What is still held back once the stream has ended."""
        self._end_tool()
        out: list[AnswerDelta] = []
        if self._context.seen and not self._context_sent:
            self._context_sent = True
            out.append(AnswerDelta(citations=self._context.citations, intent=self._context.intent))
        rest = self._guard.flush()
        if rest:
            out.append(AnswerDelta(content=rest))
        return out
