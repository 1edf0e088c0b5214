"""The hand-off in Web Chat: the real bot behind the local Direct Line, driven as Web Chat drives it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.handoff import NOT_CONNECTED, OFFER_TITLE, dislike_offer
from bot.handoff.card import CARD_CONTENT_TYPE
from bot.settings import BotSettings
from bot.turns import TurnTiming
from tests.bot.fakes import FakeAnswerer
from tests.bot.test_handoff import card_text, refusing

from .test_directline import DL, auth, poll, send, start

Activity = dict[str, Any]


async def bot_message(
    client: TestClient, conv: dict[str, Any], found: Callable[[Activity], bool]
) -> Activity:
    """The first message from the bot that `found` accepts, polled as Web Chat would."""

    async def wait() -> Activity:
        while True:
            for activity in (await poll(client, conv))["activities"]:
                if (
                    activity["type"] == "message"
                    and activity["from"].get("role") == "bot"
                    and found(activity)
                ):
                    return dict(activity)
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(wait(), 10)


def actions(activity: Activity) -> list[str]:
    return [a["value"] for a in (activity.get("suggestedActions") or {}).get("actions") or []]


async def test_handoff_in_web_chat_after_a_refusal_and_a_thumbs_down(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = BotSettings(_env_file=None, data_dir=tmp_path)
    timing = TurnTiming(stream_interval=0.05, web_stream_interval=0.02, typing_delay=0.03, typing_period=0.2)
    client: TestClient = await aiohttp_client(
        create_app(settings, FakeAnswerer(script=refusing), timing=timing)
    )
    generated, conv = await start(client)

    await send(client, conv, "How do I use the VPN?", client_id="c1")
    answer = await bot_message(client, conv, lambda a: "use the portal" in a.get("text", ""))
    rated = answer["channelData"].get("streamId") or answer["id"]
    feedback = {
        "type": "invoke",
        "name": "message/submitAction",
        "from": {"id": generated["userId"], "role": "user"},
        "replyToId": rated,
        "value": {
            "actionName": "feedback",
            "actionValue": {"reaction": "dislike", "feedback": json.dumps({})},
        },
    }
    response = await client.post(
        f"{DL}/conversations/{conv['conversationId']}/activities", json=feedback, headers=auth(conv["token"])
    )
    assert response.status == 200, await response.text()
    offer = await bot_message(client, conv, lambda a: a.get("text") == dislike_offer(True))
    assert actions(offer) == [OFFER_TITLE]

    await send(client, conv, "bike parking?", client_id="c2")
    refusal = await bot_message(client, conv, lambda a: "couldn't find that" in a.get("text", ""))
    assert actions(refusal) == [OFFER_TITLE]

    await send(client, conv, OFFER_TITLE, client_id="c3")
    reply = await bot_message(client, conv, lambda a: bool(a.get("attachments")))
    assert reply["text"] == NOT_CONNECTED
    (attachment,) = reply["attachments"]
    assert attachment["contentType"] == CARD_CONTENT_TYPE
    text = card_text(attachment["content"])
    assert "bike parking?" in text and "Not found in the knowledge base" in text
    assert "How do I use the VPN?" in text and "Feedback: dislike" in text
