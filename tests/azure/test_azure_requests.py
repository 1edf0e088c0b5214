"""Request building per api-version (pure functions), start-up validation, security trimming, history,
and response parsing beyond the official examples."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from rag.azure.chat_request import history_messages
from rag.azure.dialects import dialect
from rag.azure.on_your_data import OnYourDataAnswerer
from rag.azure.responses import parse_completion
from rag.contract import Answerer, Asker, Citation, Turn
from rag.errors import ConfigError
from rag.factory import build_answerer
from rag.settings import Settings
from rag.tokens import count_tokens

BASE = {
    "AZURE_OPENAI_ENDPOINT": "https://aoai.example",
    "AZURE_OPENAI_KEY": "k",
    "AZURE_OPENAI_MODEL": "gpt-4o",
    "AZURE_SEARCH_SERVICE": "contoso",
    "AZURE_SEARCH_INDEX": "kb",
    "AZURE_SEARCH_KEY": "search-key",
}

MakeSettings = Callable[[dict[str, str]], Settings]


def build(make_settings: MakeSettings, version: str, **env: str) -> OnYourDataAnswerer:
    return OnYourDataAnswerer.from_settings(
        make_settings({**BASE, "AZURE_OPENAI_PREVIEW_API_VERSION": version, **env})
    )


def params(answerer: OnYourDataAnswerer, user: Asker | None = None) -> dict[str, Any]:
    body = answerer.request([], "q", user)
    key = "dataSources" if answerer.dialect.legacy else "data_sources"
    parameters = body[key][0]["parameters"]
    assert isinstance(parameters, dict)
    return parameters


def test_unknown_api_version_fails_at_start_up(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match=r"2099-01-01.*supported"):
        make_settings({**BASE, "AZURE_OPENAI_PREVIEW_API_VERSION": "2099-01-01"})
    with pytest.raises(ConfigError, match="2024-10-21"):
        dialect("2024-13-01")


def test_default_version_is_ga(make_settings: MakeSettings) -> None:
    answerer = build(make_settings, "2024-10-21")
    default = OnYourDataAnswerer.from_settings(make_settings(BASE))
    assert default.dialect == answerer.dialect
    assert default.dialect.version == "2024-10-21"


@pytest.mark.parametrize(
    ("version", "env", "named"),
    [
        ("2024-10-21", {"AZURE_SEARCH_MAX_SEARCH_QUERIES": "3"}, "AZURE_SEARCH_MAX_SEARCH_QUERIES"),
        (
            "2024-02-15-preview",
            {"AZURE_SEARCH_ALLOW_PARTIAL_RESULT": "true"},
            "AZURE_SEARCH_ALLOW_PARTIAL_RESULT",
        ),
        (
            "2024-10-21",
            {"AZURE_SEARCH_INCLUDE_CONTEXTS": "citations,intent"},
            "AZURE_SEARCH_INCLUDE_CONTEXTS",
        ),
        (
            "2023-12-01-preview",
            {"AZURE_SEARCH_KEY": "", "AZURE_SEARCH_ACCESS_TOKEN": "t"},
            "AZURE_SEARCH_ACCESS_TOKEN",
        ),
        (
            "2024-10-21",
            {"AZURE_SEARCH_QUERY_TYPE": "vector", "AZURE_SEARCH_USE_INTEGRATED_VECTORIZATION": "true"},
            "AZURE_SEARCH_USE_INTEGRATED_VECTORIZATION",
        ),
        (
            "2024-10-21",
            {
                "AZURE_SEARCH_QUERY_TYPE": "vector",
                "AZURE_OPENAI_EMBEDDING_NAME": "emb",
                "AZURE_OPENAI_EMBEDDING_DIMENSIONS": "256",
            },
            "AZURE_OPENAI_EMBEDDING_DIMENSIONS",
        ),
        ("2023-08-01-preview", {"AZURE_SEARCH_KEY": ""}, "managed identity"),
    ],
)
def test_parameter_the_version_lacks_names_both(
    version: str, env: dict[str, str], named: str, make_settings: MakeSettings
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(make_settings, version, **env)
    assert named in str(caught.value) and version in str(caught.value)


def test_vector_query_without_embedding_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="AZURE_OPENAI_EMBEDDING_NAME"):
        build(make_settings, "2024-10-21", AZURE_SEARCH_QUERY_TYPE="vector")


@pytest.mark.parametrize("name", ["LOGPROBS", "TOP_LOGPROBS"])
def test_parameters_refused_with_data_sources(name: str, make_settings: MakeSettings) -> None:
    value = "true" if name == "LOGPROBS" else "3"
    with pytest.raises(ConfigError, match=f"AZURE_OPENAI_{name}.*alongside data_sources"):
        build(make_settings, "2024-10-21", **{f"AZURE_OPENAI_{name}": value})


@pytest.mark.parametrize("version", ["2023-06-01-preview", "2023-08-01-preview", "2023-12-01-preview"])
@pytest.mark.parametrize(
    ("variable", "value"), [("AZURE_OPENAI_SEED", "42"), ("AZURE_OPENAI_CHOICES_COUNT", "2")]
)
def test_extensions_versions_refuse_n_and_seed(
    make_settings: MakeSettings, version: str, variable: str, value: str
) -> None:
    """The 2023 extensions endpoint's schema declares neither `n` nor `seed`: refused at start-up."""
    with pytest.raises(ConfigError, match=rf"{variable} cannot be used .* {version}.*2024-02-15-preview"):
        build(make_settings, version, **{variable: value})
    body = build(make_settings, "2024-02-15-preview", **{variable: value}).request([], "q")
    assert body.get("seed", body.get("n")) == int(value)


