"""AzureEmbedder against the loopback fake: batching, order, dimensions per api-version, failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from azure_fake import FakeAzure, Reply

from rag.azure.embeddings import AzureEmbedder
from rag.errors import ConfigError, DataSourceError
from rag.settings import Settings

MakeSettings = Callable[[dict[str, str]], Settings]


def env(url: str, **extra: str) -> dict[str, str]:
    return {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_KEY": "k",
        "AZURE_OPENAI_MODEL": "gpt-4o",
        "AZURE_OPENAI_EMBEDDING_NAME": "emb",
        "RAGBOT_RETRY_BUDGET": "5",
        **extra,
    }


def vectors_for(body: dict[str, Any], dims: int) -> dict[str, Any]:
    """Embeddings the fake returns: row i is [len(text), i, 0, ...], listed in reverse order."""
    data = [
        {"index": i, "object": "embedding", "embedding": [float(len(t)), float(i)] + [0.0] * (dims - 2)}
        for i, t in enumerate(body["input"])
    ]
    return {"object": "list", "data": data[::-1], "usage": {"prompt_tokens": 1, "total_tokens": 1}}


@pytest.fixture
def echo(fake_azure: FakeAzure) -> FakeAzure:
    """The loopback fake, answering each embeddings request with vectors derived from its inputs."""
    fake_azure.respond = lambda body: Reply(body=vectors_for(body, int(body.get("dimensions", 1536))))
    return fake_azure


async def test_batches_keep_input_order(echo: FakeAzure, make_settings: MakeSettings) -> None:
    embedder = AzureEmbedder.from_settings(make_settings(env(echo.url)))
    embedder.batch_size = 3
    texts = ["a", "bb", "ccc", "dddd", "eeeee", ""]
    try:
        vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert vectors.dtype == np.float32 and vectors.shape == (6, 1536)
    assert vectors[:, 0].tolist() == [1, 2, 3, 4, 5, 1]  # the empty text is sent as one space
    assert vectors[:, 1].tolist() == [0, 1, 2, 0, 1, 2]
    assert [len(r.body["input"]) for r in echo.requests] == [3, 3]
    assert all(r.path == "/openai/deployments/emb/embeddings" for r in echo.requests)
    assert all(
        r.query == {"api-version": "2024-10-21"} and r.headers["api-key"] == "k" for r in echo.requests
    )
    assert all("dimensions" not in r.body and "input_type" not in r.body for r in echo.requests)
    assert embedder.dimensions == 1536 and embedder.name == "azure-openai:emb"


async def test_dimensions_and_input_type_are_sent_where_supported(
    echo: FakeAzure, make_settings: MakeSettings
) -> None:
    settings = make_settings(env(echo.url, AZURE_OPENAI_EMBEDDING_DIMENSIONS="256"))
    embedder = AzureEmbedder.from_settings(settings, input_type="query")
    try:
        vectors = await embedder.embed(["hello"])
    finally:
        await embedder.aclose()
    assert vectors.shape == (1, 256)
    assert echo.requests[0].body == {"input": ["hello"], "dimensions": 256, "input_type": "query"}


def test_dimensions_refused_by_older_versions(make_settings: MakeSettings) -> None:
    settings = make_settings(
        env(
            "https://aoai.example",
            AZURE_OPENAI_EMBEDDING_DIMENSIONS="256",
            AZURE_OPENAI_PREVIEW_API_VERSION="2024-02-15-preview",
        )
    )
    with pytest.raises(ConfigError, match=r"AZURE_OPENAI_EMBEDDING_DIMENSIONS.*2024-02-15-preview"):
        AzureEmbedder.from_settings(settings)


async def test_separate_embedding_endpoint_and_key(echo: FakeAzure, make_settings: MakeSettings) -> None:
    settings = make_settings(
        env(
            "https://unused.example",
            AZURE_OPENAI_EMBEDDING_ENDPOINT=f"{echo.url}/openai/deployments/emb-3/embeddings?api-version=x",
            AZURE_OPENAI_EMBEDDING_KEY="emb-key",
        )
    )
    embedder = AzureEmbedder.from_settings(settings)
    try:
        await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert echo.requests[0].path == "/openai/deployments/emb-3/embeddings"
    assert echo.requests[0].headers["api-key"] == "emb-key"


async def test_wrong_dimensions_are_reported(fake_azure: FakeAzure, make_settings: MakeSettings) -> None:
    fake_azure.reply(Reply(body=vectors_for({"input": ["x"]}, 3072)))
    embedder = AzureEmbedder.from_settings(make_settings(env(fake_azure.url)))
    try:
        with pytest.raises(DataSourceError, match=r"3072-dimensional.*1536"):
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()


async def test_embeddings_are_retried_like_chat(fake_azure: FakeAzure, make_settings: MakeSettings) -> None:
    fake_azure.reply(
        Reply(status=429, body={"error": {"message": "slow"}}, headers={"retry-after-ms": "50"}),
        Reply(body=vectors_for({"input": ["x"]}, 1536)),
    )
    embedder = AzureEmbedder.from_settings(make_settings(env(fake_azure.url)))
    try:
        vectors = await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert vectors.shape == (1, 1536) and len(fake_azure.requests) == 2
