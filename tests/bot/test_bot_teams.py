"""Teams over the real app on loopback: personal chats stream, channel threads and group chats answer
when mentioned, replies land in the thread they answer."""

from __future__ import annotations

import itertools
import re
from typing import Any

from bot.turns import TurnTiming
from tests.bot.conftest import SLOW, STREAM_INTERVAL, MakeBot
from tests.bot.fakes import BOT_ID, FakeAnswerer, Received, activity

MESSAGE_ENTITY = "https://schema.org/Message"


def check_entity_limits(message: dict[str, Any]) -> dict[str, Any]:
    """The one root Message entity, within Teams' limits, matching the `[n]` markers of the text."""
    roots = [e for e in message.get("entities") or [] if e.get("type") == MESSAGE_ENTITY]
    assert len(roots) == 1, "exactly one root Message entity"
    root = roots[0]
    assert root["additionalType"] == ["AIGeneratedContent"]
    claims = root.get("citation", [])
    assert len(claims) <= 20
    for claim in claims:
        appearance = claim["appearance"]
        assert 0 < len(appearance["name"]) <= 80
        assert len(appearance.get("abstract", "")) <= 160
        assert len(appearance.get("keywords", [])) <= 3
        assert all(len(k) <= 28 for k in appearance.get("keywords", []))
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", message["text"])}
    assert markers == {claim["position"] for claim in claims}
    return root


def stream_of(received: list[Received]) -> list[Received]:
    return [r for r in received if r.stream is not None]


async def test_personal_chat_streams_by_the_protocol(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(pieces=8, piece_delay=0.03))
    inbound = activity(bot.service_url, "How do I use the VPN?")
    await bot.ask(inbound)

    sent = bot.connector.in_conversation("a:personal-1")
    stream = stream_of(sent)
    assert stream == sent, "every activity of the turn belongs to the stream"
    first, *updates, final = stream
    assert first.type == "typing" and first.stream == {
        "type": "streaminfo",
        "streamType": "informative",
        "streamSequence": 1,
    }
    assert first.text
    stream_id = "bot-1"  # the id the connector gave the first send
    assert updates, "a slow answer sends streaming updates"
    for number, update in enumerate(updates, start=2):
        assert update.type == "typing"
        assert update.stream == {
            "type": "streaminfo",
            "streamType": "streaming",
            "streamSequence": number,
            "streamId": stream_id,
        }
        assert update.activity["channelData"]["streamSequence"] == number
    texts = [u.text for u in updates]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    cited_updates = [u for u in updates if re.search(r"\[\d+\]", u.text)]
    assert cited_updates, "the answer cites while it streams"
    for update in cited_updates:  # the claims cited so far ride along, so their pop-ups work
        roots = [e for e in update.activity["entities"] if e.get("type") == MESSAGE_ENTITY]
        assert len(roots) == 1 and "additionalType" not in roots[0], "the AI label waits for the final"
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", update.text)}
        assert {claim["position"] for claim in roots[0]["citation"]} == markers
    assert final.type == "message"
    assert final.stream == {"type": "streaminfo", "streamType": "final", "streamId": stream_id}
    assert "streamSequence" not in final.activity["channelData"]
    assert final.text.startswith(texts[-1])
    check_entity_limits(final.activity)
    assert final.activity["channelData"]["feedbackLoop"] == {"type": "default"}
    gaps = [b.at - a.at for a, b in itertools.pairwise(stream)]
    assert min(gaps) >= STREAM_INTERVAL * 0.99, f"updates closer than the interval: {gaps}"
    for r in stream:
        assert r.reply_to_id == inbound["id"]
        assert r.activity["replyToId"] == inbound["id"]
        assert r.activity["conversation"] == inbound["conversation"]
        assert r.activity["from"]["id"] == BOT_ID
        assert r.activity["recipient"]["id"] == inbound["from"]["id"]


async def test_a_403_stops_the_stream_and_the_turn_still_gets_200(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(pieces=10, piece_delay=0.03))
    bot.connector.forbid_stream_after = 2
    await bot.ask(activity(bot.service_url, "stop me"))
    sent = bot.connector.in_conversation("a:personal-1")
    assert [r.status for r in sent] == [201, 202, 403], "nothing is sent after the first 403"
    # The cut-short turn is not remembered: the next question starts from an empty history.
    bot.connector.forbid_stream_after = None
    await bot.ask(activity(bot.service_url, "again"))
    assert bot.answerer.calls[-1].history == []


def final_of(received: list[Received]) -> list[Received]:
    return [r for r in received if r.type == "message" and (r.stream or {}).get("streamType") == "final"]


