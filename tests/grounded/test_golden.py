"""Golden tests: for the same documents, the On Your Data backend (replaying the official 2024-10-21
example response) and the grounded backend (Azure AI Search + a chat deployment, both loopback fakes)
return Answers of the same shape and semantics; so do the grounded pipeline's three retrievers (Azure AI
Search, an Azure AI Search knowledge base, the local index)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grounded_fakes import Retrieved, completion

from rag.contract import Answer, AnswerBuilder, Turn
from rag.documents import Chunk
from rag.factory import build_answerer
from rag.grounded.answerer import GroundedAnswerer
from rag.local.embedder import LocalEmbedder
from rag.local.store import LocalStore

EXAMPLE = (
    Path(__file__).resolve().parents[1]
    / "conformance/aoai/2024-10-21/chat_completions_azure_search_advanced.json"
)


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def history_of(messages: list[dict[str, Any]]) -> list[Turn]:
    """The example's earlier messages as stored turns (the assistant turn carries its intent)."""
    turns = []
    for message in messages:
        intent = message.get("context", {}).get("intent")
        turns.append(
            Turn(role=message["role"], content=message["content"], intent=[intent] if intent else [])
        )
    return turns


def semantics(answer: Answer) -> dict[str, Any]:
    """What a consumer relies on: the text, which documents it cites, the citations in order, the intent."""
    return {
        "content": answer.content,
        "cited": [
            answer.citations[n - 1].model_dump(include={"content", "title", "url", "filepath"})
            for n in answer.cited_numbers()
        ],
        "citations": [
            c.model_dump(include={"content", "title", "url", "filepath"}) for c in answer.citations
        ],
        "intent": answer.intent,
        "finish_reason": answer.finish_reason,
        "refused": answer.refused,
    }


async def test_on_your_data_and_grounded_answers_agree(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    spec = example()
    request, response = spec["parameters"]["body"], spec["responses"]["200"]["body"]
    replayed = response["choices"][0]["message"]
    cited = replayed["context"]["citations"][0]
    *earlier, last = request["messages"]

    def chat(body: dict[str, Any]) -> Any:
        if "data_sources" in body:  # On Your Data: replay the recorded response
            return response
        if "JSON array" in body["messages"][0]["content"]:  # the grounded backend's query rewrite
            return completion(json.dumps([replayed["context"]["intent"]]))
        return completion(replayed["content"])

    cloud.chat = chat
    cloud.search_hits = [
        {
            "@search.score": 3.0,
            "id": "doc-0",
            "content": cited["content"],
            "title": cited["title"],
            "url": cited["url"],
            "filepath": cited["filepath"],
        }
    ]
    env = {
        "AZURE_OPENAI_ENDPOINT": cloud.url,
        "AZURE_OPENAI_KEY": "k",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "AZURE_OPENAI_STREAM": "false",
        "AZURE_SEARCH_ENDPOINT": cloud.url,
        "AZURE_SEARCH_INDEX": "index",
        "AZURE_SEARCH_KEY": "sk",
    }
    history = history_of(earlier)

    on_your_data = build_answerer(make_settings({**env, "RAGBOT_BACKEND": "on_your_data"}))
    grounded = build_answerer(make_settings({**env, "RAGBOT_BACKEND": "grounded"}))
    assert on_your_data.name == "on_your_data" and grounded.name == "grounded"
    assert isinstance(grounded, GroundedAnswerer)
    try:
        expected = await on_your_data.answer(history, last["content"])
        actual = await grounded.answer(history, last["content"])
        streamed = AnswerBuilder()
        async for delta in grounded.stream(history, last["content"]):
            streamed.add(delta)
    finally:
        await on_your_data.aclose()
        await grounded.aclose()

    assert type(actual) is type(expected)
    assert semantics(actual) == semantics(expected)
    assert semantics(streamed.build()) == semantics(expected)
    assert expected.intent == ["dog care"] and expected.cited_numbers() == [1]

    oyd_call, *grounded_calls = cloud.requests("/chat/completions")
    assert "data_sources" in oyd_call.body
    assert all("data_sources" not in call.body for call in grounded_calls)
    search = cloud.requests("/docs/search.post.search")[0].body
    assert search["search"] == "dog care"  # the rewritten intent is what was searched
    assert "[doc1] Citation Title 2" in grounded_calls[1].body["messages"][0]["content"]


DOCUMENT = {
    "id": "vpn-809",
    "content": "Error 809 means the VPN port is blocked by the network you are on.",
    "title": "VPN errors",
    "url": "https://kb.example/vpn-errors",
    "filepath": "it/vpn-errors.md",
    "chunk_id": "0",
}


async def test_index_knowledge_base_and_local_index_answer_alike(
    make_settings, cloud, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The same question through the three retrievers of the grounded pipeline, one chat model."""

    cloud.chat = lambda body: completion("Your network blocks the VPN port [doc1].")
    cloud.search_hits = [{"@search.score": 2.0, **DOCUMENT}]
    reference = {"type": "searchIndex", "id": "r1", "activitySource": 0, "sourceData": DOCUMENT}
    question = "what does vpn error 809 mean"  # a first question is searched as asked
    activity = {"type": "searchIndex", "id": 0, "searchIndexArguments": {"search": question}}
    cloud.retrieved = [
        Retrieved({"activity": [activity], "references": [{**reference, "rerankerScore": 3.2}]})
    ]
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    with LocalStore(data / "index.sqlite") as store:
        local_chunk = Chunk(**{**DOCUMENT, "content_hash": "h"})
        store.replace_file(
            local_chunk.filepath, [local_chunk], LocalEmbedder().embed_sync([DOCUMENT["content"]])
        )
    chat_env = {
        "AZURE_OPENAI_ENDPOINT": cloud.url,
        "AZURE_OPENAI_KEY": "k",
        "AZURE_OPENAI_MODEL": "gpt-4.1",
        "AZURE_OPENAI_STREAM": "false",
        "RAGBOT_DATA_DIR": str(data),
    }
    search_env = {"AZURE_SEARCH_ENDPOINT": cloud.url, "AZURE_SEARCH_KEY": "sk"}
    answers = {}
    for retriever, env in {
        "azure_search": {**chat_env, **search_env, "AZURE_SEARCH_INDEX": "kb"},
        "knowledge_base": {
            **chat_env,
            **search_env,
            "AZURE_SEARCH_KNOWLEDGE_BASE": "kb",
            "AZURE_SEARCH_KNOWLEDGE_SOURCE": "ks",
        },
        "local": chat_env,
    }.items():
        for name in ("AZURE_SEARCH_ENDPOINT", "AZURE_SEARCH_INDEX", "AZURE_SEARCH_KNOWLEDGE_BASE"):
            monkeypatch.delenv(name, raising=False)
        answerer = build_answerer(make_settings(env))
        assert isinstance(answerer, GroundedAnswerer) and answerer.retriever.name == retriever
        try:
            answers[retriever] = await answerer.answer([], question + "?")
        finally:
            await answerer.aclose()
    shapes = {name: semantics(answer) for name, answer in answers.items()}
    assert shapes["azure_search"] == shapes["knowledge_base"] == shapes["local"]
    assert shapes["local"]["intent"] == [question] and shapes["local"]["cited"][0]["title"] == "VPN errors"
    assert all(type(a) is Answer and a.citations[0].chunk_id == "0" for a in answers.values())
