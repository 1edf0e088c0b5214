"""The chat generators (Azure deployment and OpenAI-compatible) against a loopback fake, end to end
through GroundedAnswerer: the request carries the numbered documents, the reply's [docN] markers map
onto the citations, streaming never splits a marker, and the model rewrites follow-ups."""

from __future__ import annotations

from typing import Any

from grounded_fakes import DictRetriever, completion, hit, stream_events

from rag.azure.chat_request import ChatParams
from rag.azure.client import AzureOpenAIClient
from rag.contract import DOC_MARKER, REFUSAL, AnswerBuilder, Turn
from rag.grounded.answerer import GroundedAnswerer, GroundingOptions
from rag.grounded.build import chat_or_extractive
from rag.grounded.chat import ChatGenerator
from rag.grounded.intent import ChatRewriter
from rag.local.embedder import LocalEmbedder

DOCS = {
    "vpn mac": [
        hit("vpn-macos", 0.9, "Install the Contoso VPN profile from Company Portal."),
        hit("vpn-windows", 0.8, "Windows laptops get the VPN from Intune."),
    ]
}


def azure_settings(make_settings, cloud, **extra: str):  # type: ignore[no-untyped-def]
    return make_settings(
        {
            "AZURE_OPENAI_ENDPOINT": cloud.url,
            "AZURE_OPENAI_KEY": "aoai-key",
            "AZURE_OPENAI_MODEL": "gpt-41",
            "RAGBOT_BACKEND": "grounded",
            **extra,
        }
    )


def pipeline(settings, results=DOCS) -> GroundedAnswerer:  # type: ignore[no-untyped-def]
    generator, rewriter = chat_or_extractive(settings, LocalEmbedder())
    return GroundedAnswerer(DictRetriever(results), generator, rewriter=rewriter, options=GroundingOptions())


async def test_azure_deployment_gets_the_numbered_documents(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.chat = lambda body: completion("Install the profile [doc1]; Windows differs [doc2]. Also [doc9].")
    bot = pipeline(azure_settings(make_settings, cloud, AZURE_OPENAI_STREAM="false"))
    answer = await bot.answer([], "vpn mac")
    (request,) = cloud.requests("/chat/completions")
    assert request.path == "/openai/deployments/gpt-41/chat/completions"
    assert request.query["api-version"] and request.headers["api-key"] == "aoai-key"
    assert "data_sources" not in request.body and "stream" not in request.body
    system = request.body["messages"][0]
    assert system["role"] == "system" and REFUSAL in system["content"]
    first, second = system["content"].index("[doc1] vpn-macos"), system["content"].index("[doc2] vpn-windows")
    assert first < system["content"].index("Install the Contoso VPN profile") < second
    assert request.body["messages"][-1] == {"role": "user", "content": "vpn mac"}
    assert (
        answer.content == "Install the profile [doc1]; Windows differs [doc2]. Also ."
    )  # [doc9] cites nothing
    assert [c.title for c in answer.citations] == ["vpn-macos", "vpn-windows"]
    assert answer.cited_numbers() == [1, 2] and answer.usage and answer.usage.total_tokens == 15


async def test_streaming_never_splits_a_marker(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.chat = lambda body: stream_events("Install it [do", "c1", "] and see [", "doc2]", ".")
    bot = pipeline(azure_settings(make_settings, cloud))
    deltas = [d async for d in bot.stream([], "vpn mac")]
    assert deltas[0].citations is not None and deltas[0].intent == ["vpn mac"]
    for delta in deltas:
        assert "[" not in DOC_MARKER.sub("", delta.content)
    builder = AnswerBuilder()
    for delta in deltas:
        builder.add(delta)
    answer = builder.build()
    assert answer.content == "Install it [doc1] and see [doc2]." and answer.finish_reason == "stop"
    assert cloud.requests("/chat/completions")[0].body["stream"] is True


async def test_follow_up_is_rewritten_by_the_model(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    def chat(body: dict[str, Any]) -> Any:
        if "JSON array" in body["messages"][0]["content"]:
            return completion('["vpn mac"]')
        return completion("Install the profile [doc1].")

    cloud.chat = chat
    bot = pipeline(azure_settings(make_settings, cloud, AZURE_OPENAI_STREAM="false"))
    assert isinstance(bot.rewriter, ChatRewriter)
    history = [
        Turn(role="user", content="vpn on windows?"),
        Turn(role="assistant", content="Intune.", intent=["vpn windows"]),
    ]
    answer = await bot.answer(history, "and on a Mac?")
    assert answer.intent == ["vpn mac"] and answer.citations[0].title == "vpn-macos"
    rewrite, grounded = cloud.requests("/chat/completions")
    assert '"vpn windows"' in rewrite.body["messages"][2]["content"]
    assert [m["role"] for m in grounded.body["messages"]] == ["system", "user", "assistant", "user"]
    assert all("context" not in m for m in grounded.body["messages"])


async def test_openai_compatible_endpoint(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.chat = lambda body: stream_events("From the profile [doc1].")
    settings = make_settings(
        {
            "RAGBOT_LLM_BASE_URL": cloud.url + "/v1",
            "RAGBOT_LLM_API_KEY": "llm-key",
            "RAGBOT_LLM_MODEL": "llama3.1",
            "RAGBOT_BACKEND": "grounded",
        }
    )
    bot = pipeline(settings)
    assert bot.generator.name == "openai"
    answer = await bot.answer([], "vpn mac")
    (request,) = cloud.requests("/chat/completions")
    assert request.path == "/v1/chat/completions" and request.body["model"] == "llama3.1"
    assert request.headers["Authorization"] == "Bearer llm-key"
    assert "[doc1] vpn-macos" in request.body["messages"][0]["content"]
    assert answer.content == "From the profile [doc1]." and answer.citations[0].title == "vpn-macos"


async def test_out_of_scope_prompt_allows_general_knowledge(cloud) -> None:  # type: ignore[no-untyped-def]
    cloud.chat = lambda body: completion("General answer.")
    client = AzureOpenAIClient(base_url=cloud.url, mode="openai", default_deployment="m")
    generator = ChatGenerator(
        client,
        name="openai",
        params=ChatParams(),
        role_information="You help.",
        in_scope=False,
        streaming=False,
    )
    bot = GroundedAnswerer(DictRetriever({}), generator, options=GroundingOptions(in_scope=False))
    answer = await bot.answer([], "what is DNS")
    system = cloud.requests("/chat/completions")[0].body["messages"][0]["content"]
    assert REFUSAL not in system and "general knowledge" in system and "(no documents were found)" in system
    assert answer.content == "General answer." and answer.citations == []
    await bot.aclose()