async def test_a_throttled_stream_backs_off_and_still_ends_with_its_final_message(make_bot: MakeBot) -> None:
    """429 (with Retry-After) and 503 on stream updates: the next request waits, the stream goes on with
    the whole text so far, and ends with its final message; the turn is remembered."""
    bot = await make_bot(FakeAnswerer(pieces=10, piece_delay=0.1))
    bot.connector.stream_faults = {2: (429, "0.3"), 4: (503, None)}
    await bot.ask(activity(bot.service_url, "throttle me"))
    stream = stream_of(bot.connector.in_conversation("a:personal-1"))
    assert [r.status for r in stream][:2] == [201, 429]
    throttled = next(i for i, r in enumerate(stream) if r.status == 429)
    assert stream[throttled + 1].at - stream[throttled].at >= 0.3 * 0.99, "Retry-After was honoured"
    delivered = [r for r in stream if r.status < 400 and r.type == "typing"]
    sequences = [r.stream["streamSequence"] for r in delivered if r.stream]
    assert sequences == list(range(1, len(sequences) + 1)), "no gap in the sequence of delivered updates"
    finals = final_of(stream)
    assert len(finals) == 1 and finals[0].status < 400
    streamed = [r for r in delivered if r.stream and r.stream["streamType"] == "streaming"]
    assert streamed, "updates went on after the throttled ones"
    assert finals[0].text.startswith(streamed[-1].text)
    await bot.ask(activity(bot.service_url, "again"))
    assert len(bot.answerer.calls[-1].history) == 2, "the throttled turn was remembered"


async def test_a_throttled_final_message_is_sent_again(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(pieces=3, piece_delay=0.03))
    bot.connector.final_faults = [(429, "0.2"), (500, None)]
    await bot.ask(activity(bot.service_url, "finish me"))
    finals = final_of(bot.connector.in_conversation("a:personal-1"))
    assert [r.status for r in finals] == [429, 500, 202]
    assert finals[1].at - finals[0].at >= 0.2 * 0.99


async def test_channel_thread_reply_stays_in_the_thread(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=SLOW))
    thread = "19:general@thread.tacv2;messageid=1700000000001"
    inbound = activity(
        bot.service_url,
        "reset my password",
        conversation_id=thread,
        conversation_type="channel",
        mention=True,
    )
    await bot.ask(inbound)
    sent = bot.connector.in_conversation(thread)
    assert [r.type for r in sent] == ["typing", "message"]
    assert all(r.stream is None for r in sent), "no streaming in channels"
    for r in sent:
        assert r.reply_to_id == inbound["id"]
        assert r.activity["conversation"]["id"] == thread
    check_entity_limits(sent[-1].activity)
    assert bot.answerer.calls[0].question == "reset my password", "the mention is stripped"


async def test_channel_message_without_mention_is_ignored(make_bot: MakeBot) -> None:
    bot = await make_bot()
    thread = "19:general@thread.tacv2;messageid=1700000000002"
    response = await bot.post(
        activity(bot.service_url, "just chatting", conversation_id=thread, conversation_type="channel")
    )
    assert response.status == 200
    assert bot.connector.received == [] and bot.answerer.calls == []


async def test_group_chat_answers_only_its_own_mention(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(delay=SLOW))
    chat = "19:group-chat@thread.v2"
    other = activity(bot.service_url, "hi Bob", conversation_id=chat, conversation_type="groupChat")
    other["text"] = "<at>Bob</at> hi Bob"
    other["entities"] = [
        {"type": "mention", "mentioned": {"id": "29:bob", "name": "Bob"}, "text": "<at>Bob</at>"}
    ]
    await bot.ask(other)
    assert bot.connector.received == []

    mine = activity(
        bot.service_url,
        "what is  the\twifi password?",
        conversation_id=chat,
        conversation_type="groupChat",
        mention=True,
    )
    mine["text"] += " <at>Bob</at>"
    mine["entities"].append(
        {"type": "mention", "mentioned": {"id": "29:bob", "name": "Bob"}, "text": "<at>Bob</at>"}
    )
    await bot.ask(mine)
    assert [r.type for r in bot.connector.in_conversation(chat)] == ["typing", "message"]
    # Only the bot's own mention goes (found by id, the name has regex characters); Bob's stays.
    assert bot.answerer.calls[0].question == "what is the wifi password? <at>Bob</at>"


async def test_top_level_channel_post_and_its_replies_share_memory(make_bot: MakeBot) -> None:
    bot = await make_bot()
    channel = "19:general@thread.tacv2"
    post = activity(
        bot.service_url,
        "first question",
        conversation_id=channel,
        conversation_type="channel",
        mention=True,
        activity_id="1700000000100",
    )
    await bot.ask(post)
    assert bot.connector.in_conversation(channel)[-1].reply_to_id == "1700000000100"
    reply = activity(
        bot.service_url,
        "follow-up",
        conversation_id=f"{channel};messageid=1700000000100",
        conversation_type="channel",
        mention=True,
    )
    await bot.ask(reply)
    history = bot.answerer.calls[1].history
    assert [t.content for t in history][:1] == ["first question"]
    other_thread = activity(
        bot.service_url,
        "unrelated",
        conversation_id=f"{channel};messageid=1700000000999",
        conversation_type="channel",
        mention=True,
    )
    await bot.ask(other_thread)
    assert bot.answerer.calls[2].history == []


async def test_a_stream_past_its_budget_is_closed_with_an_apology(make_bot: MakeBot) -> None:
    timing = TurnTiming(stream_interval=STREAM_INTERVAL, stream_budget=0.3)
    bot = await make_bot(FakeAnswerer(pieces=10, piece_delay=0.1), timing=timing)
    await bot.ask(activity(bot.service_url, "slow"))
    final = bot.connector.in_conversation("a:personal-1")[-1]
    assert final.type == "message" and final.stream and final.stream["streamType"] == "final"
    assert "unavailable" in final.text
    await bot.ask(activity(bot.service_url, "next"))
    assert bot.answerer.calls[-1].history == [], "the cut-off turn is not remembered"
