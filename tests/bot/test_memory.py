"""Thread memory: the stored document and the history window, against a reference that counts every token."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.memory import MAX_TURNS, RatedAnswer, StoredTurn, ThreadMemory, ThreadState
from bot.state.memory import MemoryStore
from rag.contract import Citation, Turn
from rag.tokens import count_tokens

texts = st.text(max_size=120) | st.sampled_from(["word " * 30, "한국어 질문입니다", "café au lait", "VPN?"])
exchanges = st.lists(st.tuples(texts, texts), min_size=1, max_size=14)


def reference_window(exchanges: list[tuple[str, str]], budget: int) -> list[str]:
    """What the history must hold: the newest exchanges within the budget and MAX_TURNS, starting
    with a user turn, every token counted."""
    contents = [text for exchange in exchanges for text in exchange]
    tokens = [count_tokens(text) for text in contents]
    first = 0
    while first < len(contents) and (
        sum(tokens[first:]) > budget or len(contents) - first > MAX_TURNS or first % 2 == 1
    ):
        first += 1
    return contents[first:]


@given(exchanges=exchanges, budget=st.sampled_from([0, 10, 40, 200, 2000]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_window_is_what_counting_every_token_keeps(exchanges: list[tuple[str, str]], budget: int) -> None:
    async def run() -> list[str]:
        memory = ThreadMemory(MemoryStore(), budget)
        for n, (question, answer) in enumerate(exchanges):
            snapshot = await memory.load("k")
            turns = [Turn(role="user", content=question), Turn(role="assistant", content=answer)]
            await memory.record_turn("k", snapshot, f"id-{n}", turns)
        return [turn.content for turn in (await memory.load("k")).state.history()]

    assert asyncio.run(run()) == reference_window(exchanges, budget)


@given(
    contents=st.lists(st.text(max_size=60), max_size=6),
    seen=st.lists(st.text(max_size=30), max_size=5),
    question=st.text(max_size=60),
)
@settings(max_examples=100, deadline=None)
def test_the_document_built_from_cached_parts_reads_back_the_same(
    contents: list[str], seen: list[str], question: str
) -> None:
    answer = RatedAnswer(
        activity_id="r-1", question=question, answer="a", citations=[Citation(content=question, url="u")]
    )
    answer.json_fragment  # noqa: B018 - cache it, so the copy below must not reuse it
    changed = answer.model_copy(update={"answer": question + "!"})
    state = ThreadState(
        turns=[StoredTurn(turn=Turn(role="user", content=text), tokens=len(text)) for text in contents],
        seen=seen,
        answers=[answer, changed],
    )
    assert ThreadState.model_validate_json(state.dump_json()) == state
