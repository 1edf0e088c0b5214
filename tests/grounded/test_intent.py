"""Intent: the deterministic follow-up rewrite and the model-driven rewrite with its fallback."""

from __future__ import annotations

import pytest

from rag.contract import Turn
from rag.grounded.intent import (
    ChatRewriter,
    FollowUpRewriter,
    deterministic_queries,
    is_follow_up,
    parse_queries,
    previous_intent,
)


def thread(*intents: str) -> list[Turn]:
    turns: list[Turn] = []
    for intent in intents:
        turns += [Turn(role="user", content="..."), Turn(role="assistant", content="...", intent=[intent])]
    return turns


@pytest.mark.parametrize(
    ("previous", "question", "expected"),
    [
        ("How do I connect to the VPN on Windows", "and on a Mac?", "How do I connect to the VPN on a Mac"),
        ("expense limit for hotels in London", "what about in Paris?", "expense limit for hotels in Paris"),
        ("what does VPN error 809 mean", "and 691?", "what does VPN error 691 mean"),
        (
            "how do I request a new laptop",
            "how long does it take?",
            "how do I request a new laptop how long does it take",
        ),
        (
            "annual leave entitlement",
            "and for part-time staff",
            "annual leave entitlement for part-time staff",
        ),
        ("per diem for a night in Manchester", "and what about in Berlin?", "per diem for a night in Berlin"),
    ],
)
def test_follow_ups_become_standalone(previous: str, question: str, expected: str) -> None:
    assert deterministic_queries(thread(previous), question) == [expected]


def test_a_new_question_is_not_rewritten() -> None:
    history = thread("connect to the VPN on Windows")
    assert not is_follow_up("How do I set up Authenticator on my new phone?")
    assert deterministic_queries(history, "How do I set up Authenticator on my new phone?") == [
        "How do I set up Authenticator on my new phone"
    ]


def test_first_turn_is_the_question_itself() -> None:
    assert deterministic_queries([], "  What is the VPN?  ") == ["What is the VPN"]
    assert deterministic_queries([], " ? ") == []


def test_the_latest_intent_wins_and_each_query_is_rewritten() -> None:
    latest = Turn(role="assistant", content="y", intent=["printer on Windows", "add printer Windows 11"])
    history = [*thread("old topic"), Turn(role="user", content="x"), latest]
    assert deterministic_queries(history, "and on a Mac?") == [
        "printer on a Mac",
        "add printer Windows 11 on a Mac",
    ]


def test_previous_user_question_stands_in_for_a_missing_intent() -> None:
    history = [
        Turn(role="user", content="How do I book a room in Manchester?"),
        Turn(role="assistant", content=""),
    ]
    assert previous_intent(history) == ["How do I book a room in Manchester"]
    assert deterministic_queries(history, "and in London?") == ["How do I book a room in London"]


async def test_follow_up_rewriter_is_the_deterministic_rewrite() -> None:
    assert await FollowUpRewriter().rewrite(thread("vpn on Windows"), "and on a Mac?") == ["vpn on a Mac"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('["dog care", "dog food"]', ["dog care", "dog food"]),
        ('Sure:\n```json\n["reset password"]\n```', ["reset password"]),
        ('[1, " vpn mac? ", "vpn mac", ""]', ["vpn mac"]),
        ("no list here", []),
        ("[not json]", []),
        ('{"queries": 1}', []),
    ],
)
def test_parse_queries(reply: str, expected: list[str]) -> None:
    assert parse_queries(reply) == expected


class ScriptedModel:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []

    async def complete(self, messages: list[dict[str, str]]) -> str:
        self.calls.append(messages)
        return self.reply


async def test_chat_rewriter_sends_history_with_intent_and_returns_the_models_queries() -> None:
    model = ScriptedModel('["dog care"]')
    history = [
        Turn(role="user", content="how to care for a cat?"),
        Turn(role="assistant", content="...", intent=["cat care"]),
    ]
    assert await ChatRewriter(model).rewrite(history, "how about dog?") == ["dog care"]
    (messages,) = model.calls
    assert messages[0]["role"] == "system" and "JSON array" in messages[0]["content"]
    assert '"cat care"' in messages[2]["content"]
    assert messages[-1] == {"role": "user", "content": "how about dog?"}


async def test_chat_rewriter_falls_back_and_skips_the_model_on_the_first_turn() -> None:
    model = ScriptedModel("I cannot do that")
    rewriter = ChatRewriter(model, max_queries=2)
    assert await rewriter.rewrite(thread("vpn on Windows"), "and on a Mac?") == ["vpn on a Mac"]
    assert await rewriter.rewrite([], "vpn?") == ["vpn"]
    assert len(model.calls) == 1
    model.reply = '["a", "b", "c"]'
    assert await rewriter.rewrite(thread("x"), "y") == ["a", "b"]
