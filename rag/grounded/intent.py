"""The turn's intent: the standalone search queries a question means, given the thread so far.

On Your Data has its model rewrite follow-ups ("and on a Mac?") into standalone queries and returns them
as the answer's intent; the next turn sends that intent back. :class:`FollowUpRewriter` does the same
without a model, from the previous turn's intent; :class:`ChatRewriter` asks a chat model and falls back
to the deterministic rewrite when the model's reply is unusable.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Protocol

from rag.contract import Turn

log = logging.getLogger(__name__)

_LEAD = re.compile(
    r"^\s*(?:(?:and|also|so|then|but|or|ok(?:ay)?|what|how)\s+about|what\s+if|and|also|so|then|but|or|ok(?:ay)?)"
    r"\b[\s,]*",
    re.IGNORECASE,
)
_ANAPHORA = frozenset(
    "it its it's that this those these they them their there one ones same such he she him her".split()  # noqa: SIM905
)
_PREPOSITIONS = frozenset(
    "on in for with from at via using without by under over during inside outside".split()  # noqa: SIM905
)
_WORD = re.compile(r"[\w'-]+")
_CODE = re.compile(r"\b(?:0x[0-9a-f]+|[a-z]*\d[\w-]*)\b", re.IGNORECASE)
SHORT_FOLLOW_UP_WORDS = 3
"""A question of at most this many words, asked after an earlier turn, is read as a follow-up."""


def clean_query(text: str) -> str:
    """The question as a search query: one line, no surrounding punctuation or spaces."""
    return " ".join(text.split()).strip(" ?!.,;:")


def previous_intent(history: Sequence[Turn]) -> list[str]:
    """The last assistant turn's intent, else the last user question, else nothing."""
    for turn in reversed(history):
        if turn.role == "assistant" and turn.intent:
            return [q for q in turn.intent if q.strip()]
        if turn.role == "user" and turn.content.strip():
            return [clean_query(turn.content)]
    return []


def is_follow_up(question: str) -> bool:
    """True when the question leans on the previous turn: a lead-in ("and ...", "what about ..."),
    a pronoun standing for something said before, or only a few words."""
    if _LEAD.match(question):
        return True
    words = [w.lower() for w in _WORD.findall(question)]
    return len(words) <= SHORT_FOLLOW_UP_WORDS or any(w in _ANAPHORA for w in words)


def rewrite_follow_up(previous: str, question: str) -> str:
    """One standalone query from the previous query and a follow-up.

    A follow-up that starts with a preposition replaces the previous query's matching trailing phrase
    ("connect to the VPN on Windows" + "and on a Mac?" -> "connect to the VPN on a Mac"); one that names a
    code or number replaces the previous codes ("VPN error 809" + "and 691?" -> "VPN error 691");
    anything else is appended to the previous query, so the search sees both.
    """
    rest = clean_query(_LEAD.sub("", _LEAD.sub("", question, count=1), count=1)) or clean_query(question)
    words = rest.split()
    first = words[0].lower() if words else ""
    if first in _PREPOSITIONS:
        replaced = _replace_trailing_phrase(previous, first, rest)
        if replaced:
            return replaced
    new_codes = _CODE.findall(rest)
    old_codes = _CODE.findall(previous)
    if new_codes and old_codes and len(words) <= SHORT_FOLLOW_UP_WORDS + 1:
        head = previous
        for old in old_codes[1:]:
            head = head.replace(old, "", 1)
        head = head.replace(old_codes[0], " ".join(new_codes), 1)
        return " ".join(head.split())
    if rest.lower() in previous.lower():
        return previous
    return f"{previous} {rest}"


def _replace_trailing_phrase(previous: str, preposition: str, phrase: str) -> str | None:
    tokens = previous.split()
    lowered = [t.lower() for t in tokens]
    same = [i for i, t in enumerate(lowered) if t == preposition]
    anywhere = [i for i, t in enumerate(lowered) if t in _PREPOSITIONS and i > 0]
    cut = same[-1] if same else (anywhere[-1] if anywhere else None)
    if cut is None or cut == 0:
        return None
    return " ".join([*tokens[:cut], phrase])


def deterministic_queries(history: Sequence[Turn], question: str) -> list[str]:
    """The intent without a model: the question itself, or each previous query rewritten by the follow-up."""
    cleaned = clean_query(question)
    before = previous_intent(history)
    if not before or not is_follow_up(question):
        return [cleaned] if cleaned else []
    queries: list[str] = []
    for previous in before:
        query = rewrite_follow_up(previous, question)
        if query not in queries:
            queries.append(query)
    return queries


class FollowUpRewriter:
    """The deterministic rewriter (no model): see :func:`deterministic_queries`."""

    async def rewrite(self, history: Sequence[Turn], question: str) -> list[str]:
        return deterministic_queries(history, question)


class TextCompleter(Protocol):
    """A chat model reduced to what the rewriter needs: messages in, text out."""

    async def complete(self, messages: list[dict[str, str]]) -> str: ...


REWRITE_INSTRUCTIONS = (
    "You turn the user's latest message into search queries for a company knowledge base. "
    "Use the conversation to resolve follow-ups and pronouns, so every query stands on its own. "
    "Reply with a JSON array of 1 to {limit} short search queries and nothing else."
)


class ChatRewriter:
    """On Your Data's model-driven rewrite: a chat model writes the standalone queries.

    The first turn needs no rewrite, so the model is only asked when there is history. A reply that is not
    a JSON list of strings falls back to the deterministic rewrite rather than failing the turn.
    """

    def __init__(self, model: TextCompleter, *, max_queries: int = 3, history_turns: int = 6) -> None:
        self._model = model
        self._limit = max_queries
        self._history_turns = history_turns

    async def rewrite(self, history: Sequence[Turn], question: str) -> list[str]:
        if not history:
            return deterministic_queries(history, question)
        messages = [{"role": "system", "content": REWRITE_INSTRUCTIONS.format(limit=self._limit)}]
        for turn in history[-self._history_turns :]:
            content = turn.content
            if turn.role == "assistant" and turn.intent:
                content += f"\n(searched for: {json.dumps(turn.intent, ensure_ascii=False)})"
            messages.append({"role": turn.role, "content": content})
        messages.append({"role": "user", "content": question})
        reply = await self._model.complete(messages)
        queries = parse_queries(reply)[: self._limit]
        if not queries:
            log.warning("query rewrite reply was not a JSON list of queries; using the deterministic rewrite")
            return deterministic_queries(history, question)
        return queries


def parse_queries(reply: str) -> list[str]:
    """The strings of the first JSON array in a model reply (models like to wrap it in prose or fences)."""
    start, end = reply.find("["), reply.rfind("]")
    if start < 0 or end <= start:
        return []
    try:
        value = json.loads(reply[start : end + 1])
    except json.JSONDecodeError:
        return []
    if not isinstance(value, list):
        return []
    queries: list[str] = []
    for item in value:
        if isinstance(item, str) and clean_query(item) and clean_query(item) not in queries:
            queries.append(clean_query(item))
    return queries