def test_newest_version_sends_every_new_parameter(make_settings: MakeSettings) -> None:
    answerer = build(
        make_settings,
        "2025-04-01-preview",
        AZURE_SEARCH_KEY="",
        AZURE_SEARCH_ACCESS_TOKEN="search-token",
        AZURE_SEARCH_QUERY_TYPE="vectorSemanticHybrid",
        AZURE_SEARCH_SEMANTIC_SEARCH_CONFIG="my-semantic",
        AZURE_SEARCH_USE_INTEGRATED_VECTORIZATION="true",
        AZURE_SEARCH_MAX_SEARCH_QUERIES="3",
        AZURE_SEARCH_ALLOW_PARTIAL_RESULT="true",
        AZURE_SEARCH_INCLUDE_CONTEXTS="citations,intent,all_retrieved_documents",
        AZURE_SEARCH_FILTER="lang eq 'en'",
        AZURE_SEARCH_STRICTNESS="5",
        AZURE_SEARCH_TOP_K="7",
        AZURE_SEARCH_ENABLE_IN_DOMAIN="false",
    )
    got = params(answerer)
    assert got["authentication"] == {"type": "access_token", "access_token": "search-token"}
    assert got["query_type"] == "vector_semantic_hybrid"
    assert got["semantic_configuration"] == "my-semantic"
    assert got["embedding_dependency"] == {"type": "integrated"}
    assert got["max_search_queries"] == 3 and got["allow_partial_result"] is True
    assert got["include_contexts"] == ["citations", "intent", "all_retrieved_documents"]
    assert got["filter"] == "lang eq 'en'"
    assert (got["strictness"], got["top_n_documents"], got["in_scope"]) == (5, 7, False)
    assert got["endpoint"] == "https://contoso.search.windows.net"
    assert "role_information" not in got
    body = answerer.request([], "q")
    assert body["messages"][0]["role"] == "system"  # role information moved to the system message


def test_endpoint_embedding_dependency(make_settings: MakeSettings) -> None:
    answerer = build(
        make_settings,
        "2025-04-01-preview",
        AZURE_SEARCH_QUERY_TYPE="vector_simple_hybrid",
        AZURE_OPENAI_EMBEDDING_NAME="emb-3",
        AZURE_OPENAI_EMBEDDING_ENDPOINT="https://other.openai.azure.com/",
        AZURE_OPENAI_EMBEDDING_KEY="emb-key",
        AZURE_OPENAI_EMBEDDING_DIMENSIONS="256",
    )
    got = params(answerer)
    assert got["embedding_dependency"] == {
        "type": "endpoint",
        "endpoint": "https://other.openai.azure.com/openai/deployments/emb-3/embeddings",
        "authentication": {"type": "api_key", "key": "emb-key"},
        "dimensions": 256,
    }
    assert got["fields_mapping"]["vector_fields"] == ["contentVector"]  # the IndexSpec default


@pytest.mark.parametrize("version", ["2023-06-01-preview", "2023-08-01-preview"])
def test_oldest_versions_use_flat_keys(version: str, make_settings: MakeSettings) -> None:
    answerer = build(
        make_settings,
        version,
        AZURE_SEARCH_QUERY_TYPE="vector_semantic_hybrid",
        AZURE_OPENAI_EMBEDDING_NAME="emb",
        AZURE_OPENAI_EMBEDDING_ENDPOINT="https://aoai.example/openai/deployments/emb/embeddings?api-version=x",
        AZURE_OPENAI_EMBEDDING_KEY="emb-key",
    )
    body = answerer.request([], "q")
    source = body["dataSources"][0]
    assert source["type"] == "AzureCognitiveSearch"
    got = source["parameters"]
    assert got["key"] == "search-key" and "authentication" not in got
    assert got["queryType"] == "vectorSemanticHybrid"
    assert got["semanticConfiguration"] == "default"
    assert got["embeddingEndpoint"] == "https://aoai.example/openai/deployments/emb/embeddings"
    assert got["embeddingKey"] == "emb-key"
    assert got["fieldsMapping"]["contentFields"] == ["content"]
    assert got["roleInformation"].startswith("You are an AI assistant")
    assert "data_sources" not in body


