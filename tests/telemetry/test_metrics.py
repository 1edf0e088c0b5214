"""The metrics a turn alone does not show: retries and 429s of an upstream, a thumbs up or down, the
size of the local index."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from rag.azure.client import AzureOpenAIClient
from rag.local.embedder import LocalEmbedder
from rag.local.retriever import LocalRetriever
from tests.azure.azure_fake import FakeAzure, Reply
from tests.bot.conftest import MakeBot
from tests.bot.fakes import activity
from tests.bot.test_bot_feedback import submit
from tests.loopback import serve
from tests.telemetry.conftest import PASSAGES, Recorded


async def test_a_throttled_call_counts_one_429_and_one_retry(traced: Recorded) -> None:
    fake = FakeAzure()
    fake.reply(
        Reply(
            status=429,
            body={"error": {"code": "429", "message": "slow down"}},
            headers={"retry-after-ms": "10"},
        ),
        Reply(body={"choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "ok"}}]}),
    )
    async with serve(fake.handle, method="POST") as url:
        client = AzureOpenAIClient(base_url=url, api_version="2024-10-21", api_key=SecretStr("k"))
        try:
            await client.chat({"messages": []}, deployment="gpt-4o")
        finally:
            await client.aclose()
    (throttled,) = traced.metric_points("ragbot.upstream.throttled")
    (retried,) = traced.metric_points("ragbot.upstream.retries")
    assert throttled.value == 1 and throttled.attributes["ragbot.peer"] == "azure_openai"
    assert retried.value == 1 and retried.attributes["http.response.status_code"] == 429
    (chat,) = [s for s in traced.spans() if s.name == "chat gpt-4o"]
    assert [s.name for s in traced.children(chat)] == ["POST", "POST"]  # both attempts, in one call


async def test_the_readiness_check_reports_the_index_size(traced: Recorded, local_index: Path) -> None:
    retriever = LocalRetriever(local_index / "index.sqlite", LocalEmbedder())
    try:
        assert await retriever.ready() is None
    finally:
        await retriever.aclose()
    (size,) = traced.metric_points("ragbot.index.chunks")
    assert size.value == len(PASSAGES)


async def test_thumbs_up_and_down_are_counted(traced: Recorded, make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))
    final = bot.connector.messages("a:personal-1")[-1]
    rated = final.stream["streamId"] if final.stream else final.returned_id
    for reaction, user in (("like", "29:ann"), ("dislike", "29:bob"), ("like", "29:cy")):
        response = await bot.post(
            submit(bot.service_url, rated, reaction, "", user_id=user, aad_object_id=None)
        )
        assert response.status == 200, await response.text()
    counted = {p.attributes["ragbot.reaction"]: p.value for p in traced.metric_points("ragbot.feedback")}
    assert counted == {"up": 2, "down": 1}


async def test_a_streamed_call_is_one_chat_span_whose_usage_comes_from_the_last_chunk(
    traced: Recorded,
) -> None:
    fake = FakeAzure()
    chunk = {
        "id": "chatcmpl-9",
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": {"content": "Hi"}}],
    }
    last = {
        "id": "chatcmpl-9",
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
    }
    fake.reply(Reply(events=[chunk, last]))
    async with serve(fake.handle, method="POST") as url:
        client = AzureOpenAIClient(base_url=url, api_version="2024-10-21", api_key=SecretStr("k"))
        try:
            received = [c async for c in client.chat_stream({"messages": []}, deployment="gpt-4o")]
        finally:
            await client.aclose()
    assert len(received) == 2
    (chat,) = [s for s in traced.spans() if s.name == "chat gpt-4o"]
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (40, 2)
    assert [s.name for s in traced.children(chat)] == ["POST"]
    sent = fake.requests[-1].headers["traceparent"]
    assert sent.split("-")[1] == format(chat.context.trace_id, "032x")


async def test_time_to_first_token_is_measured_on_streamed_answers(
    traced: Recorded, make_bot: MakeBot
) -> None:
    bot = await make_bot()
    await bot.ask(activity(bot.service_url, "How do I use the VPN?"))  # Teams personal chat: streamed
    whole = activity(bot.service_url, "How do I use the VPN?", channel="emulator", conversation_type=None)
    await bot.ask(whole)  # sent whole: its time is the turn's, no first token
    (first,) = traced.metric_points("ragbot.turn.time_to_first_token")
    assert first.count == 1 and first.attributes == {"ragbot.channel": "msteams"}
    turns = {p.attributes["ragbot.channel"]: p.value for p in traced.metric_points("ragbot.turns")}
    assert turns == {"msteams": 1, "emulator": 1}
