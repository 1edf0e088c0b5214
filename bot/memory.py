"""Per-thread memory over the state seam (`bot.state`): create-if-absent, then compare-and-swap on eTags.

One document per thread holds its history (capped by a token budget and at ten exchanges), the
ids of the activities already answered (a redelivered activity is not answered twice) and the recent
answers with what feedback needs (question, answer, citations, intent), keyed by the id the channel
gave the reply.
A document is written only after a turn succeeded, so a failed turn leaves the history as it was.
Replicas sharing a store order a thread's turns optimistically: a write that lost the race (`Conflict`)
re-reads, and re-applies the turn unless the winner already recorded its activity.

Every turn rewrites its thread's document, so writing it is kept cheap: stored turns and answers never
change and serialize once (the document is joined from their cached JSON), and tokens are counted only
when a free upper bound says the budget could be exceeded.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple, Self

from pydantic import BaseModel, Field

from bot import json_text
from bot.state import Conflict, StateStore
from rag.contract import Citation, Turn
from rag.tokens import count_tokens, token_bound

STORED_CITATION_CHARS = 300
"""Citations are kept for feedback, not for answering: a short excerpt is enough."""
WRITE_ATTEMPTS = 8
"""Conflicts in a row before a turn gives up (each means another replica wrote this thread meanwhile)."""
RETRY_PAUSE_S = 0.005
"""Up to this (times the attempt, jittered) between attempts, so racing replicas fall out of step."""
MAX_TURNS = 20
"""Besides the token budget, at most ten exchanges are kept: older ones rarely help the next answer,
and every turn rewrites the thread's document."""


class _Fragment(BaseModel):
    """A piece of the thread document that serializes itself once: a stored turn or answer never
    changes, so each turn's write joins cached JSON instead of re-encoding the whole thread."""

    @cached_property
    def json_fragment(self) -> str:
        return self.model_dump_json()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        for name in _CACHED:  # the copy may differ: it computes these anew
            copy.__dict__.pop(name, None)
        return copy


class StoredTurn(_Fragment):
    turn: Turn
    tokens: int | None = Field(
        default=None, ge=0, description="exact count, or None while a free upper bound keeps within budget"
    )

    @classmethod
    def of(cls, turn: Turn) -> StoredTurn:
        counted = token_bound(turn.content) is None
        return cls(turn=turn, tokens=count_tokens(turn.content) if counted else None)

    @cached_property
    def most_tokens(self) -> int:
        """Its token count, or a bound on it that costs nothing to compute."""
        if self.tokens is not None:
            return self.tokens
        bound = token_bound(self.turn.content)
        return bound if bound is not None else count_tokens(self.turn.content)

    def counted(self) -> StoredTurn:
        if self.tokens is not None:
            return self
        return StoredTurn(turn=self.turn, tokens=count_tokens(self.turn.content))


_CACHED = ("json_fragment", "most_tokens")


class RatedAnswer(_Fragment):
    """An answer as sent, so feedback on it (by `replyToId`) can be stored with its content."""

    activity_id: str
    question: str
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    intent: list[str] = Field(default_factory=list)
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    refused: bool = Field(
        default=False, description="not answered from the knowledge base (kept for the hand-off, not history)"
    )


class ThreadState(BaseModel):
    turns: list[StoredTurn] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list, description="inbound activity ids already answered")
    answers: list[RatedAnswer] = Field(default_factory=list)

    def history(self) -> list[Turn]:
        return [stored.turn for stored in self.turns]

    def answer(self, activity_id: str) -> RatedAnswer | None:
        return next((a for a in reversed(self.answers) if a.activity_id == activity_id), None)

    def dump_json(self) -> str:
        """The same document as `model_dump_json()`, built from the parts' cached JSON."""
        turns = ",".join(t.json_fragment for t in self.turns)
        answers = ",".join(a.json_fragment for a in self.answers)
        seen = json_text.dumps(self.seen)
        return f'{{"turns":[{turns}],"seen":{seen},"answers":[{answers}]}}'


class Snapshot(NamedTuple):
    state: ThreadState
    etag: str | None


