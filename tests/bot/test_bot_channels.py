"""Web Chat, Direct Line, the Emulator and `expectReplies` over the real app on loopback."""

from __future__ import annotations

import itertools
from typing import Any

from tests.bot.conftest import SLOW, TYPING_DELAY, TYPING_PERIOD, MakeBot
from tests.bot.fakes import BOT_ID, FakeAnswerer, activity


async def test_webchat_stream_fields_travel_in_channel_data(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(pieces=6, piece_delay=0.03))
    inbound = activity(
        bot.service_url,
        "vpn",
        channel="directline",
        conversation_id="dl-conv-1",
        conversation_type=None,
        tenant=None,
    )
    await bot.ask(inbound)
    sent = bot.connector.in_conversation("dl-conv-1")
    kinds = [r.activity["channelData"].get("streamType") for r in sent]
    assert kinds[-1] == "final" and set(kinds[:-1]) == {"streaming"}
    # The status comes as the stream's first text: Web Chat shows informative updates only as a faint pill.
    assert sent[0].text == "Searching the knowledge base…"
    sequences = [r.activity["channelData"].get("streamSequence") for r in sent[:-1]]
    assert sequences == list(range(1, len(sent)))
    assert {r.activity["channelData"].get("streamId") for r in sent[1:]} == {"bot-1"}
    final = sent[-1]
    assert final.type == "message"
    # Web Chat reads citations from Markdown reference definitions at the end of the text.
    assert '[1]: https://kb/p "Portal guide"' in final.text
    assert all(r.reply_to_id == inbound["id"] for r in sent)


async def test_emulator_gets_typing_then_one_message(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=SLOW))
    inbound = activity(
        bot.service_url,
        "printer",
        channel="emulator",
        conversation_id="emu-1",
        conversation_type=None,
        tenant=None,
    )
    await bot.ask(inbound)
    sent = bot.connector.in_conversation("emu-1")
    assert [r.type for r in sent] == ["typing", "message"]
    assert "Sources:" in sent[1].text and "[1]" in sent[1].text
    assert all(r.stream is None and r.reply_to_id == inbound["id"] for r in sent)


async def test_ids_with_slashes_reach_the_channel_whole(make_bot: MakeBot) -> None:
    """Ids go into the reply URL percent-encoded; a "/" in them must not split the path."""
    bot = await make_bot(FakeAnswerer(delay=SLOW))
    inbound = activity(
        bot.service_url,
        "printer",
        channel="emulator",
        conversation_id="team/thread{1}",
        conversation_type=None,
        tenant=None,
        activity_id="act/7?x=1",
    )
    assert (await bot.ask(inbound)).status < 300
    sent = bot.connector.in_conversation("team/thread{1}")
    assert [r.type for r in sent] == ["typing", "message"]
    assert all(r.reply_to_id == "act/7?x=1" for r in sent)


async def test_streaming_can_be_turned_off(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=SLOW), streaming=False)
    await bot.ask(activity(bot.service_url, "vpn"))
    assert [r.type for r in bot.connector.in_conversation("a:personal-1")] == ["typing", "message"]


async def test_expect_replies_come_back_in_the_response(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=SLOW))
    inbound = activity(bot.service_url, "vpn", deliveryMode="expectReplies")
    response = await bot.ask(inbound)
    body = await response.json()
    kinds = [a["type"] for a in body["activities"]]
    assert kinds == ["typing", "message"], "no streaming when replies are buffered"
    message = body["activities"][-1]
    assert message["replyToId"] == inbound["id"] and message["from"]["id"] == BOT_ID
    assert message["conversation"] == inbound["conversation"] and message["id"]
    assert bot.connector.received == [], "nothing is posted to the connector"


QUESTIONS = ["How do I connect to the VPN?", "How do I reset my password?", "Annual leave?", "A fourth"]


async def test_welcome_on_members_added_with_three_suggestions(make_bot: MakeBot) -> None:
    bot = await make_bot(welcome_questions=QUESTIONS)
    update = activity(bot.service_url, kind="conversationUpdate", membersAdded=[{"id": "29:user-1"}])
    await bot.ask(update)
    (welcome,) = bot.connector.messages("a:personal-1")
    actions = welcome.activity["suggestedActions"]["actions"]
    assert [a["value"] for a in actions] == QUESTIONS[:3]
    assert all(a["type"] == "imBack" for a in actions)
    # The bot itself being added to a personal chat is not a reason to greet twice.
    await bot.ask(activity(bot.service_url, kind="conversationUpdate", membersAdded=[{"id": BOT_ID}]))
    assert len(bot.connector.messages("a:personal-1")) == 1


async def test_web_chat_greets_on_join_not_on_members_added(make_bot: MakeBot) -> None:
    bot = await make_bot(welcome_questions=QUESTIONS)
    common: dict[str, Any] = {
        "channel": "directline",
        "conversation_id": "dl-2",
        "conversation_type": None,
        "tenant": None,
    }
    await bot.ask(
        activity(
            bot.service_url, kind="conversationUpdate", membersAdded=[{"id": BOT_ID}, {"id": "u"}], **common
        )
    )
    assert bot.connector.received == []
    await bot.ask(activity(bot.service_url, kind="event", name="webchat/join", **common))
    (welcome,) = bot.connector.messages("dl-2")
    assert len(welcome.activity["suggestedActions"]["actions"]) == 3


async def test_team_welcome_only_when_the_bot_joins(make_bot: MakeBot) -> None:
    bot = await make_bot()
    channel: dict[str, Any] = {"conversation_id": "19:general@thread.tacv2", "conversation_type": "channel"}
    await bot.ask(
        activity(bot.service_url, kind="conversationUpdate", membersAdded=[{"id": "29:new"}], **channel)
    )
    assert bot.connector.received == []
    await bot.ask(
        activity(bot.service_url, kind="conversationUpdate", membersAdded=[{"id": BOT_ID}], **channel)
    )
    assert len(bot.connector.messages("19:general@thread.tacv2")) == 1


async def test_an_instant_answer_goes_out_alone(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=0.0))
    await bot.ask(activity(bot.service_url, "vpn", channel="emulator", conversation_type=None))
    assert [r.type for r in bot.connector.in_conversation("a:personal-1")] == ["message"]


async def test_an_answer_ready_during_a_typing_send_goes_out_right_after_it(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=TYPING_DELAY + 0.02))
    bot.connector.delay = 0.05  # the typing post is still in flight when the answer is ready
    await bot.ask(activity(bot.service_url, "vpn", channel="emulator", conversation_type=None))
    typing, reply = bot.connector.in_conversation("a:personal-1")
    assert (typing.type, reply.type) == ("typing", "message")
    assert reply.at - typing.at < TYPING_PERIOD, "the reply waited for the next typing period"


async def test_a_slow_answer_keeps_the_typing_indicator_alive(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=TYPING_DELAY + 2.5 * TYPING_PERIOD))
    await bot.ask(activity(bot.service_url, "vpn", channel="emulator", conversation_type=None))
    sent = bot.connector.in_conversation("a:personal-1")
    assert [r.type for r in sent] == ["typing", "typing", "typing", "message"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent[:3])]
    assert min(gaps) >= TYPING_PERIOD * 0.9
