"""build_grounded: which retriever, generator and rewriter the settings select, and the knobs they carry."""

from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.factory import build_answerer
from rag.grounded.answerer import GroundedAnswerer
from rag.grounded.azure_search import AzureSearchRetriever
from rag.grounded.build import build_grounded
from rag.grounded.chat import ChatGenerator
from rag.grounded.extractive import ExtractiveGenerator
from rag.grounded.intent import ChatRewriter, FollowUpRewriter
from rag.local.retriever import LocalRetriever
from rag.settings import QueryType


def grounded(answerer: object) -> GroundedAnswerer:
    assert isinstance(answerer, GroundedAnswerer)
    return answerer


async def test_no_settings_is_the_local_default_with_a_helpful_ready_reason(make_settings) -> None:  # type: ignore[no-untyped-def]
    bot = grounded(build_answerer(make_settings({})))
    assert bot.name == "local"
    assert isinstance(bot.retriever, LocalRetriever) and isinstance(bot.generator, ExtractiveGenerator)
    assert isinstance(bot.rewriter, FollowUpRewriter)
    assert bot.retriever.query_type is QueryType.vector_simple_hybrid
    reason = await bot.ready()
    assert reason and "run `ragbot index samples/helpdesk` (or make run) first" in reason
    await bot.aclose()


def test_the_on_your_data_knobs_drive_the_local_backend(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        {
            "AZURE_SEARCH_STRICTNESS": "5",
            "AZURE_SEARCH_TOP_K": "2",
            "AZURE_SEARCH_ENABLE_IN_DOMAIN": "false",
            "AZURE_SEARCH_QUERY_TYPE": "simple",
            "AZURE_SEARCH_MAX_SEARCH_QUERIES": "4",
            "AZURE_SEARCH_INCLUDE_CONTEXTS": "citations,intent,all_retrieved_documents",
        }
    )
    bot = grounded(build_grounded(settings, local_only=True))
    options = bot.options
    assert (options.strictness, options.top_n_documents, options.in_scope) == (5, 2, False)
    assert options.max_search_queries == 4 and options.include_all_retrieved
    assert isinstance(bot.retriever, LocalRetriever) and bot.retriever.query_type is QueryType.simple


def test_an_odata_filter_is_refused_on_the_local_index(make_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="AZURE_SEARCH_FILTER"):
        build_grounded(make_settings({"AZURE_SEARCH_FILTER": "lang eq 'en'"}), local_only=True)


@pytest.mark.parametrize(
    ("env", "generator", "retriever"),
    [
        ({"RAGBOT_LLM_BASE_URL": "http://127.0.0.1:9/v1", "RAGBOT_LLM_MODEL": "m"}, "openai", LocalRetriever),
        (
            {
                "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
                "AZURE_OPENAI_KEY": "k",
                "AZURE_OPENAI_MODEL": "gpt-41",
            },
            "azure",
            LocalRetriever,
        ),
        (
            {
                "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
                "AZURE_OPENAI_KEY": "k",
                "AZURE_OPENAI_MODEL": "gpt-41",
                "AZURE_SEARCH_SERVICE": "s",
                "AZURE_SEARCH_INDEX": "i",
                "AZURE_SEARCH_KEY": "sk",
                "RAGBOT_BACKEND": "grounded",
            },
            "azure",
            AzureSearchRetriever,
        ),
        (
            {"AZURE_SEARCH_SERVICE": "s", "AZURE_SEARCH_INDEX": "i", "AZURE_SEARCH_KEY": "sk"},
            "extractive",
            AzureSearchRetriever,
        ),
    ],
)
async def test_grounded_picks_generator_and_retriever(make_settings, env, generator, retriever) -> None:  # type: ignore[no-untyped-def]
    bot = grounded(build_answerer(make_settings(env)))
    assert bot.name == "grounded"
    assert bot.generator.name == generator and isinstance(bot.retriever, retriever)
    expected_rewriter = FollowUpRewriter if generator == "extractive" else ChatRewriter
    assert isinstance(bot.rewriter, expected_rewriter)
    if isinstance(bot.generator, ChatGenerator):
        assert bot.generator.in_scope is True
    await bot.aclose()


@pytest.mark.parametrize(
    ("generator", "missing"), [("azure", "AZURE_OPENAI_ENDPOINT"), ("openai", "RAGBOT_LLM_BASE_URL")]
)
def test_a_forced_generator_needs_its_settings(make_settings, generator: str, missing: str) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings({"RAGBOT_BACKEND": "grounded", "RAGBOT_GENERATOR": generator})
    with pytest.raises(ConfigError, match=missing):
        build_grounded(settings, local_only=False)
