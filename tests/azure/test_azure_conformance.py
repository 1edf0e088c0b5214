"""Every official example in tests/conformance/aoai/ replayed both ways over loopback HTTP:
the request ragbot builds from equivalent settings equals the example's request (key order and secrets
ignored), and the example's response parses into the expected Answer.

Three kinds of example:
- azure_search examples ragbot can produce: built from settings (environment variables) by
  OnYourDataAnswerer end to end. ragbot always sends temperature, top_p and max_tokens (its defaults
  differ from the service's), so those three keys are added to the expected body. In 2025-04-01-preview
  `role_information` is no longer in the schema, so ragbot carries it as a system message.
- examples whose messages include a system prompt ragbot does not write (the legacy 2023-12 example),
  plain chat examples (used by the grounded backend) and other data source types ragbot does not
  configure (Cosmos DB, Elasticsearch, Pinecone, AML index, MongoDB, image vectors, the 2023-08
  placeholder): built by the pure request builder with the same client; foreign data sources are passed
  through verbatim, so for those the envelope (path, api-version, `dataSources`/`data_sources`) and the
  messages are what is checked.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure_fake import FakeAzure, Reply

from rag.azure.chat_request import build_request
from rag.azure.client import AzureOpenAIClient
from rag.azure.data_source import AzureSearchSource, data_source
from rag.azure.dialects import dialect
from rag.azure.on_your_data import OnYourDataAnswerer
from rag.azure.responses import parse_completion
from rag.contract import Answer, Citation, Turn, Usage
from rag.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "conformance" / "aoai"
SECRET_KEYS = {"key", "api_key", "access_token", "password", "connection_string", "embeddingKey", "key_id"}
CHAT_DEFAULTS = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1000}
DEPLOYMENT = "<deployment-id>"

MINIMUM_ENV = {
    "AZURE_SEARCH_ENDPOINT": "https://your-search-endpoint.search.windows.net/",
    "AZURE_SEARCH_INDEX": "{index name}",
    "AZURE_SEARCH_CONTENT_COLUMNS": "",
    "AZURE_SEARCH_TITLE_COLUMN": "",
    "AZURE_SEARCH_URL_COLUMN": "",
    "AZURE_SEARCH_FILENAME_COLUMN": "",
    "AZURE_OPENAI_SYSTEM_MESSAGE": "",
}
ADVANCED_ENV = {
    "AZURE_SEARCH_ENDPOINT": "https://your-search-endpoint.search.windows.net/",
    "AZURE_SEARCH_INDEX": "{index name}",
    "AZURE_SEARCH_MANAGED_IDENTITY_RESOURCE_ID": "/subscriptions/{subscription-id}/resourceGroups/"
    "{resource-group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{resource-name}",
    "AZURE_SEARCH_QUERY_TYPE": "vector",
    "AZURE_OPENAI_EMBEDDING_NAME": "{embedding deployment name}",
    "AZURE_SEARCH_ENABLE_IN_DOMAIN": "true",
    "AZURE_SEARCH_TOP_K": "5",
    "AZURE_SEARCH_STRICTNESS": "3",
    "AZURE_OPENAI_SYSTEM_MESSAGE": "You are an AI assistant that helps people find information.",
    "AZURE_SEARCH_CONTENT_COLUMNS": "content",
    "AZURE_SEARCH_CONTENT_COLUMNS_SEPARATOR": "\\n",
    "AZURE_SEARCH_FILENAME_COLUMN": "filepath",
    "AZURE_SEARCH_TITLE_COLUMN": "title",
    "AZURE_SEARCH_URL_COLUMN": "url",
    "AZURE_SEARCH_VECTOR_COLUMNS": "contentvector",
}
CAT_HISTORY = [
    Turn(role="user", content="can you tell me how to care for a cat?"),
    Turn(role="assistant", content="Content of the completion [doc1].", intent=["cat care"]),
]

# examples OnYourDataAnswerer builds from settings alone: file -> (environment, history)
FROM_SETTINGS: dict[str, tuple[dict[str, str], list[Turn]]] = {
    "2024-02-15-preview/chat_completions_azure_search_minimum.json": (MINIMUM_ENV, []),
    "2024-10-21/chat_completions_azure_search_minimum.json": (MINIMUM_ENV, []),
    "2025-04-01-preview/chat_completions_azure_search_minimum.yaml": (MINIMUM_ENV, []),
    "2024-02-15-preview/chat_completions_azure_search_advanced.json": (ADVANCED_ENV, CAT_HISTORY),
    "2024-10-21/chat_completions_azure_search_advanced.json": (ADVANCED_ENV, CAT_HISTORY),
    "2025-04-01-preview/chat_completions_azure_search_advanced.json": (ADVANCED_ENV, CAT_HISTORY),
}
# azure_search built from settings, with the example's own system prompt
WITH_SYSTEM_PROMPT = {
    "2023-12-01-preview/extensions_chat_completions_azure_search_advanced.json": ADVANCED_ENV,
}
PLAIN_CHAT = {
    "2023-06-01-preview/chat_completions.json",
    "2024-02-15-preview/chat_completions.json",
    "2024-10-21/chat_completions.json",
    "2025-04-01-preview/chat_completions.yaml",
}
FOREIGN_SOURCE = {
    "2023-08-01-preview/extensions_chat_completions.json",
    "2024-02-15-preview/chat_completions_aml_index.json",
    "2024-02-15-preview/chat_completions_azure_search_image_vector.json",
    "2024-02-15-preview/chat_completions_cosmos_db.json",
    "2024-02-15-preview/chat_completions_elasticsearch.json",
    "2024-02-15-preview/chat_completions_pinecone.json",
    "2024-10-21/chat_completions_cosmos_db.json",
    "2025-04-01-preview/chat_completions_azure_search_image_vector.json",
    "2025-04-01-preview/chat_completions_cosmos_db.json",
    "2025-04-01-preview/chat_completions_elasticsearch.yaml",
    "2025-04-01-preview/chat_completions_mongo_db.yaml",
    "2025-04-01-preview/chat_completions_pinecone.json",
}

USAGE = Usage(prompt_tokens=33, completion_tokens=557, total_tokens=590)
DOG = Answer(
    content="Content of the completion [doc1].",
    citations=[
        Citation(
            content="Citation content.",
            title="Citation Title",
            filepath="contoso.txt",
            url="https://contoso.blob.windows.net/container/contoso.txt",
            chunk_id="0",
        )
    ],
    intent=["dog care"],
    usage=USAGE,
)
DOG_ADVANCED = DOG.model_copy(
    update={
        "citations": [
            Citation(
                content="Citation content 2.",
                title="Citation Title 2",
                filepath="contoso2.txt",
                url="https://contoso.blob.windows.net/container/contoso2.txt",
                chunk_id="0",
            )
        ]
    }
)
NO_CONTEXT = Answer(content="Content of the completion.", usage=USAGE)
PIRATE = Answer(content="<pirate>", usage=USAGE)  # content checked by its start and end


def expected_answer(name: str) -> Answer:
    if "image_vector" in name:
        return NO_CONTEXT
    if "advanced" in name and not name.startswith("2023"):
        return DOG_ADVANCED
    if name.startswith("2023") or name in PLAIN_CHAT:
        return PIRATE  # the legacy examples answer the pirate prompt; their tool message is a placeholder
    return DOG


def load(name: str) -> dict[str, Any]:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    data = yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)
    assert isinstance(data, dict)
    return data


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if k in SECRET_KEYS else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def all_examples() -> list[str]:
    files = [p for p in EXAMPLES.glob("*/*") if p.suffix in (".json", ".yaml")]
    return sorted(str(p.relative_to(EXAMPLES)) for p in files)


def test_every_example_is_classified() -> None:
    classified = set(FROM_SETTINGS) | set(WITH_SYSTEM_PROMPT) | PLAIN_CHAT | FOREIGN_SOURCE
    assert set(all_examples()) == classified
    assert len(classified) == 23


def assert_answer(answer: Answer, name: str) -> None:
    expected = expected_answer(name)
    if expected is PIRATE:
        assert answer.content.startswith("Ahoy matey! So ye be wantin' to care for a fine squawkin' parrot")
        assert answer.content.endswith("Good luck, sailor, and may the wind be at yer back!")
        answer = answer.model_copy(update={"content": "<pirate>"})
    assert answer == expected


def ai_env(fake: FakeAzure, version: str) -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": fake.url,
        "AZURE_OPENAI_KEY": "test-key",
        "AZURE_OPENAI_MODEL": DEPLOYMENT,
        "AZURE_OPENAI_PREVIEW_API_VERSION": version,
    }


def check_route(fake: FakeAzure, version: str, route: str) -> None:
    seen = fake.requests[-1]
    assert seen.path == f"/openai/deployments/{DEPLOYMENT}/{route}"
    assert seen.query == {"api-version": version}
    assert seen.headers["api-key"] == "test-key"


@pytest.mark.parametrize("name", sorted(FROM_SETTINGS))
async def test_from_settings_both_ways(
    name: str, fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    example = load(name)
    version = example["parameters"]["api-version"]
    env, history = FROM_SETTINGS[name]
    settings = make_settings({**ai_env(fake_azure, version), **env})
    fake_azure.reply(Reply(body=example["responses"]["200"]["body"]))
    answerer = OnYourDataAnswerer.from_settings(settings)
    try:
        answer = await answerer.answer(history, example["parameters"]["body"]["messages"][-1]["content"])
    finally:
        await answerer.aclose()

    expected = copy.deepcopy(example["parameters"]["body"]) | CHAT_DEFAULTS
    if not dialect(version).role_information:
        role = expected["data_sources"][0]["parameters"].pop("role_information", None)
        if role:
            expected["messages"].insert(0, {"role": "system", "content": role})
    assert masked(fake_azure.requests[-1].body) == masked(expected)
    check_route(fake_azure, version, "chat/completions")
    assert_answer(answer, name)


@pytest.mark.parametrize("name", sorted(set(WITH_SYSTEM_PROMPT) | PLAIN_CHAT | FOREIGN_SOURCE))
async def test_built_request_both_ways(
    name: str, fake_azure: FakeAzure, make_settings: Callable[[dict[str, str]], Settings]
) -> None:
    example = load(name)
    version = example["parameters"]["api-version"]
    api = dialect(version)
    body = example["parameters"]["body"]
    settings = make_settings({**ai_env(fake_azure, version), **WITH_SYSTEM_PROMPT.get(name, {})})
    messages = body["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    if name in WITH_SYSTEM_PROMPT:
        source: dict[str, Any] | None = data_source(AzureSearchSource.from_settings(settings), api, None)
    else:
        source = (body.get("data_sources") or body.get("dataSources") or [None])[0]
    request = build_request(api, question=messages[-1]["content"], data_source=source, system_prompt=system)
    route = "chat/completions" if source is None else api.chat_path

    fake_azure.reply(Reply(body=example["responses"]["200"]["body"]))
    client = AzureOpenAIClient.from_settings(settings)
    try:
        payload = await client.chat(request, route=route)
    finally:
        await client.aclose()

    assert masked(fake_azure.requests[-1].body) == masked(body)
    check_route(fake_azure, version, route)
    assert_answer(parse_completion(payload), name)
