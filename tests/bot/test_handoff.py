"""The hand-off over the real app on both hosts: the `handoff` command, "Talk to a person" offered after a
refusal and a thumbs-down, the Adaptive Card in the thread, and the help desk's webhook on loopback
(delivered, 429 then delivered after Retry-After, down)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.handoff import NOT_CONNECTED, OFFER_TITLE, SENT, HandOff, dislike_offer, refusal_hint
from bot.handoff.card import CARD_CONTENT_TYPE
from bot.render.failures import NOT_IN_KNOWLEDGE_BASE
from bot.settings import BotSettings
from rag.contract import REFUSAL, Answer, Turn
from rag.settings import Settings, load_settings
from rag.summary import summary_client
from ragbot.cli import main
from tests.azure.azure_fake import FakeAzure, Reply
from tests.bot.conftest import MakeBot
from tests.bot.fakes import TENANT, FakeAnswerer, Received, activity, cited_answer
from tests.bot.test_bot_feedback import submit
from tests.loopback import serve

CONVERSATION = "a:personal-1"
SECRET_SIG = "s3cr3t-signature-value"


def bot_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What the bot logged (the loopback receiver's own access log shows the URL it was called at)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("bot.", "rag.")))


def refusing(question: str, history: Sequence[Turn]) -> Answer:
    return Answer(content=REFUSAL, intent=["parking"]) if "parking" in question else cited_answer(question)


def offers(received: Received) -> list[str]:
    actions = (received.activity.get("suggestedActions") or {}).get("actions") or []
    return [a["value"] for a in actions]


def card_of(received: Received) -> dict[str, Any]:
    (attachment,) = received.activity["attachments"]
    assert attachment["contentType"] == CARD_CONTENT_TYPE
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"]
    return dict(card)


def card_text(card: dict[str, Any]) -> str:
    """Every text of a card, facts included, in order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card["body"])
    return "\n".join(found)


@dataclass
class HelpDesk:
    """A loopback webhook: answers each POST with the next scripted status (then 200)."""

    url: str = ""
    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    posts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((time.monotonic(), await request.json()))
        status, headers = self.statuses.pop(0) if self.statuses else (200, {})
        return web.json_response({}, status=status, headers=headers)


@pytest.fixture
async def help_desk() -> AsyncIterator[HelpDesk]:
    desk = HelpDesk()
    async with serve(desk.handle, method="POST") as base:
        desk.url = f"{base}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig={SECRET_SIG}"
        yield desk


async def test_handoff_after_a_refusal_shows_the_card_in_the_thread(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(script=refusing))
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))
    await bot.ask(activity(bot.service_url, "Where is bike parking?", activity_id="q-parking"))
    refusal = bot.connector.messages(CONVERSATION)[-1]
    assert refusal.text.startswith(f"{NOT_IN_KNOWLEDGE_BASE} {refusal_hint(True)}")
    assert offers(refusal) == [OFFER_TITLE]

    await bot.ask(activity(bot.service_url, OFFER_TITLE, activity_id="q-person"))
    reply = bot.connector.messages(CONVERSATION)[-1]
    assert reply.reply_to_id == "q-person", "the card answers in the thread"
    assert reply.text == NOT_CONNECTED
    text = card_text(card_of(reply))
    assert "Hand-off to a person" in text
    assert "Where is bike parking?" in text and "Not found in the knowledge base" in text
    assert "How do I use the VPN?" in text and "Portal guide (https://kb/p)" in text
    assert "could not be answered" in text, "the extractive summary counts the refusal"
    assert ("Summary by" in text) and ("extractive" in text)

    await bot.ask(activity(bot.service_url, "and the printer?"))
    history = bot.answerer.calls[-1].history
    assert [t.content for t in history if t.role == "user"] == ["How do I use the VPN?"], "history intact"


async def test_handoff_in_a_teams_channel_thread(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(script=refusing))
    thread = "19:general@thread.tacv2;messageid=root-1"
    asked = dict(conversation_id=thread, conversation_type="channel", mention=True)
    await bot.ask(activity(bot.service_url, "parking rules?", **asked))
    refusal = bot.connector.messages(thread)[-1]
    assert offers(refusal) == [] and refusal_hint(False) in refusal.text, "no buttons here: the hint says how"
    await bot.ask(activity(bot.service_url, "handoff", activity_id="q-h", **asked))
    reply = bot.connector.messages(thread)[-1]
    assert reply.conversation_id == thread and reply.reply_to_id == "q-h"
    assert "parking rules?" in card_text(card_of(reply))