class ThreadMemory:
    """Loads and saves thread documents; the caller serializes turns of one thread (see `KeyedLocks`).

    Parsed states are cached by their stored JSON text: a thread whose document did not change since
    this process last read or wrote it is not parsed again (correct with other writers too, since
    the text is compared, not trusted).
    """

    def __init__(
        self,
        store: StateStore,
        history_tokens: int,
        *,
        max_seen: int = 32,
        max_answers: int = 20,
        cached_threads: int = 1000,
    ) -> None:
        self.store = store
        self.history_tokens = history_tokens
        self.max_seen = max_seen
        self.max_answers = max_answers
        self._cache: OrderedDict[str, tuple[str, ThreadState]] = OrderedDict()
        self._cached_threads = cached_threads

    async def load(self, key: str) -> Snapshot:
        stored = await self.store.read(key)
        if stored is None:
            return Snapshot(ThreadState(), None)
        text = stored.doc
        cached = self._cache.get(key)
        if cached is not None and cached[0] == text:
            state = cached[1]
        else:
            state = ThreadState.model_validate_json(text)
            self._remember(key, text, state)
        return Snapshot(state, stored.etag)

    def _remember(self, key: str, text: str, state: ThreadState) -> None:
        self._cache[key] = (text, state)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cached_threads:
            self._cache.popitem(last=False)

    async def record_turn(
        self,
        key: str,
        loaded: Snapshot,
        activity_id: str | None,
        turns: Sequence[Turn] = (),
        answer: RatedAnswer | None = None,
    ) -> None:
        """Append a finished turn to the state loaded at its start.

        On a conflict (another replica wrote meanwhile) re-read and re-apply, unless that write
        already holds this activity. `StoreUnavailable` passes through: the history stays as it was.
        """
        for attempt in range(WRITE_ATTEMPTS):
            state, etag = loaded if attempt == 0 else await self.load(key)
            if attempt and activity_id and activity_id in state.seen:
                return
            try:
                await self._write(key, self._applied(state, activity_id, turns, answer), etag)
                return
            except Conflict:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                await _pause(attempt)

    async def clear_history(self, key: str, activity_id: str | None) -> None:
        """`reset` / `new`: forget the conversation, keep what feedback and redelivery need."""
        for attempt in range(WRITE_ATTEMPTS):
            state, etag = await self.load(key)
            cleared = state.model_copy(update={"turns": []})
            try:
                await self._write(key, self._applied(cleared, activity_id, (), None), etag)
                return
            except Conflict:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                await _pause(attempt)

    def _applied(
        self,
        state: ThreadState,
        activity_id: str | None,
        turns: Sequence[Turn],
        answer: RatedAnswer | None,
    ) -> ThreadState:
        """A new state with the turn added and the caps applied (`state`, maybe cached, is not changed)."""
        stored = [*state.turns, *(StoredTurn.of(_stored(t)) for t in turns)]
        # Tokenizing costs far more than the rest of a turn's bookkeeping: count only when the free
        # bounds exceed the budget (within it, exact counts could not trim anything either).
        total, first = sum(t.most_tokens for t in stored), 0
        if total > self.history_tokens:
            stored = [t.counted() for t in stored]
            total = sum(t.most_tokens for t in stored)
        while first < len(stored) and (
            total > self.history_tokens
            or len(stored) - first > MAX_TURNS
            or stored[first].turn.role != "user"
        ):
            total -= stored[first].most_tokens
            first += 1
        seen = [*state.seen, activity_id][-self.max_seen :] if activity_id else state.seen
        answers = state.answers
        if answer is not None:
            trimmed = answer.model_copy(update={"citations": [_short(c) for c in answer.citations]})
            answers = [*answers, trimmed][-self.max_answers :]
        # Built from parts that are already valid models: nothing to validate again.
        return ThreadState.model_construct(turns=stored[first:], seen=seen, answers=answers)

    async def _write(self, key: str, state: ThreadState, etag: str | None) -> None:
        """The first write of a thread creates it (if absent), every later one swaps on the eTag."""
        text = state.dump_json()
        if etag is None:
            await self.store.create(key, text)
        else:
            await self.store.replace(key, text, etag)
        self._remember(key, text, state)


async def _pause(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, RETRY_PAUSE_S * (attempt + 1)))


def _short(citation: Citation) -> Citation:
    if len(citation.content) <= STORED_CITATION_CHARS:
        return citation
    return citation.model_copy(update={"content": citation.content[:STORED_CITATION_CHARS] + "…"})


def _stored(turn: Turn) -> Turn:
    """History keeps what answering needs (role, content, intent); citations live in `answers`."""
    return turn.model_copy(update={"citations": []}) if turn.citations else turn


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
