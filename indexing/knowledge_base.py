"""The Azure AI Search knowledge base over ragbot's index (agentic retrieval, REST 2026-04-01): one
`searchIndex` knowledge source over the index `indexing` built, and the knowledge base that uses it.

Both are created or updated with PUT (idempotent: a second run changes nothing), through
azure-search-documents' SearchIndexClient. The knowledge source returns the fields the grounded
pipeline's KnowledgeBaseRetriever turns into citations (`sourceDataFields`: key, content, title, url,
filepath, chunk id) and ranks with the index's semantic configuration. The knowledge base names the
chat deployment (`AZURE_OPENAI_MODEL`, `AZURE_OPENAI_MODEL_NAME`) as its model when Azure OpenAI is
configured; with no `AZURE_OPENAI_KEY` the search service reaches it with its managed identity.
"""

from __future__ import annotations

import logging
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError
from azure.search.documents.indexes.aio import SearchIndexClient

from rag.azure.auth import default_credential
from rag.azure.client import sdk_options
from rag.azure.failures import search_error
from rag.index_spec import IndexSpec
from rag.settings import AzureOpenAISettings, Settings

log = logging.getLogger(__name__)


def knowledge_source_body(spec: IndexSpec, name: str) -> dict[str, Any]:
    """The `searchIndex` knowledge source over the index `spec` describes."""
    fields = [spec.key_field, *spec.content_fields, spec.title_field, spec.url_field, spec.filepath_field]
    fields.append(spec.chunk_id_field)
    return {
        "name": name,
        "kind": "searchIndex",
        "description": f"ragbot's index {spec.name!r}",
        "searchIndexParameters": {
            "searchIndexName": spec.name,
            "sourceDataFields": [{"name": f} for f in dict.fromkeys(f for f in fields if f)],
            "semanticConfigurationName": spec.semantic_configuration,
        },
    }


def knowledge_base_body(name: str, source: str, openai: AzureOpenAISettings) -> dict[str, Any]:
    """The knowledge base over `source`, with the chat deployment as its model when there is one."""
    body: dict[str, Any] = {
        "name": name,
        "description": "ragbot's knowledge base",
        "knowledgeSources": [{"name": source}],
    }
    if openai.configured:
        parameters: dict[str, Any] = {"resourceUri": f"{openai.base_url}/", "deploymentId": openai.model}
        if openai.model_name:
            parameters["modelName"] = openai.model_name
        if openai.key:
            parameters["apiKey"] = openai.key.get_secret_value()
        body["models"] = [{"kind": "azureOpenAI", "azureOpenAIParameters": parameters}]
    return body


def masked(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with any `apiKey` replaced, for printing (`--dry-run`)."""
    return {
        key: "***"
        if key == "apiKey"
        else masked(value)
        if isinstance(value, dict)
        else [masked(v) if isinstance(v, dict) else v for v in value]
        if isinstance(value, list)
        else value
        for key, value in body.items()
    }


def plan(settings: Settings, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The knowledge source and knowledge base bodies `ragbot index --knowledge-base NAME` sends."""
    spec = IndexSpec.from_settings(settings.search, settings.openai)
    source = settings.search.knowledge_source or spec.name
    return knowledge_source_body(spec, source), knowledge_base_body(name, source, settings.openai)


async def publish(settings: Settings, source: dict[str, Any], base: dict[str, Any]) -> None:
    """Create or update the knowledge source, then the knowledge base that uses it."""
    search = settings.search
    assert search.base_url is not None  # the azure target checked it
    key = search.key.get_secret_value() if search.key else None
    credential = AzureKeyCredential(key) if key else default_credential()
    async with SearchIndexClient(search.base_url, credential, **sdk_options(settings.ragbot)) as client:
        for body, kind, create in (
            (source, "knowledge source", client.create_or_update_knowledge_source),
            (base, "knowledge base", client.create_or_update_knowledge_base),
        ):
            try:
                await create(body)
            except AzureError as exc:
                raise search_error(exc, f"{kind} {body['name']!r}") from exc
            log.info("%s %s is ready", kind, body["name"])