async def test_a_thumbs_down_offers_a_person_once_and_the_card_shows_it(make_bot: MakeBot) -> None:
    bot = await make_bot(streaming=False)
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))
    rated = bot.connector.messages(CONVERSATION)[-1].returned_id
    assert (await bot.post(submit(bot.service_url, rated, "dislike", ""))).status == 200
    offer = bot.connector.messages(CONVERSATION)[-1]
    assert offer.text == dislike_offer(True) and offers(offer) == [OFFER_TITLE]
    sent = len(bot.connector.received)
    response = await bot.post(submit(bot.service_url, rated, "dislike", "The portal link is dead."))
    assert response.status == 200 and await response.json() == {}
    assert len(bot.connector.received) == sent, "the comment that follows is not offered again"
    assert (await bot.post(submit(bot.service_url, rated, "like", ""))).status == 200
    assert len(bot.connector.received) == sent, "a thumbs-up offers nothing"
    assert (await bot.post(submit(bot.service_url, rated, "dislike", "still dead"))).status == 200

    await bot.ask(activity(bot.service_url, "handoff"))
    text = card_text(card_of(bot.connector.messages(CONVERSATION)[-1]))
    assert "dislike: still dead" in text and "Rated down" in text


async def test_plain_channels_get_the_summary_as_text(make_bot: MakeBot) -> None:
    bot = await make_bot(FakeAnswerer(script=refusing))
    slack = dict(channel="slack", conversation_id="slack-1", conversation_type=None, tenant=None)
    await bot.ask(activity(bot.service_url, "parking?", **slack))
    await bot.ask(activity(bot.service_url, "handoff", **slack))
    reply = bot.connector.messages("slack-1")[-1]
    assert "attachments" not in reply.activity
    assert "Hand-off to a person" in reply.text and '"parking?"' in reply.text and NOT_CONNECTED in reply.text


async def test_handoff_is_posted_to_the_webhook(
    make_bot: MakeBot, help_desk: HelpDesk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = await make_bot(FakeAnswerer(script=refusing), handoff_webhook=help_desk.url)
    await bot.ask(activity(bot.service_url, "parking?"))
    await bot.ask(activity(bot.service_url, "handoff"))
    assert bot.connector.messages(CONVERSATION)[-1].text == SENT
    ((_, posted),) = help_desk.posts
    assert posted["type"] == "ragbot.handoff" and posted["channel"] == "msteams"
    assert posted["conversation_id"] == CONVERSATION and posted["user"] == "Ann"
    assert posted["exchanges"][0]["question"] == "parking?" and posted["exchanges"][0]["refused"]
    assert "could not be answered" in posted["summary"]
    assert posted["card"]["type"] == "AdaptiveCard"
    logged = bot_logs(caplog)
    assert "hand-off delivered to http://127.0.0.1" in logged and SECRET_SIG not in logged


async def test_a_redelivered_handoff_is_posted_once(make_bot: MakeBot, help_desk: HelpDesk) -> None:
    bot = await make_bot(handoff_webhook=help_desk.url)
    await bot.ask(activity(bot.service_url, "vpn?"))
    handoff = activity(bot.service_url, "handoff", activity_id="h-1")
    first, again = await asyncio.gather(bot.post(handoff), bot.post(handoff))  # Teams retrying a slow turn
    assert first.status == again.status == 200
    await bot.ask(handoff)
    assert len(help_desk.posts) == 1
    assert [m.text for m in bot.connector.messages(CONVERSATION)].count(SENT) == 1


async def test_a_teams_workflow_gets_the_card_message(make_bot: MakeBot, help_desk: HelpDesk) -> None:
    bot = await make_bot(handoff_webhook=help_desk.url, handoff_webhook_format="teams")
    await bot.ask(activity(bot.service_url, "vpn?"))
    await bot.ask(activity(bot.service_url, "handoff"))
    ((_, posted),) = help_desk.posts
    assert posted["type"] == "message"
    (attachment,) = posted["attachments"]
    assert attachment["contentType"] == CARD_CONTENT_TYPE and attachment["content"]["type"] == "AdaptiveCard"
    assert "vpn?" in card_text(attachment["content"]) and "Ann" in card_text(attachment["content"])


async def test_a_throttled_webhook_is_retried_after_retry_after(
    make_bot: MakeBot, help_desk: HelpDesk
) -> None:
    help_desk.statuses = [(429, {"Retry-After": "1"})]
    bot = await make_bot(handoff_webhook=help_desk.url)
    await bot.ask(activity(bot.service_url, "handoff"))
    assert bot.connector.messages(CONVERSATION)[-1].text == SENT
    (first, _), (second, _) = help_desk.posts
    assert second - first >= 0.9, "the retry waited what Retry-After asked"


async def test_a_webhook_asking_to_wait_past_the_deadline_is_not_waited_for(
    make_bot: MakeBot, help_desk: HelpDesk
) -> None:
    help_desk.statuses = [(503, {"Retry-After": "120"})]
    bot = await make_bot(handoff_webhook=help_desk.url, handoff_timeout=5)
    await bot.ask(activity(bot.service_url, "handoff"))
    reply = bot.connector.messages(CONVERSATION)[-1].text
    assert "not sent" in reply and "HTTP 503" in reply and len(help_desk.posts) == 1


async def test_a_webhook_that_is_down_is_reported_and_history_kept(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(lambda request: asyncio.sleep(0, web.Response())) as base:
        gone = f"{base}/hook?sig={SECRET_SIG}"  # the server is closed below: connections are refused
    bot = await make_bot(handoff_webhook=gone, handoff_timeout=1.5)
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))
    await bot.ask(activity(bot.service_url, "handoff"))
    reply = bot.connector.messages(CONVERSATION)[-1]
    assert "couldn't reach the help desk" in reply.text and "not sent" in reply.text
    assert card_of(reply), "the user still gets the summary"
    logged = bot_logs(caplog)
    assert "hand-off not delivered to http://127.0.0.1" in logged and SECRET_SIG not in logged
    await bot.ask(activity(bot.service_url, "and on mobile?"))
    assert [t.content for t in bot.answerer.calls[-1].history][:1] == ["How do I use the VPN?"]