def test_chat_parameters_are_all_sent(make_settings: MakeSettings) -> None:
    answerer = build(
        make_settings,
        "2024-10-21",
        AZURE_OPENAI_TEMPERATURE="0.3",
        AZURE_OPENAI_TOP_P="0.9",
        AZURE_OPENAI_MAX_TOKENS="512",
        AZURE_OPENAI_STOP_SEQUENCE="END|STOP",
        AZURE_OPENAI_PRESENCE_PENALTY="0.5",
        AZURE_OPENAI_FREQUENCY_PENALTY="-0.5",
        AZURE_OPENAI_LOGIT_BIAS='{"50256": -100}',
        AZURE_OPENAI_SEED="42",
        AZURE_OPENAI_CHOICES_COUNT="2",
    )
    body = answerer.request([], "q", Asker(aad_object_id="0000-aad"))
    sent = {k: v for k, v in body.items() if k not in ("messages", "data_sources")}
    user = sent.pop("user")
    assert sent == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 512,
        "stop": ["END", "STOP"],
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "seed": 42,
        "n": 2,
    }
    assert re.fullmatch(r"[0-9a-f]{32}", user) and "0000-aad" not in user


def test_the_trimming_filter_is_combined_and_escaped(make_settings: MakeSettings) -> None:
    answerer = build(
        make_settings,
        "2024-10-21",
        AZURE_SEARCH_PERMITTED_GROUPS_COLUMN="group_ids",
        AZURE_SEARCH_PERMITTED_USERS_COLUMN="oids",
        AZURE_SEARCH_FILTER="lang eq 'en'",
    )
    hostile = "x') or true or ('"
    public = "(not group_ids/any() and not oids/any())"
    got = params(answerer, Asker(groups=["g-1", hostile, "a,b"], aad_object_id="o'id"))
    assert got["filter"] == (
        f"(lang eq 'en') and ({public} or group_ids/any(g: search.in(g, 'g-1,x'') or true or (''', ',') "
        "or g eq 'a,b') or oids/any(u: search.in(u, 'o''id', ',')))"
    )
    assert params(answerer)["filter"] == f"(lang eq 'en') and ({public})"  # anonymous: public only


def test_without_access_fields_nothing_is_trimmed(make_settings: MakeSettings) -> None:
    answerer = build(make_settings, "2024-10-21", AZURE_SEARCH_FILTER="lang eq 'en'")
    assert params(answerer, Asker(groups=["g-1"]))["filter"] == "lang eq 'en'"


