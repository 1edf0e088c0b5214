"""One real turn through POST /api/messages, traced into memory: the span tree and its attributes on the
local backend and on On Your Data (the loopback fake of Azure OpenAI), no user text or secret in any
attribute unless RAGBOT_TRACE_CONTENT is on, the caller's traceparent continued and ours sent on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from rag.azure.on_your_data import OnYourDataAnswerer
from rag.factory import build_answerer
from rag.settings import AzureOpenAISettings, AzureSearchSettings, RagSettings, Settings
from tests.azure.azure_fake import FakeAzure, Reply
from tests.bot.conftest import Bot, MakeBot
from tests.bot.fakes import activity
from tests.loopback import serve
from tests.telemetry.conftest import QUESTION, Recorded

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
OPENAI_KEY = "aoai-key-5d1f0c9b7e3a2c4d6e8f"


def local_bot(make_bot: MakeBot, data_dir: Path, **overrides: Any) -> Any:
    settings = Settings(
        openai=AzureOpenAISettings(_env_file=None),
        search=AzureSearchSettings(_env_file=None),
        ragbot=RagSettings(_env_file=None, backend="local", data_dir=data_dir),
    )
    return make_bot(build_answerer(settings), **overrides)


def attribute_text(spans: list[ReadableSpan]) -> str:
    return json.dumps([dict(s.attributes or {}) for s in spans], default=str)


def trace_tree(recorded: Recorded) -> tuple[ReadableSpan, list[str]]:
    turn = recorded.named("turn message")
    return turn, sorted(s.name for s in recorded.children(turn))


async def test_a_local_turn_is_one_trace_continuing_the_callers(
    traced: Recorded, make_bot: MakeBot, local_index: Path, bot_host: str
) -> None:
    bot: Bot = await local_bot(make_bot, local_index, streaming=False)
    sample = activity(bot.service_url, QUESTION)
    response = await bot.post(sample, headers={"traceparent": TRACEPARENT})
    assert response.status == 200, await response.text()

    turn, children = trace_tree(traced)
    assert turn.kind is SpanKind.SERVER
    assert format(turn.context.trace_id, "032x") == TRACE_ID
    assert turn.parent is not None and format(turn.parent.span_id, "016x") == CALLER_SPAN
    assert dict(turn.attributes or {}) | {"ragbot.activity.id": ""} == {
        "ragbot.channel": "msteams",
        "ragbot.conversation.type": "personal",
        "ragbot.conversation.id": sample["conversation"]["id"],
        "ragbot.activity.type": "message",
        "ragbot.activity.id": "",
        "ragbot.host": bot_host,
        "ragbot.backend": "local",
        "ragbot.outcome": "answered",
    }
    for name in ("ragbot.memory.load", "ragbot.retrieve", "ragbot.generate", "ragbot.render", "POST"):
        assert name in children, children
    assert "ragbot.memory.save" in children
    retrieve = traced.named("ragbot.retrieve")
    assert retrieve.attributes is not None
    assert retrieve.attributes["ragbot.retriever"] == "local"
    assert retrieve.attributes["ragbot.retrieval.queries"] >= 1
    assert retrieve.attributes["ragbot.retrieval.kept"] >= 1
    assert retrieve.attributes["ragbot.retrieval.hits"] >= retrieve.attributes["ragbot.retrieval.kept"]
    assert retrieve.attributes["ragbot.retrieval.strictness"] == 3
    assert dict(traced.named("ragbot.generate").attributes or {})["ragbot.generator"] == "extractive"

    # the reply's POST is a CLIENT span of the turn, and the connector got its traceparent
    conversation = sample["conversation"]["id"]
    reply = bot.connector.messages(conversation)[-1]
    assert reply.traceparent is not None
    version, trace_id, parent_id, flags = reply.traceparent.split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    (post,) = [s for s in traced.children(turn) if format(s.context.span_id, "016x") == parent_id]
    assert post.kind is SpanKind.CLIENT and post.name == "POST"
    assert dict(post.attributes or {}) == {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": int(bot.service_url.rsplit(":", 1)[1].strip("/")),
        "url.full": f"{bot.service_url}v3/conversations/{conversation}/activities/{sample['id']}",
        "http.response.status_code": 201,
    }

    # no user text in any attribute by default
    assert "VPN" not in attribute_text(traced.spans())
    (point,) = traced.metric_points("ragbot.turns")
    assert point.value == 1 and point.attributes["ragbot.outcome"] == "answered"
    assert [p.count for p in traced.metric_points("ragbot.turn.duration")] == [1]


async def test_user_text_is_recorded_only_when_asked_for(
    traced_with_content: Recorded, make_bot: MakeBot, local_index: Path
) -> None:
    bot: Bot = await local_bot(make_bot, local_index, streaming=False)
    await bot.ask(activity(bot.service_url, QUESTION))
    spans = {s.name: dict(s.attributes or {}) for s in traced_with_content.spans()}
    assert spans["turn message"]["ragbot.question"] == QUESTION
    assert "VPN" in " ".join(spans["ragbot.retrieve"]["ragbot.retrieval.query_texts"])


def completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "Open the VPN client and choose Reset token [doc1].",
                    "context": {
                        "citations": [{"content": "Reset token.", "title": "VPN tokens", "url": None}]
                    },
                },
            }
        ],
        "usage": {"prompt_tokens": 812, "completion_tokens": 17, "total_tokens": 829},
    }


async def test_an_on_your_data_turn_reaches_azure_openai_in_the_same_trace(
    traced: Recorded, make_bot: MakeBot, bot_host: str
) -> None:
    fake = FakeAzure()
    fake.respond = lambda body: Reply(body=completion())
    async with serve(fake.handle, method="POST") as url:
        settings = Settings(
            openai=AzureOpenAISettings(_env_file=None, endpoint=url, key=OPENAI_KEY, model="gpt-4o"),
            search=AzureSearchSettings(
                _env_file=None, endpoint="https://search.invalid", index="kb", key="sk-123456"
            ),
            ragbot=RagSettings(_env_file=None, backend="on_your_data"),
        )
        bot: Bot = await make_bot(OnYourDataAnswerer.from_settings(settings), streaming=False)
        response = await bot.post(activity(bot.service_url, QUESTION), headers={"traceparent": TRACEPARENT})
        assert response.status == 200, await response.text()

    turn = traced.named("turn message")
    assert dict(turn.attributes or {})["ragbot.backend"] == "on_your_data"
    chat = traced.named("chat gpt-4o")
    assert chat.kind is SpanKind.CLIENT and chat.parent is not None
    assert chat.parent.span_id == turn.context.span_id
    assert {k: v for k, v in (chat.attributes or {}).items() if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "az.ai.openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.max_tokens": 1000,
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 812,
        "gen_ai.usage.output_tokens": 17,
    }
    # Azure OpenAI got the traceparent of the HTTP span under the chat span: one trace, Teams to model
    (post,) = traced.children(chat)
    sent = fake.requests[-1].headers["traceparent"]
    assert sent == f"00-{TRACE_ID}-{format(post.context.span_id, '016x')}-01"
    text = attribute_text(traced.spans())
    assert OPENAI_KEY not in text and "VPN" not in text
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in traced.metric_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 812, "output": 17}


async def test_a_turn_the_sampler_leaves_out_makes_no_spans_but_counts_and_names_its_trace(
    sampled_out: Recorded, make_bot: MakeBot, bot_host: str
) -> None:
    fake = FakeAzure()
    fake.respond = lambda body: Reply(body=completion())
    unsampled = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
    async with serve(fake.handle, method="POST") as url:
        settings = Settings(
            openai=AzureOpenAISettings(_env_file=None, endpoint=url, key=OPENAI_KEY, model="gpt-4o"),
            search=AzureSearchSettings(
                _env_file=None, endpoint="https://search.invalid", index="kb", key="sk-123456"
            ),
            ragbot=RagSettings(_env_file=None, backend="on_your_data"),
        )
        bot: Bot = await make_bot(OnYourDataAnswerer.from_settings(settings), streaming=False)
        response = await bot.post(activity(bot.service_url, QUESTION), headers={"traceparent": unsampled})
        assert response.status == 200, await response.text()

    assert sampled_out.spans() == []
    # Azure OpenAI still hears which trace the call belongs to (and that it was not sampled)
    assert fake.requests[-1].headers["traceparent"].startswith(f"00-{TRACE_ID}-")
    assert fake.requests[-1].headers["traceparent"].endswith("-00")
    (turns,) = sampled_out.metric_points("ragbot.turns")
    assert turns.value == 1 and turns.attributes["ragbot.outcome"] == "answered"
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in sampled_out.metric_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 812, "output": 17}
