"""Refused questions are kept across conversations (for `ragbot gaps`) on SQLite and in memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.refusals import list_refusals
from bot.state import STATE_FILE, StateStore
from bot.state.memory import MemoryStore
from bot.state.sqlite import SqliteStore
from rag.contract import REFUSAL, Answer, Turn
from tests.bot.conftest import MakeBot
from tests.bot.fakes import FakeAnswerer, activity, cited_answer


def refuse_payroll(question: str, history: Sequence[Turn] = ()) -> Answer:
    if "payroll" in question:
        return Answer(content=REFUSAL, intent=[f"{question} search"])
    return cited_answer(question, history)


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_refusals_are_listed_across_conversations_and_answers_are_not(
    make_bot: MakeBot, tmp_path: Path, backend: str
) -> None:
    store: StateStore | None = MemoryStore() if backend == "memory" else None
    bot = await make_bot(FakeAnswerer(script=refuse_payroll), storage=store)
    await bot.ask(activity(bot.service_url, "Where is the payroll calendar?", conversation_id="a:one"))
    await bot.ask(activity(bot.service_url, "How do I use the VPN?", conversation_id="a:one"))
    await bot.ask(
        activity(
            bot.service_url,
            "when is payroll run",
            channel="webchat",
            conversation_id="wc-2",
            conversation_type=None,
            tenant=None,
            aad_object_id=None,
            user_id="dl_7",
        )
    )
    await bot.client.close()

    reader = store if store is not None else SqliteStore(tmp_path / STATE_FILE)
    records = await list_refusals(reader)
    assert [(r.question, r.channel_id, r.conversation_id) for r in records] == [
        ("Where is the payroll calendar?", "msteams", "a:one"),
        ("when is payroll run", "webchat", "wc-2"),
    ]
    assert records[0].user_id == "aad-user-1" and records[1].user_id == "dl_7"
    assert records[0].intent == ["Where is the payroll calendar? search"]
    if isinstance(reader, SqliteStore):
        await reader.aclose()
