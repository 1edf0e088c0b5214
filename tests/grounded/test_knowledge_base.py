"""KnowledgeBaseRetriever against a loopback fake replaying the official 2026-04-01 examples in
tests/conformance/search/: what azure-search-documents' KnowledgeBaseRetrievalClient puts on the wire for
our settings, how every example response becomes hits and an Answer, partial results, trimming and faults."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from grounded_fakes import Retrieved, completion

from bot.app import create_app
from bot.settings import BotSettings
from rag.contract import Asker
from rag.errors import AuthError, DataSourceError, Throttled
from rag.factory import build_answerer
from rag.grounded.answerer import GroundedAnswerer
from rag.grounded.build import azure_retriever
from rag.grounded.knowledge_base import RERANKER_THRESHOLDS, KnowledgeBaseRetriever
from ragbot.cli import main
from tests.bot.fakes import FakeConnector, activity

EXAMPLES = Path(__file__).resolve().parents[1] / "conformance" / "search"
WITH_INTENTS = "KnowledgeBaseRetrieveWithIntents.json"
RETRIEVE_EXAMPLES = ["KnowledgeBaseRetrieve.json", WITH_INTENTS]


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def example_env(url: str, **extra: str) -> dict[str, str]:
    """Our settings mapped to the example's values (its endpoint is the loopback fake)."""
    return {
        "AZURE_SEARCH_ENDPOINT": url,
        "AZURE_SEARCH_KEY": "search-key",
        "AZURE_SEARCH_KNOWLEDGE_BASE": "base-example-index",
        "AZURE_SEARCH_KNOWLEDGE_SOURCE": "ks-example-index",
        "AZURE_SEARCH_FILTER": "foo eq bar",
        "AZURE_SEARCH_RERANKER_THRESHOLD": "2.1",
        "AZURE_SEARCH_MAX_OUTPUT_TOKENS": "100000",
        "RAGBOT_REQUEST_TIMEOUT": "60",
        "RAGBOT_RETRY_BUDGET": "1",
        **extra,
    }


def knowledge_base(make_settings, cloud, **extra: str) -> KnowledgeBaseRetriever:  # type: ignore[no-untyped-def]
    retriever = azure_retriever(make_settings(example_env(cloud.url, **extra)))
    assert isinstance(retriever, KnowledgeBaseRetriever)
    return retriever