@pytest.mark.parametrize(
    "setting", ["AZURE_SEARCH_PERMITTED_GROUPS_COLUMN", "AZURE_SEARCH_PERMITTED_USERS_COLUMN"]
)
def test_access_columns_must_be_field_names(make_settings: MakeSettings, setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        build(make_settings, "2024-10-21", **{setting: "x) or (true"})


def _turns(n: int, words: int) -> list[Turn]:
    turns: list[Turn] = []
    for i in range(n):
        turns.append(Turn(role="user", content=f"question {i} " + "word " * words))
        turns.append(Turn(role="assistant", content=f"answer {i} " + "word " * words, intent=[f"q{i}"]))
    return turns


def test_history_is_capped_by_token_budget_newest_kept() -> None:
    api = dialect("2024-10-21")
    turns = _turns(10, 40)
    kept = history_messages(turns, api, 300)
    used = sum(count_tokens(m["content"]) + count_tokens(json.dumps(m.get("context", ""))) for m in kept)
    assert 0 < used <= 300
    assert kept[0]["role"] == "user"
    assert kept[-1]["content"].startswith("answer 9")
    assert kept[-1]["context"] == {"intent": "q9"}
    assert len(kept) < len(turns)
    assert history_messages(turns, api, 0) == []
    assert len(history_messages(turns, api, 100_000)) == len(turns)


def test_a_history_sent_again_is_not_tokenized_again() -> None:
    api = dialect("2024-10-21")
    turns = [
        Turn(role="user" if i % 2 == 0 else "assistant", content=f"{uuid.uuid4()} " + "word " * 50)
        for i in range(12)
    ]
    first = history_messages(turns, api, 100_000)
    before = count_tokens.cache_info()
    assert history_messages(turns, api, 100_000) == first
    after = count_tokens.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


def test_history_in_legacy_dialect_carries_the_tool_message() -> None:
    cited = Citation(content="Port 1723.", title="VPN errors", url="https://kb/vpn", chunk_id="3")
    turns = [
        Turn(role="user", content="vpn?"),
        Turn(
            role="assistant", content="Open port 1723 [doc1].", citations=[cited], intent=["vpn", "vpn port"]
        ),
    ]
    messages = history_messages(turns, dialect("2023-12-01-preview"), 2000)
    assert [m["role"] for m in messages] == ["user", "tool", "assistant"]
    tool = json.loads(messages[1]["content"])
    assert tool == {
        "citations": [
            {"content": "Port 1723.", "title": "VPN errors", "url": "https://kb/vpn", "chunk_id": "3"}
        ],
        "intent": '["vpn", "vpn port"]',
    }
    modern = history_messages(turns, dialect("2024-02-15-preview"), 2000)
    assert modern[1] == {
        "role": "assistant",
        "content": "Open port 1723 [doc1].",
        "context": {"intent": '["vpn", "vpn port"]'},
    }


def test_response_with_n_choices_retrieved_documents_and_rerank_scores() -> None:
    context = {
        "citations": [{"content": "A", "title": "a", "rerank_score": 3.1, "chunk_id": 2}],
        "intent": '["first query", "second query"]',
        "all_retrieved_documents": [
            {
                "content": "A",
                "title": "a",
                "search_queries": ["first query"],
                "data_source_index": 0,
                "original_search_score": 12.5,
                "rerank_score": 3.1,
            },
            {
                "content": "B",
                "search_queries": ["second query"],
                "data_source_index": 0,
                "filter_reason": "score",
            },
        ],
    }
    body = {
        "choices": [
            {
                "index": 1,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": "Two", "context": {}},
            },
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "One [doc1].", "context": context},
                "content_filter_results": {
                    "hate": {"filtered": False, "severity": "safe"},
                    "custom_blocklists": [{"filtered": False, "id": "words"}],
                },
            },
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    answer = parse_completion(body)
    assert answer.content == "One [doc1]." and answer.finish_reason == "stop"
    assert answer.citations[0].score == 3.1 and answer.citations[0].chunk_id == "2"
    assert answer.intent == ["first query", "second query"]
    assert [d.filter_reason for d in answer.all_retrieved_documents] == [None, "score"]
    assert answer.all_retrieved_documents[0].original_search_score == 12.5
    assert [(f.category, f.filtered) for f in answer.content_filter] == [
        ("hate", False),
        ("custom_blocklists:words", False),
    ]
    assert [(a.content, a.finish_reason) for a in answer.alternatives] == [("Two", "length")]


def test_legacy_response_shapes() -> None:
    tool = json.dumps(
        {
            "citations": [
                {"filepath": "ContosoTraveler.pdf", "content": "citation 1"},
                {"content": "citation 3 without filepath"},
            ],
            "intent": "hiking place in seattle",
        }
    )
    august = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "Hike Snow Lake [doc1].",
                    "end_turn": True,
                    "context": {"messages": [{"role": "tool", "content": tool, "end_turn": False}]},
                },
            }
        ]
    }
    june = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "messages": [
                    {"role": "tool", "content": tool, "end_turn": False},
                    {"role": "assistant", "content": "Hike Snow Lake [doc1].", "end_turn": True},
                ],
            }
        ]
    }
    for body in (august, june):
        answer = parse_completion(body)
        assert answer.content == "Hike Snow Lake [doc1]."
        assert [c.filepath for c in answer.citations] == ["ContosoTraveler.pdf", None]
        assert answer.intent == ["hiking place in seattle"]


async def test_on_your_data_only_by_name_and_with_one_retirement_warning(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    automatic = build_answerer(make_settings(BASE))
    await automatic.aclose()
    assert automatic.name == "grounded" and not caplog.records
    answerer = build_answerer(make_settings({**BASE, "RAGBOT_BACKEND": "on_your_data"}))
    try:
        assert isinstance(answerer, OnYourDataAnswerer) and isinstance(answerer, Answerer)
        assert answerer.name == "on_your_data" and await answerer.ready() is None
        (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert "retired on 2026-10-14" in warning.message and "RAGBOT_BACKEND=grounded" in warning.message
    finally:
        await answerer.aclose()
