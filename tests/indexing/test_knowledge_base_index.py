"""`ragbot index --target azure --knowledge-base NAME`: the knowledge source over the index and the knowledge
base, as the official 2026-04-01 examples shape them, created through the real CLI against the loopback
Azure AI Search; idempotent; `--dry-run` prints what it would send and sends nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from search_fake import FakeSearch
from test_azure_index import env

from indexing.knowledge_base import plan
from rag.settings import Settings
from ragbot.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "conformance" / "search"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"SearchServiceCreateOrUpdate{name}.json").read_text(encoding="utf-8"))


def test_bodies_match_the_official_examples(make_settings: Callable[[dict[str, str]], Settings]) -> None:
    """Our settings mapped to the examples' values give their bodies (less what ragbot never sets:
    encryption keys, etags, the examples' own field lists and descriptions)."""
    settings = make_settings(
        {
            "AZURE_SEARCH_ENDPOINT": "https://exampleservice.search.windows.net",
            "AZURE_SEARCH_INDEX": "example-index",
            "AZURE_SEARCH_SEMANTIC_SEARCH_CONFIG": "testconfig",
            "AZURE_SEARCH_KNOWLEDGE_SOURCE": "ks-example-index",
            "AZURE_OPENAI_ENDPOINT": "https://test-sample.openai.azure.com",
            "AZURE_OPENAI_MODEL": "myDeployment",
            "AZURE_OPENAI_MODEL_NAME": "gpt-4o-mini",
            "AZURE_OPENAI_KEY": "api-key",
        }
    )
    source, base = plan(settings, "base-example-index")
    wanted_source = example("KnowledgeSource")["parameters"]["knowledgeSource"]
    wanted_base = example("KnowledgeBase")["parameters"]["knowledgeBase"]
    assert set(source) <= set(wanted_source) and set(base) <= set(wanted_base)
    for key in ("name", "kind"):
        assert source[key] == wanted_source[key]
    ours, theirs = source["searchIndexParameters"], wanted_source["searchIndexParameters"]
    assert set(ours) <= set(theirs)
    assert ours["searchIndexName"] == theirs["searchIndexName"]
    assert ours["semanticConfigurationName"] == theirs["semanticConfigurationName"]
    assert ours["sourceDataFields"] == [
        {"name": f} for f in ("id", "content", "title", "url", "filepath", "chunk_id")
    ]
    for key in ("name", "knowledgeSources", "models"):
        assert base[key] == wanted_base[key]


async def ragbot_index(*args: str) -> int:
    return await asyncio.to_thread(main, ["index", *args])


async def test_index_creates_the_knowledge_source_and_base_idempotently(
    search: FakeSearch,
    make_settings: Callable[[dict[str, str]], Settings],
    kb: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_settings(env(search))
    assert await ragbot_index(str(kb), "--target", "azure", "--knowledge-base", "kb-agentic") == 0
    first = dict(search.knowledge)
    source, base = first["knowledgesources/kb"], first["knowledgebases/kb-agentic"]
    assert source["searchIndexParameters"]["searchIndexName"] == "kb" and source["kind"] == "searchIndex"
    assert source["searchIndexParameters"]["semanticConfigurationName"] == "kb-semantic"
    assert base["knowledgeSources"] == [{"name": "kb"}]
    assert base["models"] == [
        {
            "kind": "azureOpenAI",
            "azureOpenAIParameters": {
                "resourceUri": f"{search.url}/",
                "deploymentId": "gpt-4o",
                "apiKey": "aoai-key",
            },
        }
    ]
    puts = [r for r in search.requests if r.method == "PUT" and "knowledge" in r.path]
    assert [r.path for r in puts] == ["/knowledgesources('kb')", "/knowledgebases('kb-agentic')"]
    assert all(r.query["api-version"] == "2026-04-01" for r in puts)
    assert await ragbot_index(str(kb), "--target", "azure", "--knowledge-base", "kb-agentic") == 0
    assert search.knowledge == first  # the same definitions again: nothing changes
    assert "knowledge base kb-agentic over knowledge source kb is ready" in capsys.readouterr().err


async def test_dry_run_prints_the_json_and_sends_nothing(
    search: FakeSearch,
    make_settings: Callable[[dict[str, str]], Settings],
    kb: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_settings(env(search, AZURE_SEARCH_KNOWLEDGE_SOURCE="ks"))
    code = await ragbot_index(str(kb), "--target", "azure", "--knowledge-base", "kb-agentic", "--dry-run")
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["knowledgeSource"]["name"] == "ks"
    assert printed["knowledgeBase"]["knowledgeSources"] == [{"name": "ks"}]
    assert printed["knowledgeBase"]["models"][0]["azureOpenAIParameters"]["apiKey"] == "***"
    assert search.knowledge == {} and not [r for r in search.requests if "knowledge" in r.path]


async def test_knowledge_base_needs_the_azure_target(
    make_settings: Callable[[dict[str, str]], Settings], kb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings({})
    assert await ragbot_index(str(kb), "--target", "local", "--knowledge-base", "kb") == 2
    assert "--knowledge-base needs the azure target" in capsys.readouterr().err