async def test_the_request_equals_the_official_example(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    spec = example(WITH_INTENTS)
    cloud.retrieved = [Retrieved(spec["responses"]["200"]["body"])]
    retriever = knowledge_base(make_settings, cloud)
    hits = await retriever.retrieve("foo", top=20)
    await retriever.aclose()
    (seen,) = cloud.requests("/retrieve")
    assert seen.method == "POST" and seen.path == "/knowledgebases('base-example-index')/retrieve"
    assert seen.query == {"api-version": spec["parameters"]["api-version"]}
    assert seen.headers["api-key"] == "search-key"
    assert seen.body == spec["parameters"]["retrievalRequest"]
    assert [h.chunk.id for h in hits] == ["myDocKey1", "myDocKey2"]
    assert [h.chunk.title for h in hits] == ["high_doc", "low_doc"]
    assert [h.chunk.content for h in hits] == ["hello world", "goodbye world"]
    assert [h.rerank_score for h in hits] == [3.5 / 4, 2.7 / 4] and [h.query for h in hits] == ["foo", "foo"]


@pytest.mark.parametrize("name", RETRIEVE_EXAMPLES)
@pytest.mark.parametrize("status", ["200", "206"])
async def test_every_example_response_becomes_an_answer(  # type: ignore[no-untyped-def]
    make_settings, cloud, caplog: pytest.LogCaptureFixture, name: str, status: str
) -> None:
    spec = example(name)
    body = spec["responses"][status]["body"]
    ran = [a["searchIndexArguments"]["search"] for a in body["activity"] if a.get("searchIndexArguments")]
    cloud.retrieved = [Retrieved(body, status=int(status))]
    cloud.chat = lambda request: completion("Hello is the high doc [doc1]; goodbye the low one [doc2].")
    env = example_env(
        cloud.url,
        AZURE_OPENAI_ENDPOINT=cloud.url,
        AZURE_OPENAI_KEY="k",
        AZURE_OPENAI_MODEL="gpt-4.1",
        AZURE_OPENAI_STREAM="false",
        AZURE_SEARCH_STRICTNESS="1",
    )
    answerer = build_answerer(make_settings(env))
    assert isinstance(answerer, GroundedAnswerer) and answerer.retriever.name == "knowledge_base"
    try:
        answer = await answerer.answer([], ran[0])
    finally:
        await answerer.aclose()
    assert answer.cited_numbers() == [1, 2]
    assert [(c.title, c.content) for c in answer.citations] == [
        ("high_doc", "hello world"),
        ("low_doc", "goodbye world"),
    ]
    assert answer.citations[0].score == 3.5 / 4
    assert answer.intent == [ran[0]]  # the query the service reports it ran for these references
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if status == "206":
        (warning,) = warnings
        assert "'ks-preview-web' failed (403: The error message)" in warning
    else:
        assert warnings == []


async def test_strictness_maps_to_the_documented_reranker_threshold(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    assert RERANKER_THRESHOLDS == {1: 1.2, 2: 1.36, 3: 1.64, 4: 1.76, 5: 1.92}
    for strictness, threshold in RERANKER_THRESHOLDS.items():
        env = example_env(cloud.url, AZURE_SEARCH_STRICTNESS=str(strictness))
        del env["AZURE_SEARCH_RERANKER_THRESHOLD"]
        retriever = azure_retriever(make_settings(env))
        assert isinstance(retriever, KnowledgeBaseRetriever)
        (params,) = retriever.request("q")["knowledgeSourceParams"]
        assert params["rerankerThreshold"] == threshold
        await retriever.aclose()


async def test_references_are_capped_at_top_best_first(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    body = example(WITH_INTENTS)["responses"]["200"]["body"]
    body = {**body, "references": list(reversed(body["references"]))}
    cloud.retrieved = [Retrieved(body)]
    retriever = knowledge_base(make_settings, cloud)
    hits = await retriever.retrieve("foo", top=1)
    await retriever.aclose()
    assert [h.chunk.id for h in hits] == ["myDocKey1"]


PUBLIC = "(not groups/any() and not oids/any())"


@pytest.mark.parametrize(
    ("asker", "add_on"),
    [
        (
            Asker(groups=["g1", "o'brien"], aad_object_id="oid-1"),
            f"(foo eq bar) and ({PUBLIC} or groups/any(g: search.in(g, 'g1,o''brien', ',')) "
            "or oids/any(u: search.in(u, 'oid-1', ',')))",
        ),
        (
            Asker(aad_object_id="oid-1"),
            f"(foo eq bar) and ({PUBLIC} or oids/any(u: search.in(u, 'oid-1', ',')))",
        ),
        (Asker(groups=["a,b"]), f"(foo eq bar) and ({PUBLIC} or groups/any(g: g eq 'a,b'))"),
        (Asker(), f"(foo eq bar) and ({PUBLIC})"),
        (None, f"(foo eq bar) and ({PUBLIC})"),  # trimming on: never unfiltered
    ],
)
async def test_security_trimming_goes_into_the_filter_add_on(  # type: ignore[no-untyped-def]
    make_settings, cloud, asker: Asker | None, add_on: str
) -> None:
    cloud.retrieved = [Retrieved({"activity": [], "references": []})]
    retriever = knowledge_base(
        make_settings,
        cloud,
        AZURE_SEARCH_PERMITTED_GROUPS_COLUMN="groups",
        AZURE_SEARCH_PERMITTED_USERS_COLUMN="oids",
    )
    assert await retriever.retrieve("q", top=5, asker=asker) == []
    await retriever.aclose()
    (params,) = cloud.requests("/retrieve")[0].body["knowledgeSourceParams"]
    assert params["filterAddOn"] == add_on


async def test_throttling_is_retried_as_the_service_asks(make_settings, cloud) -> None:  # type: ignore[no-untyped-def]
    busy = Retrieved({"error": {"code": "Throttled", "message": "slow down"}}, 429, {"retry-after-ms": "10"})
    ok = Retrieved(example(WITH_INTENTS)["responses"]["200"]["body"])
    cloud.retrieved = [busy, ok]
    retriever = knowledge_base(make_settings, cloud)
    assert len(await retriever.retrieve("foo", top=5)) == 2
    assert len(cloud.requests("/retrieve")) == 2
    cloud.retrieved = [busy]
    with pytest.raises(Throttled, match="still throttled") as info:
        await retriever.retrieve("foo", top=5)
    assert info.value.retry_after == 0.01
    cloud.seen.clear()
    cloud.retrieved = [Retrieved(busy.body, 429, {"Retry-After": "30"})]
    with pytest.raises(Throttled) as info:  # a wait beyond RAGBOT_RETRY_BUDGET is not waited out
        await retriever.retrieve("foo", top=5)
    assert info.value.retry_after == 30 and len(cloud.requests("/retrieve")) == 1
    await retriever.aclose()


@pytest.mark.parametrize(
    ("status", "error", "ready"),
    [(403, AuthError, "refused the credentials"), (404, DataSourceError, "'base-example-index' not found")],
)
async def test_refusals_are_typed_and_reported_by_ready(  # type: ignore[no-untyped-def]
    make_settings, cloud, status: int, error: type[Exception], ready: str
) -> None:
    cloud.retrieved = [Retrieved({"error": {"code": "Nope", "message": "no"}}, status)]
    retriever = knowledge_base(make_settings, cloud)
    with pytest.raises(error):
        await retriever.retrieve("foo", top=5)
    assert ready in (await retriever.ready() or "")
    await retriever.aclose()


async def test_ragbot_ask_answers_through_the_knowledge_base(  # type: ignore[no-untyped-def]
    make_settings, cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ragbot ask --stream` and `--json`: retrieval first, then the chat model streams; citations and the
    intent come from the knowledge base."""
    cloud.retrieved = [Retrieved(example(WITH_INTENTS)["responses"]["200"]["body"])]
    words = ["Hello is the ", "high doc [do", "c1]."]
    events = [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in words]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    cloud.chat = lambda body: events if body.get("stream") else completion("".join(words))
    make_settings(
        example_env(
            cloud.url, AZURE_OPENAI_ENDPOINT=cloud.url, AZURE_OPENAI_KEY="k", AZURE_OPENAI_MODEL="gpt-4.1"
        )
    )
    assert await asyncio.to_thread(main, ["ask", "--stream", "foo"]) == 0
    streamed = capsys.readouterr().out
    assert streamed.startswith("Hello is the high doc [1].") and "[1] high_doc" in streamed
    assert "(searched for: foo)" in streamed
    assert await asyncio.to_thread(main, ["ask", "--json", "foo"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["content"] == "Hello is the high doc [doc1]." and answer["intent"] == ["foo"]
    assert [c["title"] for c in answer["citations"]] == ["high_doc"]
    assert [c["title"] for c in answer["retrieved"]] == ["high_doc", "low_doc"]
    assert len(cloud.requests("/retrieve")) == 2


async def test_the_bot_answers_through_the_knowledge_base(  # type: ignore[no-untyped-def]
    make_settings, cloud, aiohttp_client, aiohttp_server, tmp_path: Path
) -> None:
    """A Teams turn through the real bot app: the citations and the intent come from the knowledge base."""
    cloud.retrieved = [Retrieved(example(WITH_INTENTS)["responses"]["200"]["body"])]
    cloud.chat = lambda body: completion("Hello is the high doc [doc1].")
    env = example_env(
        cloud.url,
        AZURE_OPENAI_ENDPOINT=cloud.url,
        AZURE_OPENAI_KEY="k",
        AZURE_OPENAI_MODEL="gpt-4.1",
        AZURE_OPENAI_STREAM="false",
    )
    connector = FakeConnector()
    service_url = str((await aiohttp_server(connector.app)).make_url("")).rstrip("/") + "/"
    answerer = build_answerer(make_settings(env))
    client = await aiohttp_client(create_app(BotSettings(_env_file=None, data_dir=tmp_path), answerer))
    response = await client.post("/api/messages", json=activity(service_url, "foo", conversation_id="kb-1"))
    assert response.status == 200, await response.text()
    (reply,) = [r for r in connector.in_conversation("kb-1") if r.type == "message"]
    assert reply.text.startswith("Hello is the high doc [1]")
    citations = [e for e in reply.activity.get("entities", []) if e.get("@type") == "Message"]
    assert citations and citations[0]["citation"][0]["appearance"]["name"] == "high_doc"
    (retrieve,) = cloud.requests("/retrieve")
    assert retrieve.body["intents"] == [{"type": "semantic", "search": "foo"}]


async def test_with_trimming_references_from_other_knowledge_sources_are_dropped(  # type: ignore[no-untyped-def]
    make_settings, cloud, caplog
) -> None:
    """filterAddOn filters this knowledge source only; a web source in the same knowledge base is not."""
    body = example(WITH_INTENTS)["responses"]["200"]["body"]
    web_activity = {"type": "web", "id": 9, "knowledgeSourceName": "ks-web"}
    web_reference = {
        "type": "web",
        "id": "w1",
        "activitySource": 9,
        "url": "https://x.example",
        "title": "Web",
    }
    body = {
        **body,
        "activity": [*body["activity"], web_activity],
        "references": [*body["references"], web_reference],
    }
    cloud.retrieved = [Retrieved(body)]
    untrimmed = knowledge_base(make_settings, cloud)
    assert len(await untrimmed.retrieve("foo", top=20)) == 3
    await untrimmed.aclose()
    trimmed = knowledge_base(make_settings, cloud, AZURE_SEARCH_PERMITTED_GROUPS_COLUMN="groups")
    hits = await trimmed.retrieve("foo", top=20, asker=Asker(groups=["g1"]))
    await trimmed.aclose()
    assert [h.chunk.id for h in hits] == ["myDocKey1", "myDocKey2"]
    assert "1 references from 'ks-web' dropped" in caplog.text
