"""Upstream faults: the real bot app and the real On Your Data backend against a misbehaving fake Azure.

Each fault gets the user a specific reply within a bound, and the failed turn leaves the thread's
history exactly as it was: the next successful turn sends Azure only the earlier, successful turns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.activity import thread_key
from bot.app import TURNS
from bot.render.failures import UNEXPECTED, failure_text
from rag.azure.on_your_data import OnYourDataAnswerer
from rag.contract import Turn
from rag.errors import RagError, Throttled, UpstreamUnavailable
from tests.azure.azure_fake import Reply
from tests.bot.conftest import Bot, MakeBot
from tests.bot.fakes import activity
from tests.reliability.upstream import REPLY_BOUND_S, Fault, Upstream, oyd_settings

pytestmark = pytest.mark.reliability

CITATIONS = [{"content": "Open the VPN client and pick the office profile.", "title": "VPN guide"}]
ANSWER = "Open the VPN client [doc1]."


def completion(content: str = ANSWER) -> dict[str, Any]:
    return {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "context": {"citations": CITATIONS}},
            }
        ]
    }


def stream_events(pieces: list[str], *, finish: bool = True) -> list[Any]:
    first = {"choices": [{"index": 0, "delta": {"role": "assistant", "context": {"citations": CITATIONS}}}]}
    content = [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
    last = [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}] if finish else []
    return [first, *content, *last]


def ok_reply(streaming: bool) -> Reply:
    return (
        Reply(events=stream_events(["Open the VPN ", "client [doc1]."]))
        if streaming
        else Reply(body=completion())
    )


def throttled(headers: dict[str, str]) -> Reply:
    return Reply(
        status=429, body={"error": {"code": "429", "message": "Rate limit is exceeded."}}, headers=headers
    )


Scenario = Callable[[Upstream], None]


def script(*replies: Reply) -> Scenario:
    def arrange(upstream: Upstream) -> None:
        upstream.fake.reply(*replies)

    return arrange


def always(reply: Reply) -> Scenario:
    """Every request until the next success gets `reply` (the client retries within its budget)."""

    def arrange(upstream: Upstream) -> None:
        upstream.fake.respond = lambda body: reply

    return arrange


def raw(fault: Fault) -> Scenario:
    def arrange(upstream: Upstream) -> None:
        upstream.fault = fault

    return arrange


# (scenario, streaming turn?, the error whose sentence the user must read)
FAULTS: dict[str, tuple[Scenario, bool, RagError]] = {
    "429 retry-after-ms": (script(throttled({"retry-after-ms": "30000"})), False, Throttled(30)),
    "429 x-ms-retry-after-ms": (script(throttled({"x-ms-retry-after-ms": "45000"})), False, Throttled(45)),
    "429 Retry-After": (script(throttled({"Retry-After": "20"})), False, Throttled(20)),
    "429 Retry-After, streaming": (script(throttled({"Retry-After": "20"})), True, Throttled(20)),
    "500": (always(Reply(status=500, body={"error": {"message": "boom"}})), False, UpstreamUnavailable()),
    "500, streaming": (
        always(Reply(status=500, body={"error": {"message": "boom"}})),
        True,
        UpstreamUnavailable(),
    ),
    "slow first byte": (always(Reply(body=completion(), delay=2.0)), False, UpstreamUnavailable()),
    "slow first byte, streaming": (
        always(Reply(events=stream_events(["late"]), delay=2.0)),
        True,
        UpstreamUnavailable(),
    ),
    "connection reset": (raw(Fault.RESET), False, UpstreamUnavailable()),
    "connection reset, streaming": (raw(Fault.RESET), True, UpstreamUnavailable()),
    "truncated SSE": (
        script(Reply(events=stream_events(["Open the VPN "], finish=False), done=False, abort=True)),
        True,
        UpstreamUnavailable(),
    ),
    "SSE without [DONE]": (
        script(Reply(events=stream_events(["Open the VPN "], finish=False), done=False)),
        True,
        UpstreamUnavailable(),
    ),
    "malformed JSON body": (raw(Fault.NOT_JSON), False, UpstreamUnavailable()),
    "malformed JSON events": (
        script(Reply(events=[stream_events([])[0], '{"choices": [{"delta": {"content": "Open', "{}}"])),
        True,
        UpstreamUnavailable(),
    ),
    "SSE bytes not UTF-8": (raw(Fault.NOT_UTF8_SSE), True, UpstreamUnavailable()),
}


def inbound(bot: Bot, text: str, streaming: bool) -> dict[str, Any]:
    """Web Chat streams; the Emulator gets one message."""
    channel = "webchat" if streaming else "emulator"
    return activity(
        bot.service_url, text, channel=channel, conversation_id="thread-1", conversation_type=None
    )


async def history(bot: Bot, sample: dict[str, Any]) -> list[Turn]:
    memory = bot.client.app[TURNS].memory
    return (await memory.load(thread_key(sample))).state.history()


async def final_text(bot: Bot, sample: dict[str, Any], before: int) -> str:
    """The text of the message that ended the turn posted after `before` messages had arrived."""
    messages = bot.connector.messages(sample["conversation"]["id"])
    assert len(messages) == before + 1, [m.text for m in messages]
    return messages[-1].text


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_gets_a_specific_reply_and_leaves_history_unchanged(
    name: str, upstream: Upstream, make_bot: MakeBot
) -> None:
    arrange, streaming, expected = FAULTS[name]
    answerer = OnYourDataAnswerer.from_settings(oyd_settings(upstream.url))
    bot = await make_bot(answerer, user_turns_per_minute=1000)

    upstream.fake.reply(ok_reply(streaming))
    first = inbound(bot, "How do I connect to the VPN?", streaming)
    await bot.ask(first)
    before = await history(bot, first)
    assert [t.content for t in before] == ["How do I connect to the VPN?", ANSWER]

    arrange(upstream)
    failing = inbound(bot, "And from home?", streaming)
    started = time.monotonic()
    async with asyncio.timeout(REPLY_BOUND_S):
        await bot.ask(failing)
    elapsed = time.monotonic() - started
    text = await final_text(bot, failing, before=1)
    assert failure_text(expected) in text, (name, text, f"{elapsed:.1f} s")
    assert UNEXPECTED not in text
    assert await history(bot, failing) == before

    upstream.fault, upstream.fake.respond = Fault.NONE, None
    upstream.fake.script.clear()
    upstream.fake.reply(ok_reply(streaming))
    await bot.ask(inbound(bot, "Thanks, and the office?", streaming))
    sent = upstream.fake.requests[-1].body["messages"]
    said = [m["content"] for m in sent if m["role"] in ("user", "assistant")]
    assert said == ["How do I connect to the VPN?", ANSWER, "Thanks, and the office?"]
    assert len(await history(bot, failing)) == 4


async def test_a_short_retry_header_is_waited_out_and_the_turn_succeeds(
    upstream: Upstream, make_bot: MakeBot
) -> None:
    answerer = OnYourDataAnswerer.from_settings(oyd_settings(upstream.url))
    bot = await make_bot(answerer, user_turns_per_minute=1000)
    upstream.fake.reply(throttled({"retry-after-ms": "200"}), Reply(body=completion()))
    sample = inbound(bot, "How do I connect to the VPN?", streaming=False)
    await bot.ask(sample)
    assert len(upstream.fake.requests) == 2
    assert upstream.fake.requests[1].at - upstream.fake.requests[0].at >= 0.2
    assert "Open the VPN client" in await final_text(bot, sample, before=0)
    assert len(await history(bot, sample)) == 2
