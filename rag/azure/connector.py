"""The connector actions that are not answers: plain chat completions (several conversations at once),
embeddings of any texts, and the choice of model endpoint they go to.

They run on :class:`~rag.azure.client.AzureOpenAIClient`, so they share its auth (api-key, Entra token,
OpenAI key with `OpenAI-Organization`), retries, rate limit, timeouts and typed errors. `ragbot chat`,
`ragbot embed`, `ragbot image` and `ragbot raw` are their command line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from azure.core.credentials_async import AsyncTokenCredential

from rag.azure.client import AzureOpenAIClient, transport_options
from rag.azure.dialects import dialect, versions_with
from rag.azure.embeddings import DEFAULT_BATCH, embedding_target
from rag.errors import ConfigError, DataSourceError, RagError
from rag.settings import Settings

Provider = Literal["auto", "azure", "openai"]
Purpose = Literal["chat", "embeddings", "images", "raw"]


def resolve_provider(settings: Settings, provider: Provider = "auto") -> Literal["azure", "openai"]:
    """`auto`: Azure OpenAI when `AZURE_OPENAI_ENDPOINT` (or `_RESOURCE`) is set, else the
    OpenAI-compatible endpoint of `RAGBOT_LLM_BASE_URL`."""
    if provider != "auto":
        return provider
    if settings.openai.base_url or settings.openai.embedding_endpoint:
        return "azure"
    if settings.ragbot.llm_base_url:
        return "openai"
    raise ConfigError(
        "no model endpoint: set AZURE_OPENAI_ENDPOINT (or AZURE_OPENAI_RESOURCE) with AZURE_OPENAI_KEY or an "
        "Entra ID login, or RAGBOT_LLM_BASE_URL with RAGBOT_LLM_API_KEY (and RAGBOT_LLM_ORGANIZATION)"
    )


def connector_client(
    settings: Settings,
    provider: Provider = "auto",
    *,
    purpose: Purpose = "chat",
    model: str | None = None,
    credential: AsyncTokenCredential | None = None,
) -> AzureOpenAIClient:
    """The client for one action, its default deployment (model) already chosen.

    Azure: the chat deployment `AZURE_OPENAI_MODEL`; embeddings go to `AZURE_OPENAI_EMBEDDING_NAME` on
    `AZURE_OPENAI_EMBEDDING_ENDPOINT` / `_KEY` when those are set. OpenAI-compatible: `RAGBOT_LLM_MODEL`
    for chat. `model` (the command's --model) wins over either. Without a key, Azure calls carry an Entra
    ID token from `credential` (default: azure-identity's DefaultAzureCredential)."""
    openai, rag = settings.openai, settings.ragbot
    if resolve_provider(settings, provider) == "openai":
        if purpose in ("embeddings", "images") and not model:
            raise ConfigError(f"name the {purpose} model with --model (RAGBOT_LLM_MODEL is the chat model)")
        client = AzureOpenAIClient.openai_compatible(settings)
        client.default_deployment = model or client.default_deployment
        return client
    if purpose == "images" and not model:
        raise ConfigError("name the image deployment with --model (e.g. dall-e-3)")
    deployment: str | None
    if purpose == "embeddings":
        base, deployment = embedding_target(
            openai.embedding_endpoint or openai.base_url, model or openai.embedding_name
        )
        key = openai.embedding_key or openai.key
    else:
        if not openai.base_url:
            raise ConfigError("set AZURE_OPENAI_ENDPOINT or AZURE_OPENAI_RESOURCE")
        base, deployment, key = openai.base_url, model or openai.model, openai.key
    api = dialect(openai.preview_api_version)
    if purpose == "images" and not api.image_generations:
        raise ConfigError(
            f"images/generations is not in api-version {api.version} (that version only queued DALL-E 2 "
            f"jobs); set AZURE_OPENAI_PREVIEW_API_VERSION to one of: {versions_with('image_generations')}"
        )
    return AzureOpenAIClient(
        base_url=base,
        api_version=api.version,
        api_key=key,
        credential=credential,
        default_deployment=deployment,
        **transport_options(rag),
    )


def images_per_request(client: AzureOpenAIClient) -> int:
    """How many images one `images/generations` call may ask for: the Azure api-version's schema
    maximum (1 up to 2024-10-21: DALL-E 3), else OpenAI's 10."""
    if client.mode == "azure" and client.api_version:
        return dialect(client.api_version).images_per_request
    return 10


async def chat_in_order(
    client: AzureOpenAIClient, bodies: Sequence[dict[str, Any]], *, concurrency: int = 4
) -> AsyncIterator[dict[str, Any] | RagError]:
    """Each chat request answered, yielded in the order given as soon as it and those before it are
    done (a long batch prints as it goes); at most `concurrency` in flight, every call within the
    client's rate limit. A failed request yields its error and does not stop the others; leaving the
    loop early cancels what is still pending."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(body: dict[str, Any]) -> dict[str, Any] | RagError:
        async with gate:
            try:
                return await client.chat(body)
            except RagError as exc:
                return exc

    tasks = [asyncio.ensure_future(one(body)) for body in bodies]
    try:
        for task in tasks:
            yield await task
    finally:
        for task in tasks:
            task.cancel()


async def embed_texts(
    client: AzureOpenAIClient,
    texts: Sequence[str],
    *,
    dimensions: int | None = None,
    api_version: str | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, Any]:
    """`{"model", "dimensions", "data": [{"index", "embedding"}], "usage"}` for `texts`, in order,
    `batch_size` inputs a request. `dimensions` is refused up front by an Azure api-version that lacks it."""
    if dimensions is not None and api_version and not dialect(api_version).embeddings_dimensions:
        raise ConfigError(
            f"--dimensions is not supported by embeddings in api-version {api_version}; "
            f"it needs one of: {versions_with('embeddings_dimensions')}"
        )
    rows: list[dict[str, Any]] = []
    usage: dict[str, int] = {}
    for start in range(0, len(texts), max(1, batch_size)):
        chunk = list(texts[start : start + batch_size])
        body: dict[str, Any] = {"input": [text if text.strip() else " " for text in chunk]}
        if dimensions is not None:
            body["dimensions"] = dimensions
        payload = await client.embeddings(body)
        data = sorted(payload.get("data") or [], key=lambda item: int(item.get("index") or 0))
        if len(data) != len(chunk):
            raise DataSourceError(f"the model returned {len(data)} embeddings for {len(chunk)} inputs")
        rows += [
            {"index": start + offset, "embedding": item.get("embedding") or []}
            for offset, item in enumerate(data)
        ]
        for name, count in (payload.get("usage") or {}).items():
            if isinstance(count, int):
                usage[name] = usage.get(name, 0) + count
    size = len(rows[0]["embedding"]) if rows else 0
    return {"model": client.default_deployment, "dimensions": size, "data": rows, "usage": usage}
