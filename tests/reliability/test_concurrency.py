"""Concurrency: 100 threads x 10 turns at once against one app; every thread's history is complete and in
order, and no thread sees another's turns.

The answerer takes a little, varying time per turn so that turns of different threads interleave and
storage writes overlap, which is where lost updates and cross-thread mix-ups would show.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import pytest

from bot.activity import thread_key
from bot.app import TURNS
from rag.contract import Answer, Turn
from tests.bot.conftest import Bot, MakeBot
from tests.bot.fakes import FakeAnswerer, activity

pytestmark = pytest.mark.reliability

THREADS = 100
TURNS_PER_THREAD = 10
BOUND_S = 60.0


def echo(question: str, history: Sequence[Turn]) -> Answer:
    """Repeats the question and how many turns the thread had, so a mixed-up history shows."""
    return Answer(content=f"answer to {question!r} after {len(history)} turns")


def turn(bot: Bot, thread: int, index: int) -> dict[str, Any]:
    return activity(
        bot.service_url,
        f"t{thread} q{index}",
        channel="emulator",
        conversation_id=f"thread-{thread}",
        conversation_type=None,
        user_id=f"user-{thread % 7}",  # one user takes part in several threads
        activity_id=f"t{thread}-q{index}",
    )


async def stored(bot: Bot, thread: int) -> list[Turn]:
    memory = bot.client.app[TURNS].memory
    return (await memory.load(thread_key(turn(bot, thread, 0)))).state.history()


def expected(thread: int, turns: range) -> list[tuple[str, str]]:
    pairs = []
    for index in turns:
        question = f"t{thread} q{index}"
        pairs += [("user", question), ("assistant", f"answer to {question!r} after {2 * index} turns")]
    return pairs


async def test_100_threads_of_10_turns_keep_complete_ordered_histories(make_bot: MakeBot) -> None:
    answerer = FakeAnswerer(script=echo)
    rng = random.Random(9)
    answerer.delays = {
        f"t{t} q{i}": rng.uniform(0, 0.01) for t in range(THREADS) for i in range(TURNS_PER_THREAD)
    }
    bot = await make_bot(answerer, user_turns_per_minute=10_000, history_tokens=100_000)

    async def one_thread(thread: int) -> None:
        for index in range(TURNS_PER_THREAD):
            await bot.ask(turn(bot, thread, index))

    async with asyncio.timeout(BOUND_S):
        await asyncio.gather(*(one_thread(thread) for thread in range(THREADS)))

    assert len(answerer.calls) == THREADS * TURNS_PER_THREAD
    for thread in range(THREADS):
        history = [(t.role, t.content) for t in await stored(bot, thread)]
        assert history == expected(thread, range(TURNS_PER_THREAD)), thread
        replies = [r.text for r in bot.connector.messages(f"thread-{thread}")]
        assert len(replies) == TURNS_PER_THREAD
        assert all(f"'t{thread} q" in text for text in replies), thread


async def test_a_threads_turns_sent_all_at_once_are_serialized(make_bot: MakeBot) -> None:
    """Ten turns of one thread in flight together: each is answered with the history of those before it,
    none is lost, and a question is always followed by its own answer."""
    answerer = FakeAnswerer(script=echo, delay=0.002)
    bot = await make_bot(answerer, user_turns_per_minute=10_000, history_tokens=100_000)
    async with asyncio.timeout(BOUND_S):
        await asyncio.gather(
            *(bot.ask(turn(bot, thread, index)) for thread in range(10) for index in range(TURNS_PER_THREAD))
        )
    for thread in range(10):
        history = [(t.role, t.content) for t in await stored(bot, thread)]
        assert len(history) == 2 * TURNS_PER_THREAD
        asked = [content for role, content in history[0::2]]
        assert sorted(asked) == sorted(f"t{thread} q{i}" for i in range(TURNS_PER_THREAD))
        for position in range(0, len(history), 2):
            question = history[position][1]
            assert history[position + 1] == ("assistant", f"answer to {question!r} after {position} turns")
