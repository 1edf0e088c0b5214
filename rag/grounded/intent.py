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
from rag.grounded.text import content_words

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
"""A question of at most this many words, asked after an earlier turn, may be a follow-up."""
MIN_STANDALONE_WORDS = 2
"""A question ("how do I book a meeting room") with this many content words stands on its own."""
_CONDITION = re.compile(r"^\s*(?:(?:and|so|but|ok(?:ay)?)[\s,]+)?what\s+if\b", re.IGNORECASE)
_KEEPS_TOPIC = frozenset({"instead", "too", "either", "else", "also"})
_BE = frozenset({"is", "are", "was", "were", "be", "any"})
_ASKS = re.compile(
    r"^\s*(?:how|what|where|when|who|which|why|can|could|do|does|is|are|should|will|would|may)\b", re.I
)


def clean_query(text: str) -> str:
    """The question as a search query: one line, no surrounding punctuation or spaces."""
    return " ".join(text.split()).strip(" ?!.,;:")


_ASKING = r"(?:how|what|where|when|who|which|why|can|could|do|does|is|are|should|will|would|may)\b"
_PART_BREAK = re.compile(
    rf"\?\s+(?:(?:and|also|plus)\b[\s,]*)?|;\s*|,?\s+(?:and|also|plus)[\s,]+(?={_ASKING})"
    rf"|\.\s+(?:also\b[\s,]*)?(?={_ASKING})",
    re.IGNORECASE,
)
_ALSO = re.compile(r"^\s*(?:and|also|plus)\b[\s,]*", re.IGNORECASE)
MIN_PART_WORDS = 3
"""A piece shorter than this is not a question of its own ("..., and why?")."""


def question_parts(question: str) -> list[str]:
    """The questions a message asks, in order: "How do I reset my password and how many days of leave do
    I get?" is two; a question with one topic is one part. Each part is cleaned like a query."""
    pieces = [clean_query(_ALSO.sub("", piece)) for piece in _PART_BREAK.split(question)]
    pieces = [piece for piece in pieces if piece]
    if len(pieces) < 2 or any(len(_WORD.findall(piece)) < MIN_PART_WORDS for piece in pieces):
        return [clean_query(question)] if clean_query(question) else []
    return pieces


def previous_intent(history: Sequence[Turn]) -> list[str]:
    """The last assistant turn's intent, else the last user question, else nothing."""
    for turn in reversed(history):
        if turn.role == "assistant" and turn.intent:
            return [q for q in turn.intent if q.strip()]
        if turn.role == "user" and turn.content.strip():
            return [clean_query(turn.content)]
    return []


def is_follow_up(question: str) -> bool:
    """True when the question may lean on the previous turn: a lead-in ("and ...", "what about ..."),
    a pronoun standing for something said before, or only a few words."""
    if _LEAD.match(question):
        return True
    words = _words(question)
    return len(words) <= SHORT_FOLLOW_UP_WORDS or _refers_back(words)


def stands_alone(question: str, previous: str) -> bool:
    """A question that may be a follow-up still stands alone when it changes the topic: "what about sick
    leave" after a password answer names something the previous turn (`previous`: its queries and
    answer) never mentioned, and "and how do I book a meeting room?" is a whole question of its own.
    A pronoun, a phrase starting with a preposition ("and on a Mac?"), a new code ("and 691?"),
    "what if ..." or "... instead" keeps the previous topic."""
    words = _words(question)
    if _refers_back(words) or _CONDITION.match(question) or _KEEPS_TOPIC & set(words):
        return False
    rest = clean_query(_LEAD.sub("", _LEAD.sub("", question, count=1), count=1))
    rest_words = _words(rest)
    if not rest_words or rest_words[0] in _PREPOSITIONS or _CODE.fullmatch(rest.strip()):
        return False
    if _ASKS.match(rest) and len(content_words(rest)) >= MIN_STANDALONE_WORDS:
        return True
    new = content_words(rest)
    said = set(content_words(previous))
    return bool(new) and 2 * sum(w not in said for w in new) >= len(new)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _refers_back(words: list[str]) -> bool:
    """A pronoun standing for something said before; "is there" / "there are" point nowhere."""
    for i, word in enumerate(words):
        if word == "there":
            neighbours = {words[i - 1] if i else "", words[i + 1] if i + 1 < len(words) else ""}
            if neighbours & _BE:
                continue
        if word in _ANAPHORA:
            return True
    return False


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


def previous_turn_text(history: Sequence[Turn]) -> str:
    """What the previous exchange talked about: its queries (or question) and its answer."""
    answer = next((t.content for t in reversed(history) if t.role == "assistant"), "")
    return " ".join([*previous_intent(history), answer])


def deterministic_queries(history: Sequence[Turn], question: str) -> list[str]:
    """The intent without a model: one query per part of the question; a part that leans on the previous
    turn is each previous query rewritten by it (see :func:`rewrite_follow_up`)."""
    parts = question_parts(question)
    before = previous_intent(history)
    if not before or not parts:
        return parts
    if len(parts) > 1:
        return [rewrite_follow_up(before[0], p) if _refers_back(_words(p)) else p for p in parts]
    if not is_follow_up(question) or stands_alone(question, previous_turn_text(history)):
        return [clean_query(_LEAD.sub("", question, count=1)) or parts[0]]
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