async def test_help_lists_handoff(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.ask(activity(bot.service_url, "help"))
    assert "**handoff**" in bot.connector.messages(CONVERSATION)[-1].text


OFFICIAL_CHAT = Path(__file__).parents[1] / "conformance/aoai/2024-10-21/chat_completions.json"
MODEL_SUMMARY = "Ann could not find the bike parking rules; the VPN answer came from the Portal guide."


def chat_reply(content: str) -> Reply:
    """Azure OpenAI's official chat completion example, saying `content`."""
    body = json.loads(OFFICIAL_CHAT.read_text(encoding="utf-8"))["responses"]["200"]["body"]
    body["choices"][0]["message"]["content"] = content
    return Reply(body=body)


@pytest.fixture
async def fake_azure() -> AsyncIterator[FakeAzure]:
    fake = FakeAzure()
    async with serve(fake.handle, method="POST") as fake.url:
        yield fake


def azure_settings(url: str) -> Settings:
    env = {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_KEY": "summary-key",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "RAGBOT_RETRY_BUDGET": "0",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return load_settings(env_file=None)


async def test_the_chat_model_writes_the_summary_when_configured(
    make_bot: MakeBot, fake_azure: FakeAzure
) -> None:
    client = summary_client(azure_settings(fake_azure.url))
    assert client is not None
    handoff = HandOff(BotSettings(_env_file=None), client)
    bot = await make_bot(FakeAnswerer(script=refusing), handoff=handoff)
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))
    await bot.ask(activity(bot.service_url, "bike parking?"))
    fake_azure.reply(chat_reply(MODEL_SUMMARY))
    await bot.ask(activity(bot.service_url, "handoff"))
    text = card_text(card_of(bot.connector.messages(CONVERSATION)[-1]))
    assert MODEL_SUMMARY in text and "chat model" in text
    (sent,) = fake_azure.requests
    assert sent.path == "/openai/deployments/gpt-4o/chat/completions"
    assert sent.headers["api-key"] == "summary-key"
    system, user = sent.body["messages"]
    assert "hand-off" in system["content"]
    assert "Question 2: bike parking?" in user["content"] and "could not answer" in user["content"]
    assert "Portal guide (https://kb/p)" in user["content"]

    fake_azure.reply(Reply(status=500, body={"error": {"code": "InternalServerError", "message": "boom"}}))
    await bot.ask(activity(bot.service_url, "handoff"))
    text = card_text(card_of(bot.connector.messages(CONVERSATION)[-1]))
    assert "could not be answered" in text and "extractive" in text, "a failing model: the extractive one"


