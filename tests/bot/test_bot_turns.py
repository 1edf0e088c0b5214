"""Turn behaviour over the real app: commands, thread memory, failures, who may ask, concurrency."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from bot.app import AUTH_OFF_WARNING
from bot.memory import MAX_TURNS, ThreadMemory
from bot.state.memory import MemoryStore
from bot.state.sqlite import SqliteStore
from rag.contract import REFUSAL, Answer, Turn
from rag.errors import ContentFiltered, Throttled, UpstreamUnavailable
from tests.bot.conftest import Bot, MakeBot
from tests.bot.fakes import TENANT, FakeAnswerer, activity, cited_answer

CONVERSATION = "a:personal-1"


def last_text(bot: Bot, conversation: str = CONVERSATION) -> str:
    return bot.connector.messages(conversation)[-1].text


async def test_memory_carries_the_thread_and_its_intent(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.ask(activity(bot.service_url, "vpn"))
    await bot.ask(activity(bot.service_url, "and on mobile?"))
    history = bot.answerer.calls[1].history
    assert [t.role for t in history] == ["user", "assistant"]
    assert history[0].content == "vpn"
    assert history[1].intent == ["vpn how to"], "the intent is carried into the next turn"
    assert "[doc1]" in history[1].content
    await bot.ask(activity(bot.service_url, "other chat", conversation_id="a:personal-2"))
    assert bot.answerer.calls[2].history == []


async def test_memory_survives_a_restart(make_bot: MakeBot) -> None:
    first = await make_bot()
    await first.ask(activity(first.service_url, "vpn"))
    await first.client.close()  # closes the SQLite store
    second = await make_bot()
    await second.ask(activity(second.service_url, "again"))
    assert [t.content for t in second.answerer.calls[0].history][:1] == ["vpn"]


async def test_intent_line_can_be_turned_off(make_bot: MakeBot) -> None:
    shown = await make_bot(streaming=False)
    await shown.ask(activity(shown.service_url, "vpn"))
    assert "Searched for: vpn how to" in last_text(shown)
    shown.connector.received.clear()
    hidden = await make_bot(streaming=False, show_intent=False, storage=MemoryStore())
    await hidden.ask(activity(hidden.service_url, "vpn", conversation_id="a:other"))
    assert "Searched for" not in last_text(hidden, "a:other")


@pytest.mark.parametrize("command", ["reset", "new", "  New ", "/reset"])
async def test_reset_clears_this_thread_only(make_bot: MakeBot, command: str) -> None:
    bot = await make_bot()
    await bot.ask(activity(bot.service_url, "vpn"))
    await bot.ask(activity(bot.service_url, "printer", conversation_id="a:personal-2"))
    await bot.ask(activity(bot.service_url, command))
    assert "forgotten" in last_text(bot)
    await bot.ask(activity(bot.service_url, "after reset"))
    await bot.ask(activity(bot.service_url, "still there", conversation_id="a:personal-2"))
    assert bot.answerer.calls[2].history == []
    assert bot.answerer.calls[3].history[0].content == "printer"


async def test_help_does_not_ask_the_backend(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.ask(activity(bot.service_url, "HELP"))
    assert "reset" in last_text(bot) and bot.answerer.calls == []


def failing(error: Exception) -> FakeAnswerer:
    def script(question: str, history: Sequence[Turn]) -> Answer | Exception:
        return error if question == "fail" else cited_answer(question)

    return FakeAnswerer(script=script, pieces=3, piece_delay=0.01)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Throttled(7.2), "try again in 8 s"),
        (ContentFiltered("prompt", {"violence": "high"}), "content filter"),
        (UpstreamUnavailable("down"), "unavailable"),
        (RuntimeError("bug"), "went wrong"),
    ],
)
@pytest.mark.parametrize("streaming", [True, False])
async def test_failures_answer_kindly_and_leave_history_unchanged(
    make_bot: MakeBot, error: Exception, expected: str, streaming: bool
) -> None:
    bot = await make_bot(failing(error), streaming=streaming)
    await bot.ask(activity(bot.service_url, "vpn"))
    await bot.ask(activity(bot.service_url, "fail"))
    assert expected in last_text(bot)
    await bot.ask(activity(bot.service_url, "next"))
    assert [t.content for t in bot.answerer.calls[-1].history][:1] == ["vpn"]
    assert len(bot.answerer.calls[-1].history) == 2


async def test_refusal_is_friendly_and_not_remembered(make_bot: MakeBot) -> None:
    def script(question: str, history: Sequence[Turn]) -> Answer:
        return Answer(content=REFUSAL) if question == "weather" else cited_answer(question)

    bot = await make_bot(FakeAnswerer(script=script))
    await bot.ask(activity(bot.service_url, "weather"))
    assert "couldn't find that in the knowledge base" in last_text(bot)
    await bot.ask(activity(bot.service_url, "vpn"))
    assert bot.answerer.calls[-1].history == []


async def test_other_tenants_are_refused_without_retrieval(make_bot: MakeBot) -> None:
    bot = await make_bot(allowed_tenants=f"{TENANT},tenant-2")
    await bot.ask(activity(bot.service_url, "vpn", tenant="tenant-evil"))
    assert "own organisation" in last_text(bot) and bot.answerer.calls == []
    await bot.ask(activity(bot.service_url, "vpn", tenant=None, channel="directline", conversation_type=None))
    assert bot.answerer.calls == [], "no tenant at all is not on the list either"
    await bot.ask(activity(bot.service_url, "vpn", tenant="TENANT-2"))
    assert len(bot.answerer.calls) == 1


async def test_without_inbound_auth_an_activity_names_no_entra_user(make_bot: MakeBot) -> None:
    """Anyone may post to an auth-off bot: its `aadObjectId` is the client's word, so it opens nothing
    (tests/bot/test_identity_http.py has the validated case)."""
    bot = await make_bot()
    ann = "0c6f3a52-7d1e-4f0e-9a57-3f4a1c2b9d10"
    await bot.ask(activity(bot.service_url, "vpn", user_id="29:ann", aad_object_id=ann))
    user = bot.answerer.calls[0].user
    assert user is not None
    assert (user.tenant_id, user.aad_object_id, user.user_id, user.groups) == (TENANT, None, "29:ann", [])


async def test_floods_are_answered_politely(make_bot: MakeBot) -> None:
    bot = await make_bot(user_turns_per_minute=2)
    for n in range(4):
        await bot.ask(activity(bot.service_url, f"question {n}"))
    assert len(bot.answerer.calls) == 2
    assert "Please wait" in last_text(bot)
    await bot.ask(activity(bot.service_url, "from someone else", user_id="29:bob", aad_object_id="aad-bob"))
    assert len(bot.answerer.calls) == 3


async def test_a_redelivered_activity_is_answered_once(make_bot: MakeBot) -> None:
    bot = await make_bot(streaming=False)
    inbound = activity(bot.service_url, "vpn")
    await bot.ask(inbound)
    await bot.ask(inbound)
    assert len(bot.answerer.calls) == 1
    assert len(bot.connector.messages(CONVERSATION)) == 1


async def test_threads_run_concurrently_and_each_keeps_its_order(make_bot: MakeBot) -> None:
    answerer = FakeAnswerer(delays={"slow 1": 0.4, "slow 2": 0.0})
    bot = await make_bot(answerer, streaming=False)
    slow = [activity(bot.service_url, f"slow {n}", conversation_id="a:slow") for n in (1, 2)]
    fast = [activity(bot.service_url, f"fast {n}", conversation_id="a:fast") for n in (1, 2, 3)]

    async def post_in_order(items: list[dict[str, object]]) -> None:
        # The second post starts while the first one is still being answered.
        tasks = []
        for item in items:
            tasks.append(asyncio.create_task(bot.ask(item)))
            await asyncio.sleep(0.02)
        await asyncio.gather(*tasks)

    await asyncio.gather(post_in_order(slow), post_in_order(fast))
    slow_texts = [r.text for r in bot.connector.messages("a:slow")]
    fast_texts = [r.text for r in bot.connector.messages("a:fast")]
    assert [t.split(":")[0] for t in slow_texts] == ["About slow 1", "About slow 2"]
    assert [t.split(":")[0] for t in fast_texts] == ["About fast 1", "About fast 2", "About fast 3"]
    last_fast = bot.connector.messages("a:fast")[-1].at
    first_slow = bot.connector.messages("a:slow")[0].at
    assert last_fast < first_slow, "the fast thread did not wait for the slow one"
    slow_calls = [c for c in bot.answerer.calls if c.question.startswith("slow")]
    assert [c.question for c in slow_calls] == ["slow 1", "slow 2"]
    assert [t.content for t in slow_calls[1].history][:1] == ["slow 1"], "turn 2 saw turn 1"


async def test_history_is_capped_by_the_token_budget(tmp_path: object) -> None:
    store = SqliteStore(f"{tmp_path}/state.sqlite")
    memory = ThreadMemory(store, history_tokens=40)
    key = "msteams|t|a:1"
    for n in range(6):
        snapshot = await memory.load(key)
        turns = [
            Turn(role="user", content=f"question number {n}"),
            Turn(role="assistant", content="word " * 8),
        ]
        await memory.record_turn(key, snapshot, f"id-{n}", turns)
    state = (await memory.load(key)).state
    assert sum(t.most_tokens for t in state.turns) <= 40
    assert state.turns[0].turn.role == "user"
    assert state.turns[-2].turn.content == "question number 5", "the newest turns are kept"
    assert len(state.turns) < 12


async def test_history_keeps_at_most_ten_exchanges(tmp_path: object) -> None:
    store = SqliteStore(f"{tmp_path}/state.sqlite")
    memory = ThreadMemory(store, history_tokens=100_000)
    key = "webchat|-|c"
    for n in range(MAX_TURNS):
        snapshot = await memory.load(key)
        await memory.record_turn(
            key,
            snapshot,
            f"id-{n}",
            [Turn(role="user", content=f"q{n}"), Turn(role="assistant", content=f"a{n}")],
        )
    turns = (await memory.load(key)).state.history()
    assert (
        len(turns) == MAX_TURNS
        and turns[0].content == f"q{MAX_TURNS // 2}"
        and turns[-1].content == f"a{MAX_TURNS - 1}"
    )
    await store.aclose()
    await store.aclose()


async def test_start_up_warns_loudly_when_auth_is_off(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        await make_bot()
    assert AUTH_OFF_WARNING in caplog.text
