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
    question_parts,
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


def exchange(question: str, answer: str, intent: str) -> list[Turn]:
    return [Turn(role="user", content=question), Turn(role="assistant", content=answer, intent=[intent])]


PASSWORD = exchange(
    "How do I reset my password?",
    "1. Go to https://portal.contoso.example/password [doc1].\n2. Enter your email address [doc1].",
    "How do I reset my password",
)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what about sick leave", ["sick leave"]),  # a new topic: not "How do I reset my password sick leave"
        ("and how do I book a meeting room?", ["how do I book a meeting room"]),
        ("How many days of annual leave do I get?", ["How many days of annual leave do I get"]),
        ("Is there a limit on hotel costs?", ["Is there a limit on hotel costs"]),  # "there" points nowhere
        ("what about the canteen menu?", ["the canteen menu"]),
    ],
)
def test_a_topic_change_or_a_whole_question_stands_alone(question: str, expected: list[str]) -> None:
    assert deterministic_queries(PASSWORD, question) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("and on a Mac?", "How do I reset my password on a Mac"),
        ("what if I have no phone?", "How do I reset my password I have no phone"),
        ("how long does it take?", "How do I reset my password how long does it take"),
        ("what about the email address", "How do I reset my password the email address"),  # said before
        ("and the portal instead?", "How do I reset my password the portal instead"),
    ],
)
def test_a_follow_up_that_leans_on_the_topic_carries_it(question: str, expected: str) -> None:
    assert deterministic_queries(PASSWORD, question) == [expected]


def test_a_multi_part_question_is_one_query_per_part() -> None:
    question = "How do I reset my password and how many days of annual leave do I get?"
    assert question_parts(question) == [
        "How do I reset my password",
        "how many days of annual leave do I get",
    ]
    assert deterministic_queries([], question) == question_parts(question)
    assert question_parts("How do I connect to the VPN on Windows? Also, how do I add a printer?") == [
        "How do I connect to the VPN on Windows",
        "how do I add a printer",
    ]
    assert question_parts("salt and pepper, and why?") == ["salt and pepper, and why"]
    assert question_parts("What if the SSTP one doesn't work either?") == [
        "What if the SSTP one doesn't work either"
    ]