async def test_a_slow_chat_model_gives_way_to_the_extractive_summary(
    make_bot: MakeBot, fake_azure: FakeAzure
) -> None:
    client = summary_client(azure_settings(fake_azure.url))
    handoff = HandOff(BotSettings(_env_file=None, handoff_timeout=0.6), client)
    bot = await make_bot(FakeAnswerer(script=refusing), handoff=handoff)
    await bot.ask(activity(bot.service_url, "bike parking?"))
    fake_azure.reply(Reply(body={}, delay=2))
    await bot.ask(activity(bot.service_url, "handoff"))
    text = card_text(card_of(bot.connector.messages(CONVERSATION)[-1]))
    assert "could not be answered" in text and "extractive" in text


CliRun = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def summarize_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> CliRun:
    """`ragbot summarize ARGS` through the real entry point, reading the bot's store under `tmp_path`."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "RAGBOT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAGBOT_DATA_DIR", str(tmp_path))

    async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        code = await asyncio.to_thread(main, ["summarize", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def test_ragbot_summarize_a_stored_conversation_and_post_it(
    make_bot: MakeBot, summarize_cli: CliRun, help_desk: HelpDesk
) -> None:
    bot = await make_bot(FakeAnswerer(script=refusing), streaming=False)
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))
    rated = bot.connector.messages(CONVERSATION)[-1].returned_id
    await bot.post(submit(bot.service_url, rated, "dislike", "The portal link is dead."))
    await bot.ask(activity(bot.service_url, "bike parking?"))

    code, out, err = await summarize_cli(CONVERSATION)
    assert code == 0, err
    assert "The user asked 2 questions; 1 could not be answered" in out
    said = '(the user said: "The portal link is dead.")'
    assert f'Rated down: the answer to "How do I use the VPN?" {said}' in out
    assert "(summary by extractive; questions: 2; not answered: 1; rated down: 1)" in out

    code, out, err = await summarize_cli(
        f"msteams|{TENANT}|{CONVERSATION}", "--post", "--json", env={"RAGBOT_HANDOFF_WEBHOOK": help_desk.url}
    )
    assert code == 0, err
    assert json.loads(out)["delivery"]["sent"] is True
    ((_, posted),) = help_desk.posts
    assert posted["conversation_id"] == CONVERSATION and posted["source"] == "ragbot summarize"
    assert [e["question"] for e in posted["exchanges"]] == ["How do I use the VPN?", "bike parking?"]

    code, _, err = await summarize_cli("a:nobody")
    assert code == 2 and "no stored conversation 'a:nobody'" in err


async def test_ragbot_summarize_a_file_with_the_chat_model(
    summarize_cli: CliRun, fake_azure: FakeAzure, tmp_path: Path
) -> None:
    chat = tmp_path / "chat.txt"
    chat.write_text("User: my laptop will not start\nBot: Hold the power button.\nUser: still dead\n")
    code, out, err = await summarize_cli("--file", str(chat))
    assert code == 0, err
    assert "The user asked 2 questions" in out and '"still dead"' in out and "summary by extractive" in out

    fake_azure.reply(chat_reply(MODEL_SUMMARY))
    azure = {"AZURE_OPENAI_ENDPOINT": fake_azure.url, "AZURE_OPENAI_KEY": "k", "AZURE_OPENAI_MODEL": "gpt-4o"}
    code, out, err = await summarize_cli("--file", str(chat), env=azure)
    assert code == 0, err
    assert out.startswith(MODEL_SUMMARY) and "summary by chat model" in out
    assert "Question 1: my laptop will not start" in fake_azure.requests[0].body["messages"][1]["content"]

    code, _, err = await summarize_cli("--file", str(chat), "--post")
    assert code == 2 and "RAGBOT_HANDOFF_WEBHOOK" in err
    code, _, err = await summarize_cli("--file", str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read" in err
